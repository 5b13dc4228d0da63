"""The tracking store: client construction, reachability, experiment lookup, and one clear error.

A store that cannot be opened, written or reached raises `StoreError`, whose message names
the store (credentials masked) and the cause in one line. A tracking server that does not
answer fails within `tracking.timeout` seconds, not after MLflow's minutes of retries.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any, Mapping

import mlflow
import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mktlab.config import paths
from mktlab.config.secrets import mask_uri

DEFAULT_TIMEOUT = 15.0
# MLflow's HTTP settings (read on every request): a few quick retries instead of its minutes-long default.
HTTP_RETRIES = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
HTTP_TIMEOUT = "MLFLOW_HTTP_REQUEST_TIMEOUT"
HTTP_BACKOFF = "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"


class StoreError(RuntimeError):
    """The tracking store cannot be opened, written or reached; the message names it and the cause."""


def _tracking_settings(tracking: Any) -> tuple[str, str | None, float]:
    if isinstance(tracking, Mapping):
        return tracking["uri"], tracking.get("artifact_root"), float(tracking.get("timeout") or DEFAULT_TIMEOUT)
    return tracking.uri, tracking.artifact_root, float(getattr(tracking, "timeout", DEFAULT_TIMEOUT) or DEFAULT_TIMEOUT)


def describe_cause(error: BaseException) -> str:
    """The first line of an error's message, with the store's credentials masked."""
    text = str(getattr(error, "message", None) or error).strip().splitlines()
    return mask_uri(f"{type(error).__name__}: {text[0] if text else ''}")


_CLIENTS: dict[str, MlflowClient] = {}  # one client per store and process: the jobs of a sweep worker share it
_EXPERIMENTS: dict[tuple[str, str], str] = {}  # (store, experiment name) -> id, looked up once per process


def get_client(tracking: Any) -> MlflowClient:
    """An `MlflowClient` on the configured store, checked to answer (once per process and store).

    For SQLite, the file's folder is created, and the store's tables are created under an
    exclusive file lock: MLflow's first-use migration is not safe when several processes
    (parallel sweep jobs, a notebook beside the runner) start at once. A server must answer
    its health check within `tracking.timeout` seconds.

    Raises:
        StoreError: the store cannot be opened or reached.
    """
    uri, _, timeout = _tracking_settings(tracking)
    if uri not in _CLIENTS:
        _CLIENTS[uri] = _open(uri, timeout)
    return _CLIENTS[uri]


def forget_clients() -> None:
    """Forget the clients and experiment ids this process keeps, and the stores MLflow keeps for them: the
    next `get_client` opens its store anew (a notebook kernel kept for a later command, whose store may have
    been removed and made again at the same path)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracking._tracking_service.registry import TrackingStoreRegistry

    _CLIENTS.clear()
    _EXPERIMENTS.clear()
    # MLflow keeps a store per URI and a database engine (its connections) per database, for the process
    TrackingStoreRegistry._get_store_with_resolved_uri.cache_clear()
    with SqlAlchemyStore._engine_map_lock:
        engines = list(SqlAlchemyStore._engine_map.values())
        SqlAlchemyStore._engine_map.clear()
    for engine in engines:
        engine.dispose()


def _open(uri: str, timeout: float) -> MlflowClient:
    if uri.startswith(("http://", "https://")):
        return _server_client(uri, timeout)
    if not uri.startswith("sqlite:///"):
        return _checked(uri, lambda: MlflowClient(tracking_uri=uri))
    database = Path(uri.removeprefix("sqlite:///"))
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
        lock_path = database.with_name(database.name + ".lock")
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                new = not database.exists()
                copied = new and _copy_empty_store(database)
                # the client builds its store (creating or migrating the tables) when constructed
                client = _checked(uri, lambda: MlflowClient(tracking_uri=uri), what=f"the SQLite file {database}")
                if new and not copied:
                    _keep_empty_store(database)
                return client
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    except OSError as error:
        raise StoreError(f"cannot open the tracking store {database}: {describe_cause(error)}") from error


def _empty_store_template() -> Path | None:
    """Where a new SQLite store's empty tables are kept: one file per MLflow version, in the project's
    `experiments/cache` (None outside a project)."""
    try:
        root = paths.project_root()
    except FileNotFoundError:
        return None
    return root / "experiments" / "cache" / f"empty-mlflow-{mlflow.__version__}-store.db"


