"""Training: losses, pure steps, the shared loop, and `fit(cfg, data, tracker)` for every model."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import jax

from mktlab.train.loop import FitResult, NonFiniteLossError, SeedResults, TrainTask, fit_loop, fit_loop_vectorized

__all__ = [
    "fit", "fit_seeds", "run_keys", "seed_list", "enable_compilation_cache", "enable_cpu_devices",
    "FitResult", "SeedResults", "NonFiniteLossError", "TrainTask", "fit_loop",
]

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


CPU_DEVICES_ENV = "MKTLAB_CPU_DEVICES"
MAX_CPU_DEVICES = 8


def enable_cpu_devices(count: int | None = None) -> None:
    """Show JAX one CPU device per core (at most 8), so a data-parallel step
    (`trainer.data_parallel`) can split each batch over the cores.

    `$MKTLAB_CPU_DEVICES` overrides the count (1: a single CPU device, as JAX's default).
    Programs that are not split still run on the first device. JAX reads the setting when
    it starts its backends, so this runs on import of `mktlab.train`; later, or when
    `XLA_FLAGS` already sets a device count, it changes nothing.
    """
    if count is None:
        setting = os.environ.get(CPU_DEVICES_ENV, "")
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if setting and not setting.isdigit():
            raise ValueError(f"{CPU_DEVICES_ENV}={setting!r}: expected a whole number of CPU devices")
        count = int(setting) if setting else min(cores, MAX_CPU_DEVICES)
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    from jax._src import xla_bridge

    if not xla_bridge.backends_are_initialized():
        jax.config.update("jax_num_cpu_devices", max(count, 1))


enable_compilation_cache()
enable_cpu_devices()


def run_keys(seed: int) -> dict[str, jax.Array]:
    """The run's keys, split once from the seed: data order, parameter init, training."""
    data_key, model_key, train_key = jax.random.split(jax.random.key(seed), 3)
    return {"data_key": data_key, "model_key": model_key, "train_key": train_key}


def seed_list(cfg: Any) -> list[int] | None:
    """The seeds to train at once (`trainer.seeds`, or `trainer.num_seeds` from `seed`); None for one."""
    if cfg.trainer.seeds:
        return list(cfg.trainer.seeds)
    if cfg.trainer.num_seeds > 1:
        return list(range(cfg.seed, cfg.seed + cfg.trainer.num_seeds))
    return None


def fit(cfg: Any, data: Any, tracker: Any = None) -> FitResult | SeedResults:
    """Train the model `cfg.model.name` on `data`; per-epoch metrics go to `tracker`.

    With `trainer.seeds` (or `trainer.num_seeds` > 1) every seed trains at once in one
    vectorized program and logs into a child run of its own; the result is a
    `SeedResults`. The same call runs in notebooks, tests and benchmarks.
    """
    module = importlib.import_module(f"mktlab.train.{cfg.model.name}")
    if tracker is not None:
        from mktlab.tracking import provenance

        tracker.set_tags(provenance.jax_tags(cfg.seed))
        provenance.log_data(tracker, data, name=cfg.data.name)
    seeds = seed_list(cfg)
    if seeds is None:
        return module.fit(cfg, data, tracker)
    return fit_seeds(cfg, data, seeds, tracker)


def fit_seeds(cfg: Any, data: Any, seeds: list[int], tracker: Any = None) -> SeedResults:
    """Train one copy per seed with one compiled epoch: parameters, optimizer state and data order per seed.

    A model's module provides `build_task(cfg, data)`, one task for every seed, or, when
    its validation or results depend on the seed (the GAN's fixed latents and rendered
    samples), `build_seed_tasks(cfg, data, seeds)`, one task per seed sharing one epoch.
    """
    module = importlib.import_module(f"mktlab.train.{cfg.model.name}")
    if hasattr(module, "build_seed_tasks"):
        tasks = module.build_seed_tasks(cfg, data, seeds)
    else:
        tasks = module.build_task(cfg, data)
    keys = [run_keys(seed) for seed in seeds]
    children = [_child_run(cfg, data, seed, tracker) for seed in seeds] if tracker is not None else [None] * len(seeds)
    results = fit_loop_vectorized(
        tasks,
        cfg.trainer,
        model_keys=[k["model_key"] for k in keys],
        train_keys=[k["train_key"] for k in keys],
        trackers=children,
        desc=f"{cfg.model.name} ×{len(seeds)} seeds",
    )
    return SeedResults(seeds, results, children)


def _child_run(cfg: Any, data: Any, seed: int, parent: Any) -> Any:
    """A child run of `parent` for one seed, recording the config with that seed."""
    import dataclasses

    from mktlab.config import to_plain
    from mktlab.tracking import open_run, provenance

    config = to_plain(dataclasses.replace(cfg, seed=seed, trainer=dataclasses.replace(cfg.trainer, seeds=None, num_seeds=1)))
    child = open_run(config, run_name=f"seed={seed}", tags={"mktlab.seeds_parent": parent.run_id}, parent_run_id=parent.run_id, owns_run=True)
    child.set_tags(provenance.jax_tags(seed))
    provenance.log_data(child, data, name=cfg.data.name)
    return child
