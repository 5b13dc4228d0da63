"""The tracking store: client construction and experiment lookup."""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import Any, Mapping

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient


def _tracking_settings(tracking: Any) -> tuple[str, str | None]:
    if isinstance(tracking, Mapping):
        return tracking["uri"], tracking.get("artifact_root")
    return tracking.uri, tracking.artifact_root


def get_client(tracking: Any) -> MlflowClient:
    """An `MlflowClient` on the configured store.

    For SQLite, the file's folder is created, and the store's tables are created under
    an exclusive file lock: MLflow's first-use migration is not safe when several
    processes (parallel sweep jobs, a notebook beside the runner) start at once.
    """
    uri, _ = _tracking_settings(tracking)
    if not uri.startswith("sqlite:///"):
        return MlflowClient(tracking_uri=uri)
    database = Path(uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            # the client builds its store (creating or migrating the tables) when constructed
            client = MlflowClient(tracking_uri=uri)
            client.search_experiments(max_results=1)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return client


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
