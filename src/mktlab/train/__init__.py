"""Training: losses, pure steps, the shared loop, and `fit(cfg, data, tracker)` for every model."""

from __future__ import annotations

import importlib
from typing import Any

import jax

from mktlab.train.loop import FitResult, NonFiniteLossError, TrainTask, fit_loop

__all__ = ["fit", "run_keys", "FitResult", "NonFiniteLossError", "TrainTask", "fit_loop"]


def run_keys(seed: int) -> dict[str, jax.Array]:
    """The run's keys, split once from the seed: data order, parameter init, training."""
    data_key, model_key, train_key = jax.random.split(jax.random.key(seed), 3)
    return {"data_key": data_key, "model_key": model_key, "train_key": train_key}


def fit(cfg: Any, data: Any, tracker: Any = None) -> FitResult:
    """Train the model `cfg.model.name` on `data`; per-epoch metrics go to `tracker`.

    The same call runs in notebooks, tests and benchmarks.
    """
    module = importlib.import_module(f"mktlab.train.{cfg.model.name}")
    return module.fit(cfg, data, tracker)
