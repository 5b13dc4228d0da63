"""The `mktlab` command end to end: real Hydra, Papermill kernel and MLflow store (slow).

The runner's own behaviour, on the default model's notebook (mf); what an mf run records is
tests/models/mf/test_notebook.py."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import papermill as pm
import pytest

from helpers import MKTLAB, ROOT, artifact_paths

TINY = ["debug=tiny", "trainer.epochs=3", "data.subsample=3000", "model.eval.recommend_users=3"]
pytestmark = pytest.mark.slow


def test_failing_cell_marks_the_run_failed_and_keeps_the_partial_notebook(store, mktlab_cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty"  # a folder without the ml-100k files: the schema accepts it, loading the data fails
    empty.mkdir()
    done = mktlab_cli(["data=ml100k", f"data.path={empty}", *store.overrides])
    assert done.returncode == 1
    assert "DataFileError" in done.stderr and str(empty) in done.stderr and "FAILED" in done.stderr
    [run] = store.runs("mf")
    assert run.info.status == "FAILED"
    assert "notebook/mf.ipynb" in artifact_paths(store.client, run.info.run_id)
    assert str(empty) in run.data.tags["mktlab.error"]
    executed = json.loads((tmp_path / "run" / "mf.ipynb").read_text())
    assert any(o.get("output_type") == "error" for c in executed["cells"] for o in c.get("outputs", []))


def test_notebook_opened_by_hand_composes_its_config_and_owns_its_run(store, tmp_path: Path) -> None:
    pm.execute_notebook(
        str(ROOT / "notebooks" / "mf.ipynb"),
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
    notebook = tmp_path / "run" / "mf.ipynb"
    deadline = time.time() + 120
    while time.time() < deadline and not notebook.exists():  # Papermill writes it once the kernel is up
        time.sleep(0.5)
    time.sleep(6)  # into the imports or the training cell
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    [run] = store.runs("mf")
    assert run.info.status == "KILLED"
    assert "notebook/mf.ipynb" in artifact_paths(store.client, run.info.run_id)
