"""Reading what a run recorded: its config, overrides, provenance tags and metrics."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mktlab.config import to_container
from mktlab.models import registry

TIMING_SUFFIX = "_seconds"  # metrics that measure time: expected to differ between identical runs


class RunNotFound(LookupError):
    pass


@dataclass
class RunRecord:
    run: Any
    config: dict[str, Any]

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    @property
    def overrides(self) -> list[str]:
        return self.run.data.tags.get("mktlab.overrides", "").split()

    @property
    def tags(self) -> dict[str, str]:
        return self.run.data.tags

    @property
    def metrics(self) -> dict[str, float]:
        return self.run.data.metrics

    @property
    def params(self) -> dict[str, str]:
        return self.run.data.params

    def tagged(self, prefix: str) -> dict[str, str]:
        return {k.removeprefix(prefix): v for k, v in self.tags.items() if k.startswith(prefix)}


def default_tracking_uri() -> str:
    return to_container(registry.compose())["tracking"]["uri"]


def read_run(client: MlflowClient, run_id: str) -> RunRecord:
    """The run and its recorded `config.yaml`."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        run = client.get_run(run_id)
        with open(client.download_artifacts(run_id, "config.yaml"), encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
    except MlflowException as error:
        raise RunNotFound(f"run {run_id} not found in {client.tracking_uri}, or it has no config.yaml: {error.message}") from error
    return RunRecord(run, config)


def metric_table(a: dict[str, float], b: dict[str, float]) -> list[tuple[str, float | None, float | None, bool]]:
    """Rows (metric, a, b, same) over the union of keys; timing metrics are never 'different'."""
    rows = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        same = key.endswith(TIMING_SUFFIX) or va == vb
        rows.append((key, va, vb, same))
    return rows
