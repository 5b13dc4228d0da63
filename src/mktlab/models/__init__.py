"""Flax NNX modules only: no loops, no I/O."""
