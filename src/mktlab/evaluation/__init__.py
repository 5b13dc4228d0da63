"""Metrics, plots and run artifacts, shared by the models where their logic is the same."""
