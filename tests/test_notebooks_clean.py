"""Notebooks in git carry no outputs or execution counts, and each has a `parameters` cell."""

from __future__ import annotations

import json

import pytest

from helpers import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert {"mf.ipynb", "mlp.ipynb", "lstm.ipynb", "gan.ipynb", "review_runs.ipynb"} <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped_and_parameterized(path) -> None:
    cells = json.loads(path.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "strip outputs"
    assert "parameters" in code[0]["metadata"].get("tags", []), "first code cell must be tagged parameters"
    source = "".join(code[0]["source"])
    assert "config = None" in source and "run_id = None" in source and "overrides = " in source
    assert not any("".join(c["source"]).lstrip().startswith(("def ", "class ")) for c in code), "code belongs in src/"
