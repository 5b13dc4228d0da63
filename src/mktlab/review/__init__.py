"""Reviewing runs: a sweep's children ranked by their main metric, the effect of each
swept parameter, learning curves and seed spread (`notebooks/review_runs.ipynb`,
`mktlab-review`, `mktlab-runs`)."""

from mktlab.tracking.sweeps import RunTable, find_sweep, load_runs

__all__ = ["RunTable", "find_sweep", "load_runs"]