def _copy_empty_store(database: Path) -> bool:
    """Start a new SQLite store as a copy of the empty one kept by `_keep_empty_store`: MLflow's creation
    of its tables and migrations takes about a second. Whether it was copied."""
    template = _empty_store_template()
    if template is None or not template.is_file():
        return False
    try:
        shutil.copyfile(template, database)
    except OSError:
        database.unlink(missing_ok=True)
        return False
    return True


def _keep_empty_store(database: Path) -> None:
    """Keep a copy of a store MLflow has just created, its tables empty, for the next new store. It holds
    no experiment either: MLflow creates its Default experiment, with that store's own artifact folder,
    when it opens the copy. Best effort: a store is created the long way when there is no copy."""
    template = _empty_store_template()
    if template is None or template.is_file():
        return
    partial = template.with_name(f"{template.name}.{os.getpid()}.partial")
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(database, partial)
        with contextlib.closing(sqlite3.connect(partial)) as copy, copy:
            copy.execute("DELETE FROM experiment_tags")
            copy.execute("DELETE FROM experiments")
        partial.replace(template)  # whole or not at all, for other processes
    except (OSError, sqlite3.Error):
        partial.unlink(missing_ok=True)


def _checked(uri: str, make: Any, *, what: str | None = None) -> MlflowClient:
    try:
        client = make()
        client.search_experiments(max_results=1)
    except StoreError:
        raise
    except Exception as error:  # MLflow and SQLAlchemy raise many kinds: a damaged file, a locked one, a bad URI
        raise StoreError(f"cannot open the tracking store {what or mask_uri(uri)}: {describe_cause(error)}") from error
    return client


def _server_client(uri: str, timeout: float) -> MlflowClient:
    """A client on an MLflow server that answered `/health` within `timeout` seconds; later requests
    retry twice with the same timeout, so an outage mid-run fails in seconds too."""
    os.environ.setdefault(HTTP_RETRIES, "2")
    os.environ.setdefault(HTTP_TIMEOUT, str(int(max(timeout, 1))))
    os.environ.setdefault(HTTP_BACKOFF, "1")
    try:
        answer = requests.get(uri.rstrip("/") + "/health", timeout=timeout)
    except requests.RequestException as error:
        raise StoreError(f"the MLflow server {mask_uri(uri)} did not answer within {timeout:g} s "
                         f"(tracking.timeout): {describe_cause(error)}") from None
    if answer.status_code != 200:
        raise StoreError(f"the MLflow server {mask_uri(uri)} answered its health check with HTTP {answer.status_code}")
    return _checked(uri, lambda: MlflowClient(tracking_uri=uri))


# MLflow's tag for the kind of an experiment: model training (runs, metrics, models), not GenAI (traces).
EXPERIMENT_KIND = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"


def get_or_create_experiment(client: MlflowClient, name: str, artifact_root: str | None) -> str:
    """The id of experiment `name`, created (artifacts under `artifact_root/name`) if missing.

    The experiment is of the model-training kind (tag `mlflow.experimentKind`), unless it
    already says otherwise; an experiment of an older mktlab gets the tag on its next run.
    Safe when several processes create the same experiment at once; looked up once per process.
    """
    key = (client.tracking_uri, name)
    if key not in _EXPERIMENTS:
        _EXPERIMENTS[key] = _find_or_create_experiment(client, name, artifact_root)
    return _EXPERIMENTS[key]


def _find_or_create_experiment(client: MlflowClient, name: str, artifact_root: str | None) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None and experiment.lifecycle_stage == "active":
        if EXPERIMENT_KIND not in experiment.tags:
            try:
                client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
            except MlflowException:  # a store that refuses the tag still takes the run
                pass
        return experiment.experiment_id
    if experiment is not None:
        raise StoreError(f"experiment {name!r} was deleted in the tracking store: restore it (`mlflow experiments restore`) "
                         "or choose another experiment_name")
    location = Path(artifact_root, name).resolve().as_uri() if artifact_root else None
    try:
        return client.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND: MODEL_TRAINING})
    except MlflowException:
        experiment = client.get_experiment_by_name(name)  # another job created it first
        if experiment is None:
            raise
        return experiment.experiment_id
