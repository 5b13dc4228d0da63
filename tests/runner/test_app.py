"""The `mktlab` command end to end: real Hydra, Papermill kernel and MLflow store (slow)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import papermill as pm
import pytest

from conftest import MKTLAB, ROOT

TINY = ["debug=tiny", "trainer.epochs=3", "data.subsample=3000", "model.recommend_users=3"]
pytestmark = pytest.mark.slow


def artifact_paths(client, run_id: str, path: str = "") -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path or None):
        found |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_mf_run_records_params_metrics_artifacts_and_status(store, mktlab_cli) -> None:
    done = mktlab_cli(["model=mf", "model.dim=8", *TINY, *store.overrides])
    assert done.returncode == 0, done.stderr[-3000:]
    [run] = store.runs("mf")
    assert run.info.status == "FINISHED"
    assert run.data.params["model.dim"] == "8" and run.data.params["optim.name"] == "adam"
    assert run.data.params["trainer.epochs"] == "3" and run.data.params["data.stats.num_train"] == "2400"
    assert run.data.tags["mktlab.overrides"].startswith("model=mf model.dim=8")
    history = store.client.get_metric_history(run.info.run_id, "val_rmse")
    assert [m.step for m in history] == [1, 2, 3]
    for key in ("test_rmse", "test_mae", "test_precision_at_10", "test_recall_at_10", "test_ndcg_at_10"):
        assert np.isfinite(run.data.metrics[key]), key
    artifacts = artifact_paths(store.client, run.info.run_id)
    assert {"config.yaml", "notebook/mf_ratings.ipynb", "notebook/mf_ratings.html", "figures/learning_curve.png",
            "figures/error_histogram.png", "model/params.npz", "model/module.json", "recommendations_top10.csv"} <= artifacts
    assert "run " + run.info.run_id in done.stderr and "test_rmse" in done.stderr and "mlflow ui" in done.stderr

    from mktlab.train.checkpoint import load_module_from_run

    model = load_module_from_run(run.info.run_id, tracking_uri=store.uri)
    assert model.user_factors.embedding.value.shape[1] == 8


def test_failing_cell_marks_the_run_failed_and_keeps_the_partial_notebook(store, mktlab_cli, tmp_path: Path) -> None:
    done = mktlab_cli(["data=ml100k", "data.path=/no/such/folder", *store.overrides])
    assert done.returncode == 1
    assert "DataFileError" in done.stderr and "/no/such/folder" in done.stderr and "FAILED" in done.stderr
    [run] = store.runs("mf")
    assert run.info.status == "FAILED"
    assert "notebook/mf_ratings.ipynb" in artifact_paths(store.client, run.info.run_id)
    assert "/no/such/folder" in run.data.tags["mktlab.error"]
    executed = json.loads((tmp_path / "run" / "mf_ratings.ipynb").read_text())
    assert any(o.get("output_type") == "error" for c in executed["cells"] for o in c.get("outputs", []))


@pytest.mark.parametrize("override", ["model.no_such_key=1", "model.dim=lots"])
def test_bad_config_fails_before_any_run(store, mktlab_cli, override: str) -> None:
    done = mktlab_cli([override, *store.overrides])
    assert done.returncode == 1
    assert "model." in done.stderr
    assert not Path(store.uri.removeprefix("sqlite:///")).exists()  # no store, so no run, was created


def test_multirun_with_the_basic_launcher(store, mktlab_cli) -> None:
    done = mktlab_cli(["-m", "model.dim=4,8", *TINY, "trainer.epochs=1", *store.overrides])
    assert done.returncode == 0, done.stderr[-3000:]
    runs = store.runs("mf")
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.params["model.dim"] for r in children) == ["4", "8"]
    assert all(r.info.status == "FINISHED" for r in runs)


def test_notebook_opened_by_hand_composes_its_config_and_owns_its_run(store, tmp_path: Path) -> None:
    pm.execute_notebook(
        str(ROOT / "notebooks" / "mf_ratings.ipynb"),
        str(tmp_path / "out.ipynb"),
        parameters={"overrides": [*TINY, *store.overrides]},
        cwd=str(tmp_path),
        progress_bar=False,
    )
    [run] = store.runs("mf")
    assert run.info.status == "FINISHED"
    assert run.data.tags["mktlab.origin"] == "notebook" and run.data.params["trainer.epochs"] == "3"
    assert "test_rmse" in run.data.metrics


def test_sigterm_marks_the_run_killed(store, tmp_path: Path) -> None:
    process = subprocess.Popen(
        [MKTLAB, "trainer.epochs=200", "trainer.patience=null", *store.overrides, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    notebook = tmp_path / "run" / "mf_ratings.ipynb"
    deadline = time.time() + 120
    while time.time() < deadline and not notebook.exists():  # Papermill writes it once the kernel is up
        time.sleep(0.5)
    time.sleep(6)  # into the imports or the training cell
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    [run] = store.runs("mf")
    assert run.info.status == "KILLED"
    assert "notebook/mf_ratings.ipynb" in artifact_paths(store.client, run.info.run_id)
