"""`mktlab-diff` names exactly what changed between two runs."""

from __future__ import annotations

import subprocess

import pytest

from helpers import BIN
from mktlab.config import to_container
from mktlab.models import registry
from mktlab.runner.diff import differences
from mktlab.runner.records import read_run
from mktlab.tracking import open_run

pytestmark = pytest.mark.slow  # runs the mktlab-diff command


def test_diff_names_exactly_the_changed_keys(store) -> None:
    notebook = registry.get("mf").notebook_path()
    a = open_run(to_container(registry.compose([*store.overrides, "model.dim=8"])), notebook=notebook)
    b = open_run(to_container(registry.compose([*store.overrides, "model.dim=16", "optim.lr=0.5"])), notebook=notebook)
    a.log_metrics({"test_rmse": 0.9, "fit_seconds": 1.0})
    b.log_metrics({"test_rmse": 0.8, "fit_seconds": 2.0})
    found = differences(read_run(store.client, a.run_id), read_run(store.client, b.run_id))
    assert [row[0] for row in found["config"]] == ["model.dim", "optim.lr"]
    assert found["config"][0][1:] == ("8", "16")
    assert [row[0] for row in found["metrics"]] == ["test_rmse"]
    assert found["code"] == found["package versions"] == found["data"] == []
    shown = subprocess.run([BIN / "mktlab-diff", a.run_id, b.run_id, "--tracking-uri", store.uri], capture_output=True, text=True)
    assert shown.returncode == 0 and "model.dim" in shown.stdout and "optim.lr" in shown.stdout and "package versions: same" in shown.stdout
