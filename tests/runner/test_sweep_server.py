"""The cluster path on one machine: jobs through submitit (SLURM's code path, local subprocesses) logging to a
real `mlflow server` on a free loopback port; the runs are checked through the REST client."""

from __future__ import annotations

import pytest
import servers
from helpers import STUB_EXPERIMENT, artifact_paths, stub_notebook
from mlflow.tracking import MlflowClient

@pytest.fixture
def mlflow_server(tmp_path):
    """`mlflow server` on 127.0.0.1 over a SQLite store, serving artifacts; yields its URL."""
    with servers.mlflow_server(tmp_path / "server") as url:
        yield url


@pytest.mark.slow
def test_submitit_sweep_against_tracking_server(mlflow_server, mktlab_cli, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    result = mktlab_cli(["-m", "tracking=server", f"tracking.uri={mlflow_server}", "hydra/launcher=submitit_local",
                         *stub_notebook(tmp_path / "nb"), "params.dim=1,2"])
    assert result.returncode == 0, result.stderr[-3000:]

    client = MlflowClient(tracking_uri=mlflow_server)  # the REST client
    experiment = client.get_experiment_by_name(STUB_EXPERIMENT)
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # the server stores the artifacts
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("mktlab.sweep_role") == "parent")
    children = sorted((r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id), key=lambda r: r.info.run_name)
    assert [r.info.run_name for r in children] == ["params.dim=1", "params.dim=2"]
    assert parent.info.status == "FINISHED" and all(r.info.status == "FINISHED" for r in children)
    assert parent.data.metrics["best_val_rmse"] == children[0].data.metrics["best_val_rmse"]
    assert len(client.get_metric_history(children[1].info.run_id, "val_rmse")) == 10
    assert "notebook/sweep_stub.ipynb" in artifact_paths(client, children[0].info.run_id)
    assert "sweep/summary.csv" in artifact_paths(client, parent.info.run_id)
    assert any((tmp_path / "server" / "artifacts").rglob("sweep_stub.ipynb"))  # uploaded through the server
    assert any((tmp_path / "multirun" / ".submitit").rglob("*_log.out"))  # the jobs went through submitit
