"""Training, generic only: the loop, pure steps and the scanned epoch, optimizers, state,
checkpoints, chunked prediction, the run's keys and the process's JAX set-up.

Nothing here knows a model by name or MLflow; a model's own task builder
(`mktlab.models.<name>`) turns its config and data into `TrainTask`s for the loop.
"""

from __future__ import annotations

from mktlab.train.keys import run_keys, seed_list, several_seeds
from mktlab.train.loop import (
    FitResult,
    NonFiniteLossError,
    SeedResults,
    TrainingDiverged,
    TrainTask,
    fit_loop,
    fit_loop_vectorized,
)

__all__ = [
    "run_keys", "seed_list", "several_seeds", "FitResult", "SeedResults", "NonFiniteLossError", "TrainingDiverged",
    "TrainTask", "fit_loop", "fit_loop_vectorized",
]
