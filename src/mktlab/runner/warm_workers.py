"""Joblib workers warmed while a sweep opens: each imports the runner and starts the kernel its
first job takes.

With `hydra/launcher=joblib`, Hydra's launcher starts its worker processes when it sends the
first jobs; each worker then imports Hydra, Papermill and MLflow and starts a notebook kernel,
which imports JAX, before the first cell runs. The sweep callback calls `warm_up` once the jobs'
configs are validated, so all that happens while this process opens the store and the parent
run and the sweeper prepares its first jobs. The warm-up goes through the executor Hydra's
launcher then uses (the same joblib settings): each worker's kernel waits for its first job
(`kernel.start_early`), which takes it as it takes a kernel kept from a previous job.
"""

from __future__ import annotations

import threading
from typing import Any

JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


def joblib_settings(launcher: Any) -> dict[str, Any] | None:
    """The `joblib.Parallel` arguments Hydra's joblib launcher uses for `hydra.launcher`; None for another launcher."""
    from omegaconf import OmegaConf

    if launcher is None or launcher.get("_target_") != JOBLIB_LAUNCHER:
        return None
    from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg

    settings = {key: value for key, value in OmegaConf.to_container(launcher, resolve=True).items() if key != "_target_"}
    settings["backend"] = "loky"  # as the launcher sets it
    process_joblib_cfg(settings)
    return settings


def warm_up(launcher: Any) -> threading.Thread | None:
    """With the joblib launcher, start its workers and their kernels in the background; returns the thread doing it."""
    settings = joblib_settings(launcher)
    if settings is None:
        return None
    thread = threading.Thread(target=_warm, args=(settings,), name="mktlab-warm-workers", daemon=True)
    thread.start()
    return thread


def _warm(settings: dict[str, Any]) -> None:
    from joblib import Parallel, delayed, effective_n_jobs

    try:
        Parallel(**settings)(delayed(start_kernel)() for _ in range(effective_n_jobs(settings.get("n_jobs"))))
    except Exception:  # noqa: BLE001 - a warm-up that fails leaves each job to start its own kernel, and say why
        pass


def start_kernel() -> tuple[int, bool]:
    """In a worker: the runner's imports, and a kernel waiting for the worker's next job. Returns the
    worker's pid and whether a live kernel was waiting there already."""
    import os

    from mktlab.runner import kernel, setup_process, setup_sweep_process

    setup_process()
    setup_sweep_process()
    was_waiting = kernel.waiting()
    kernel.start_early()
    import mktlab.runner.app  # noqa: F401 - what the worker's first job would import

    kernel.settle_environment()
    return os.getpid(), was_waiting
