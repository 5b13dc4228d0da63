"""Links into the MLflow UI: a run, an artifact of a run, a sweep's runs, a comparison of runs.

MLflow 3's UI shows an experiment in one of two views: GenAI (traces, evaluations) and
model training (runs, metrics, charts, artifacts). A browser opens in the GenAI view until its
user switches once (the choice is kept in the browser); the experiment tag
`mlflow.experimentKind` does not change that in MLflow 3.17 (checked in a browser). A link
that carries `workflowType=machine_learning` in its route opens in the model-training view
whatever the browser remembers, so every link mktlab prints, and every link it writes into a
run's description, carries it. The UI's routes live after the `#`, and so does the query:
`http://127.0.0.1:5000/#/experiments/1/runs/<run id>?workflowType=machine_learning`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from urllib.parse import quote, urlencode

from mktlab.config.secrets import mask_uri

WORKFLOW = {"workflowType": "machine_learning"}  # the UI's model-training view
UI_ENV = "MKTLAB_UI_URL"  # where the MLflow UI of a SQLite store is served, when not at DEFAULT_UI
DEFAULT_UI = "http://127.0.0.1:5000"  # `make mlflow-ui`


def _query(**values: str | None) -> str:
    # the view last: the comparison page reads `runs` and `experiments` only from the start of the query
    return urlencode({**{k: v for k, v in values.items() if v}, **WORKFLOW}, quote_via=quote)


def run_route(experiment_id: str, run_id: str, *, artifact: str | None = None, tab: str | None = None) -> str:
    """`#/experiments/1/runs/<run id>?workflowType=machine_learning`: a run's page (one of its
    artifacts, e.g. `notebook/mf.html`, or a tab: `model-metrics`), relative to the UI's address."""
    path = f"#/experiments/{experiment_id}/runs/{run_id}"
    if artifact:
        path += f"/artifacts/{quote(artifact)}"
    elif tab:
        path += f"/{tab}"
    return f"{path}?{_query()}"


def runs_route(experiment_id: str, *, search: str | None = None) -> str:
    """The experiment's runs table (children nested under their parent), filtered by `search`
    (MLflow's search syntax) when given."""
    return f"#/experiments/{experiment_id}/runs?{_query(searchFilter=search)}"


def sweep_search(sweep_id: str) -> str:
    """The runs of one sweep: its parent and every job (all carry the sweep id tag)."""
    return f"tags.`mktlab.sweep_id` = '{sweep_id}'"


def compare_route(experiment_id: str, run_ids: Sequence[str]) -> str:
    """MLflow's comparison of runs: parallel coordinates, scatter and contour plots, every param and metric side by side."""
    compact = {"separators": (",", ":")}
    return f"#/compare-runs?{_query(runs=json.dumps(list(run_ids), **compact), experiments=json.dumps([experiment_id], **compact))}"


def ui_address(tracking_uri: str) -> str:
    """The MLflow UI serving a store: `MKTLAB_UI_URL` when set, a tracking server's own address,
    else `http://127.0.0.1:5000` (where `make mlflow-ui` serves a SQLite store). Credentials masked."""
    explicit = os.environ.get(UI_ENV, "").strip()
    if explicit:
        return mask_uri(explicit).rstrip("/")
    if tracking_uri.startswith(("http://", "https://")):
        return mask_uri(tracking_uri).rstrip("/")
    return DEFAULT_UI


def url(tracking_uri: str, route: str) -> str:
    """The full address of a route (`run_route`, `runs_route`, ...) in the UI serving `tracking_uri`."""
    return f"{ui_address(tracking_uri)}/{route}"


def how_to_open(tracking_uri: str, route: str) -> str:
    """`url` with, for a store no server serves yet (SQLite), the command that starts the UI on it."""
    address = url(tracking_uri, route)
    if tracking_uri.startswith(("http://", "https://")) or os.environ.get(UI_ENV, "").strip():
        return address
    return f"make mlflow-ui (or .venv/bin/mlflow ui --backend-store-uri {mask_uri(tracking_uri)}), then {address}"
