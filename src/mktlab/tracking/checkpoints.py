"""Saved modules in runs: the `model/` artifact a run's evaluation saves, downloaded and rebuilt."""

from __future__ import annotations

import mlflow.artifacts
from flax import nnx

from mktlab.train.checkpoint import load_module


def load_module_from_run(run_id: str, *, tracking_uri: str, artifact_path: str = "model") -> nnx.Module:
    """Download a run's saved module and rebuild it."""
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path, tracking_uri=tracking_uri)
    return load_module(local)
