"""The team set-up on one machine: a real PostgreSQL server, an MLflow server on it started by
`make mlflow-server` (the database's URI in a file, `BACKEND_FILE`, never on a command line), a 4-job
joblib sweep logging through it, every run and metric read back through the REST client, and
`mktlab-review` run against it."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import psutil
import psycopg
import pytest
from helpers import BIN, STUB_EXPERIMENT, artifact_paths, run_mktlab, stub_notebook, stub_score
from mlflow.tracking import MlflowClient
from servers import make_mlflow_server, postgres_server

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

EPOCHS = 10  # the stub notebook's


def command_lines_holding(secret: str) -> list[str]:
    """Every process whose command line holds `secret`."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        if secret in line:
            found.append(f"{process.info['pid']}: {line[:200]}")
    return found


def test_a_sweep_through_an_mlflow_server_on_postgresql(tmp_path: Path, record_property) -> None:
    with postgres_server() as database:
        password = database.split(":", 2)[2].split("@", 1)[0]
        backend_file = tmp_path / "backend-store-uri"
        backend_file.write_text(database + "\n")
        backend_file.chmod(0o600)  # a file only its owner reads
        server = make_mlflow_server(tmp_path / "server", backend_file=backend_file)
        with server.running():
            record_property("timing", f"mlflow server on PostgreSQL answered after {server.ready_after:.1f} s (make mlflow-server)")
            assert command_lines_holding(password) == [], "the database password is on a command line"

            started = time.perf_counter()
            sweep = run_mktlab(["-m", "tracking=server", f"tracking.uri={server.url}", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                                *stub_notebook(tmp_path / "nb"), "params.dim=1,2", "seed=0,1"], tmp_path, timeout=900)
            seconds = time.perf_counter() - started
            assert sweep.returncode == 0, sweep.stderr[-3000:]
            assert command_lines_holding(password) == []

            client = MlflowClient(tracking_uri=server.url)  # the REST client
            experiment = client.get_experiment_by_name(STUB_EXPERIMENT)
            assert experiment.artifact_location.startswith("mlflow-artifacts:")  # artifacts go through the server
            assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
            runs = client.search_runs([experiment.experiment_id])
            (parent,) = [r for r in runs if r.data.tags.get("mktlab.sweep_role") == "parent"]
            children = sorted((r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id),
                              key=lambda r: int(r.data.tags["mktlab.job_num"]))
            assert len(runs) == 5 and len(children) == 4
            assert parent.info.status == "FINISHED" and parent.data.tags["mktlab.launcher"] == "joblib"
            assert parent.data.metrics["sweep_jobs"] == 4 and parent.data.metrics["sweep_failed_jobs"] == 0
            values = 0
            for job, run in enumerate(children):
                dim, seed = (1, 1, 2, 2)[job], job % 2
                assert run.info.status == "FINISHED"
                assert run.info.run_name == f"params.dim={dim},seed={seed}"
                assert (run.data.params["params.dim"], run.data.params["seed"]) == (str(dim), str(seed))
                assert run.data.metrics["best_val_rmse"] == pytest.approx(stub_score(dim=dim, seed=seed))
                assert {"best_val_rmse", "best_epoch", "test_rmse", "val_rmse", "train_loss"} <= set(run.data.metrics)
                for name in ("val_rmse", "train_loss"):
                    history = client.get_metric_history(run.info.run_id, name)
                    assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))  # every epoch's value landed
                    values += len(history)
                values += len(run.data.metrics) - 2
                assert "notebook/sweep_stub.ipynb" in artifact_paths(client, run.info.run_id)
            best = min(children, key=lambda r: r.data.metrics["best_val_rmse"])
            assert parent.data.tags["mktlab.best_run_id"] == best.info.run_id == children[0].info.run_id
            assert f"{server.url}/#/experiments/{experiment.experiment_id}/runs/{best.info.run_id}?workflowType=machine_learning" in sweep.stderr
            record_property("timing", f"PostgreSQL sweep: {len(children)} jobs + parent, {values} metric values, {seconds:.0f} s")

            # the runs are PostgreSQL's rows
            with psycopg.connect(database) as connection, connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM runs")
                assert cursor.fetchone()[0] == 5
                cursor.execute("SELECT count(*) FROM metrics")
                assert cursor.fetchone()[0] >= values

            # the review notebook, against the server
            reviewed = subprocess.run([str(BIN / "mktlab-review"), f"sweep_id={parent.data.tags['mktlab.sweep_id']}", "tracking=server",
                                       f"tracking.uri={server.url}"], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                                      env={**os.environ, "PYTHONUNBUFFERED": "1"})
            assert reviewed.returncode == 0, reviewed.stderr[-3000:]
            assert {"review/review_runs.ipynb", "review/review_runs.html", "review/ranking.csv"} <= artifact_paths(client, parent.info.run_id)
            route = f"#/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}/artifacts/review/review_runs.html?workflowType=machine_learning"
            assert f"{server.url}/{route}" in reviewed.stderr
            assert password not in sweep.stdout + sweep.stderr + reviewed.stdout + reviewed.stderr
        assert password not in (tmp_path / "server" / "server.log").read_text()
