"""Reviewing runs: a sweep's children ranked by their main metric, the effect of each
swept parameter, learning curves and seed spread (`notebooks/review_runs.ipynb`,
`mktlab-review`, `mktlab-runs`)."""

import warnings

from tqdm import TqdmExperimentalWarning, TqdmWarning

# MLflow reaches for tqdm's widget bar, which a kernel run by Papermill cannot show.
warnings.filterwarnings("ignore", category=TqdmWarning)
warnings.filterwarnings("ignore", category=TqdmExperimentalWarning)

from mktlab.tracking.sweeps import RunTable, find_sweep, load_runs  # noqa: E402

__all__ = ["RunTable", "find_sweep", "load_runs"]
