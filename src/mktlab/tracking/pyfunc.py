"""Helpers for saving a model as an MLflow `pyfunc` model ("models from code": nothing pickled)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

PROGRESS_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@contextlib.contextmanager
def without_progress_bars() -> Iterator[None]:
    """MLflow validates an input example by loading the model back, drawing download bars into notebook output."""
    previous = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = previous


def pinned_requirements(names: Iterable[str]) -> list[str]:
    """`name==version` of each installed distribution (the bare name when it is not installed)."""
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def log_pyfunc(tracker: Any, save: Callable[[Path], Path], artifact_path: str) -> str:
    """Save a pyfunc model with `save(folder)` and log it under the run's `artifact_path`; returns its `runs:/` URI."""
    with tempfile.TemporaryDirectory() as tmp:
        tracker.log_artifacts(save(Path(tmp) / artifact_path), artifact_path)
    return f"runs:/{tracker.run_id}/{artifact_path}"
