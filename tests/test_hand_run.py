"""A notebook run by hand (JupyterLab) opens its own run, logs the notebook as saved, and a finished
run is never changed again by a later cell of the same kernel."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from helpers import ROOT, Store


@pytest.mark.slow
def test_a_hand_run_notebook_finishes_its_run_for_good(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saved = tmp_path / "mf.ipynb"
    shutil.copy(ROOT / "notebooks" / "mf.ipynb", saved)
    book = nbformat.read(saved, as_version=4)
    overrides = ["debug=tiny", "data.subsample=2000", "trainer.progress=false", *store.overrides]
    (parameters,) = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    parameters.source = parameters.source.replace("overrides = []", f"overrides = {json.dumps(overrides)}")
    nbformat.write(book, saved)  # the notebook as the researcher saved it
    monkeypatch.setenv("JPY_SESSION_NAME", str(saved))  # what JupyterLab tells the kernel
    book.cells.append(new_code_cell("raise ValueError('a later experiment in the same kernel')"))
    NotebookClient(book, timeout=600, allow_errors=True, resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert book.cells[-1].outputs[0].ename == "ValueError"
    (run,) = store.runs("mf")
    assert run.info.status == "FINISHED"  # the later error changed nothing
    assert run.data.tags["mktlab.origin"] == "notebook" and run.data.tags["mktlab.overrides"] == " ".join(["model=mf", *overrides])
    assert run.data.tags["mktlab.notebook"] == str(saved)
    assert "notebook/mf.ipynb" in {a.path for a in store.client.list_artifacts(run.info.run_id, "notebook")}
    assert "test_rmse" in run.data.metrics


@pytest.mark.slow
def test_an_error_before_finish_fails_the_hand_run(store: Store, tmp_path: Path) -> None:
    book = nbformat.v4.new_notebook(cells=[
        new_code_cell(f"from mktlab import session\ncfg, tracker = session.start('mf', overrides={['debug=tiny', *store.overrides]!r})"),
        new_code_cell("raise RuntimeError('the analysis broke')"),
    ])
    NotebookClient(book, timeout=600, allow_errors=True, resources={"metadata": {"path": str(tmp_path)}}).execute()
    (run,) = store.runs("mf")
    assert run.info.status == "FAILED"
