"""The tracking store: client construction and experiment lookup."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient


def _tracking_settings(tracking: Any) -> tuple[str, str | None]:
    if isinstance(tracking, Mapping):
        return tracking["uri"], tracking.get("artifact_root")
    return tracking.uri, tracking.artifact_root


def get_client(tracking: Any) -> MlflowClient:
    """An `MlflowClient` on the configured store; creates the SQLite file's folder if needed."""
    uri, _ = _tracking_settings(tracking)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri)


def get_or_create_experiment(client: MlflowClient, name: str, artifact_root: str | None) -> str:
    """The id of experiment `name`, created (artifacts under `artifact_root/name`) if missing.

    Safe when several processes create the same experiment at once.
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = Path(artifact_root, name).resolve().as_uri() if artifact_root else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:
        experiment = client.get_experiment_by_name(name)  # another job created it first
        if experiment is None:
            raise
        return experiment.experiment_id
