"""Training: losses, pure steps, the shared loop, and `fit(cfg, data, tracker)` for every model."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import jax

from mktlab.train.loop import FitResult, NonFiniteLossError, TrainTask, fit_loop

__all__ = ["fit", "run_keys", "enable_compilation_cache", "FitResult", "NonFiniteLossError", "TrainTask", "fit_loop"]

CACHE_ENV = "MKTLAB_JAX_CACHE"


def enable_compilation_cache(directory: str | Path | None = None) -> Path | None:
    """Keep compiled XLA programs on disk so a second run of the same shapes skips compilation.

    The folder is `$MKTLAB_JAX_CACHE`, else `experiments/jax-cache` of the project;
    `MKTLAB_JAX_CACHE=off` disables it.
    """
    setting = str(directory) if directory else os.environ.get(CACHE_ENV, "")
    if setting.lower() == "off":
        return None
    if not setting:
        from mktlab.paths import project_root

        setting = str(project_root() / "experiments" / "jax-cache")
    path = Path(setting)
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


enable_compilation_cache()


def run_keys(seed: int) -> dict[str, jax.Array]:
    """The run's keys, split once from the seed: data order, parameter init, training."""
    data_key, model_key, train_key = jax.random.split(jax.random.key(seed), 3)
    return {"data_key": data_key, "model_key": model_key, "train_key": train_key}


def fit(cfg: Any, data: Any, tracker: Any = None) -> FitResult:
    """Train the model `cfg.model.name` on `data`; per-epoch metrics go to `tracker`.

    The same call runs in notebooks, tests and benchmarks.
    """
    module = importlib.import_module(f"mktlab.train.{cfg.model.name}")
    if tracker is not None:
        from mktlab.tracking import provenance

        tracker.set_tags(provenance.jax_tags(cfg.seed))
        provenance.log_data(tracker, data, name=cfg.data.name)
    return module.fit(cfg, data, tracker)
