"""Executing a notebook: kernels on private Unix sockets, the outcome of a raising cell."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from mktlab.runner.execute import UnixSocketKernelManager, execute, kernel_manager_class

PROBE = """\
from ipykernel.kernelapp import IPKernelApp
app = IPKernelApp.instance()
print(app.transport, app.ip, answer)
"""


def write_notebook(path: Path, source: str) -> Path:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    parameters = new_code_cell("answer = 0")
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, new_code_cell(source)]
    nbformat.write(nb, path)
    return path


@pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets")
def test_kernels_talk_over_private_unix_sockets_and_remove_them(tmp_path):
    assert kernel_manager_class() is UnixSocketKernelManager
    before = set(Path(tempfile.gettempdir()).glob("mktlab-kernel-*"))
    outcomes = [execute(write_notebook(tmp_path / "probe.ipynb", PROBE), tmp_path / f"out{i}.ipynb",
                        parameters={"answer": 42}, cwd=tmp_path, progress=False) for i in range(2)]
    assert [o.status for o in outcomes] == ["FINISHED", "FINISHED"]
    printed = [nbformat.read(tmp_path / f"out{i}.ipynb", as_version=4).cells[-1].outputs[0]["text"].split() for i in range(2)]
    assert [p[0] for p in printed] == ["ipc", "ipc"] and [p[2] for p in printed] == ["42", "42"]
    assert printed[0][1] != printed[1][1]  # each kernel has sockets of its own
    assert all(p[1].startswith(str(Path(tempfile.gettempdir()) / "mktlab-kernel-")) for p in printed)
    assert set(Path(tempfile.gettempdir()).glob("mktlab-kernel-*")) == before  # removed at shutdown


def test_a_raising_cell_fails_the_outcome_and_keeps_the_partial_notebook(tmp_path):
    outcome = execute(write_notebook(tmp_path / "bad.ipynb", "raise ValueError('bad value')"), tmp_path / "out.ipynb",
                      parameters={}, cwd=tmp_path, progress=False)
    assert outcome.status == "FAILED" and "bad value" in str(outcome.error)
    assert (tmp_path / "out.ipynb").is_file()
