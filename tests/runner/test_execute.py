"""Executing a notebook: kernels on private Unix sockets, kernels started ahead, the outcome of a raising cell."""

from __future__ import annotations

import signal
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from mktlab.runner.execute import execute
from mktlab.runner.kernel import UnixSocketKernelManager, kernel_manager_class

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
    outcomes = [execute(write_notebook(tmp_path / "probe.ipynb", PROBE), tmp_path / f"out{i}.ipynb",
                        parameters={"answer": 42}, cwd=tmp_path, progress=False) for i in range(2)]
    assert [o.status for o in outcomes] == ["FINISHED", "FINISHED"]
    printed = [nbformat.read(tmp_path / f"out{i}.ipynb", as_version=4).cells[-1].outputs[0]["text"].split() for i in range(2)]
    assert [p[0] for p in printed] == ["ipc", "ipc"] and [p[2] for p in printed] == ["42", "42"]
    assert printed[0][1] != printed[1][1]  # each kernel has sockets of its own
    folders = {Path(p[1]).parent for p in printed}  # one private folder (mode 0700) under the temp folder holds them
    assert len(folders) == 1 and all(f.parent == Path(tempfile.gettempdir()) and f.name.startswith("mktlab-kernels-") for f in folders)
    assert all(f.stat().st_mode & 0o777 == 0o700 for f in folders)
    for prefix in (Path(p[1]) for p in printed):  # each kernel's socket files are removed at shutdown
        assert prefix.is_absolute() and not list(prefix.parent.glob(prefix.name + "-*"))


def test_a_raising_cell_fails_the_outcome_and_keeps_the_partial_notebook(tmp_path):
    outcome = execute(write_notebook(tmp_path / "bad.ipynb", "raise ValueError('bad value')"), tmp_path / "out.ipynb",
                      parameters={}, cwd=tmp_path, progress=False)
    assert outcome.status == "FAILED" and "bad value" in str(outcome.error)
    assert (tmp_path / "out.ipynb").is_file()


WARM_PROBE = """\
import os, sys
print(os.getcwd(), answer, "mktlab.train" in sys.modules)
"""


def test_an_early_kernel_has_imported_and_runs_the_notebook_in_the_run_folder(tmp_path):
    """Started before its folder exists, the kernel imports JAX & co. meanwhile, then runs the
    notebook in the run's folder; it is shut down afterwards and leaves nothing behind."""
    from mktlab.runner.kernel import WarmKernel

    kernel = WarmKernel()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    outcome = execute(write_notebook(tmp_path / "probe.ipynb", WARM_PROBE), run_dir / "out.ipynb", parameters={"answer": 7},
                      cwd=run_dir, progress=False, kernel=kernel)
    assert outcome.status == "FINISHED", outcome.error
    cwd, answer, imported = nbformat.read(run_dir / "out.ipynb", as_version=4).cells[-1].outputs[0]["text"].split()
    assert (Path(cwd), answer, imported) == (run_dir, "7", "True")  # the notebook itself imports nothing of mktlab
    assert not kernel.manager.is_alive() and not kernel._scratch.exists()
    assert len(kernel.manager.clients) == 2 and not any(c.channels_running for c in kernel.manager.clients)  # ours and Papermill's
    sockets = Path(kernel.manager.ip)
    assert not list(sockets.parent.glob(sockets.name + "-*"))


def test_the_waiting_kernel_gets_the_jobs_environment_and_is_replaced_when_a_startup_variable_changed(tmp_path, monkeypatch):
    """A job that sets environment variables (hydra.job.env_set, sweep callbacks) runs in a kernel that
    sees them: an ordinary variable reaches the waiting kernel; one read only at a process's start
    (JAX_*, XLA_*, ...) gives the job a fresh kernel."""
    from mktlab.runner import kernel as kernels

    kernels.start_early()
    waiting = kernels._waiting
    monkeypatch.setenv("MKTLAB_PROBE", "ordinary")
    probe = write_notebook(tmp_path / "probe.ipynb", "import os; print(os.environ['MKTLAB_PROBE'], os.environ.get('JAX_MKTLAB_PROBE'))")
    served = kernels.kernel_for(probe, tmp_path)
    assert served is waiting and kernels._waiting is None
    outcome = execute(probe, tmp_path / "out.ipynb", parameters={}, cwd=tmp_path, progress=False, kernel=served)
    assert outcome.status == "FINISHED", outcome.error
    assert nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[-1].outputs[0]["text"].split() == ["ordinary", "None"]
    kernels.release(served, reuse=True)
    monkeypatch.setenv("JAX_MKTLAB_PROBE", "startup")
    fresh = kernels.kernel_for(probe, tmp_path)
    try:
        assert fresh is not waiting and not waiting.manager.is_alive()
        outcome = execute(probe, tmp_path / "out2.ipynb", parameters={}, cwd=tmp_path, progress=False, kernel=fresh)
        assert outcome.status == "FINISHED", outcome.error
        assert nbformat.read(tmp_path / "out2.ipynb", as_version=4).cells[-1].outputs[0]["text"].split() == ["ordinary", "startup"]
    finally:
        fresh.shutdown()


def test_the_early_kernel_serves_the_run_despite_variables_the_runner_imports_set(tmp_path, monkeypatch):
    """MLflow sets a private session variable when the runner imports it; that is not the job's
    environment, so the kernel started before those imports still runs the notebook."""
    from mktlab.runner import kernel as kernels

    kernels.start_early()
    early = kernels._waiting
    monkeypatch.setenv("PYTHON_MKTLAB_PROBE_SESSION", "set by an import")
    kernels.settle_environment()
    served = kernels.kernel_for(write_notebook(tmp_path / "probe.ipynb", "pass"), tmp_path)
    try:
        assert served is early and early.manager.is_alive()
    finally:
        early.shutdown()


def test_a_warm_kernel_that_died_leaves_the_notebook_to_a_fresh_kernel(tmp_path):
    from mktlab.runner.kernel import WarmKernel

    kernel = WarmKernel()
    kernel.manager.signal_kernel(signal.SIGKILL)
    while kernel.manager.is_alive():
        time.sleep(0.05)
    outcome = execute(write_notebook(tmp_path / "probe.ipynb", WARM_PROBE), tmp_path / "out.ipynb", parameters={"answer": 5},
                      cwd=tmp_path, progress=False, kernel=kernel)
    assert outcome.status == "FINISHED", outcome.error
    cwd, answer, _ = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[-1].outputs[0]["text"].split()
    assert (Path(cwd), answer) == (tmp_path, "5")
    assert not kernel._scratch.exists()


def test_a_prepared_kernel_has_opened_the_runs_store_before_the_first_cell(tmp_path):
    """`kernel_for(..., tracking)` opens the store in the kernel while the runner opens the run;
    a store that cannot be opened there is left to the notebook, which still runs."""
    from mktlab.runner import kernel as kernels

    database = tmp_path / "store" / "mlflow.db"
    probe = f"import os; print(os.path.exists({str(database)!r}), os.getcwd())"
    for name, tracking in (("good", {"uri": f"sqlite:///{database}", "artifact_root": None}), ("bad", {"uri": "nosuchscheme://x"})):
        run_dir = tmp_path / name
        run_dir.mkdir()
        notebook = write_notebook(tmp_path / f"{name}.ipynb", probe)
        kernel = kernels.kernel_for(notebook, run_dir, tracking)
        outcome = execute(notebook, run_dir / "out.ipynb", parameters={}, cwd=run_dir, progress=False, kernel=kernel)
        assert outcome.status == "FINISHED", outcome.error
        exists, cwd = nbformat.read(run_dir / "out.ipynb", as_version=4).cells[-1].outputs[0]["text"].split()
        assert (exists, Path(cwd)) == ("True", run_dir)  # the good store was made before any cell ran


def test_a_sweeps_start_has_the_waiting_kernel_open_the_store_before_any_job_is_prepared(tmp_path):
    """`open_store_early` (a sweep's start) opens the store in the waiting kernel while the runner validates the
    jobs: the store's file exists before any job prepares the kernel; a bad URI is left to the notebook."""
    from mktlab.runner import kernel as kernels

    database = tmp_path / "store" / "mlflow.db"
    kernels.start_early()
    waiting = kernels._waiting
    try:
        kernels.open_store_early("nosuchscheme://x")  # nothing to open: the kernel carries on
        kernels.open_store_early(f"sqlite:///{database}")
        deadline = time.monotonic() + 60
        while not database.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert database.exists() and kernels._waiting is waiting and waiting.manager.is_alive()
        notebook = write_notebook(tmp_path / "probe.ipynb", "import sys; print(len(sys.modules['mktlab.tracking.store']._CLIENTS))")
        served = kernels.kernel_for(notebook, tmp_path)
        outcome = execute(notebook, tmp_path / "out.ipynb", parameters={}, cwd=tmp_path, progress=False, kernel=served)
        assert outcome.status == "FINISHED", outcome.error
        assert nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[-1].outputs[0]["text"].split() == ["1"]
    finally:
        kernels.stop_waiting()
        waiting.shutdown()


def test_the_html_of_an_executed_notebook_needs_no_network(tmp_path):
    """nbconvert's lab template loads require.js and MathJax from a CDN; mktlab's copy loads nothing."""
    import base64
    import re

    from nbformat.v4 import new_markdown_cell, new_output

    from mktlab.runner.execute import export_html

    png = base64.b64encode(bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")).decode()
    book = new_notebook(cells=[new_markdown_cell("# Reading\nThe model beats its baseline: $\\alpha < 1$."),
                               new_code_cell("plot()", outputs=[new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})])])
    nbformat.write(book, tmp_path / "run.ipynb")
    html = export_html(tmp_path / "run.ipynb").read_text()
    assert re.findall(r"<script[^>]*\bsrc=", html) == []  # no script from anywhere
    assert "cdnjs" not in html and "require.min.js" not in html and "MathJax.Hub" not in html
    assert f"data:image/png;base64,{png}" in html  # figures are inside the file
    assert "jp-Notebook" in html and "The model beats its baseline" in html  # JupyterLab's look, the text as written


def test_a_figures_text_alternative_reaches_its_image_in_the_html(tmp_path, caplog):
    """A figure displayed with `alt` metadata (as `Report.show` displays it) keeps it in the HTML, so nbconvert
    finds no image without a text alternative (and warns of none)."""
    import base64
    import logging

    from nbformat.v4 import new_output

    from mktlab.runner.execute import export_html

    png = base64.b64encode(bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")).decode()
    shown = new_output("display_data", data={"image/png": png, "text/plain": "<Image>"},
                       metadata={"image/png": {"alt": "learning curve; training & validation", "width": 550}})
    nbformat.write(new_notebook(cells=[new_code_cell("report.show('learning_curve')", outputs=[shown])]), tmp_path / "run.ipynb")
    with caplog.at_level(logging.WARNING):
        html = export_html(tmp_path / "run.ipynb").read_text()
    assert 'alt="learning curve; training &amp; validation"' in html and 'width="550"' in html
    assert f"data:image/png;base64,{png}" in html
    assert "Alternative text is missing" not in caplog.text


def test_a_running_notebook_is_written_at_its_start_and_end_and_every_few_seconds_between(tmp_path, monkeypatch):
    """Papermill writes the notebook at each cell's start and end; mktlab's engine only when `SAVE_EVERY`
    seconds have passed since the last write, and always at the start and the end of the run."""
    import papermill.engines

    from mktlab.runner import execute as execute_module

    writes = []
    real_write = papermill.engines.write_ipynb
    monkeypatch.setattr(papermill.engines, "write_ipynb", lambda nb, path: (writes.append(time.monotonic()), real_write(nb, path)))
    quick = write_notebook(tmp_path / "quick.ipynb", "x = 1")
    nb = nbformat.read(quick, as_version=4)
    nb.cells += [new_code_cell(f"y = {i}") for i in range(4)] + [new_code_cell("import time; time.sleep(1.2)"), new_code_cell("z = 2")]
    nbformat.write(nb, quick)

    assert execute(quick, tmp_path / "out.ipynb", parameters={}, cwd=tmp_path, progress=False).ok
    assert len(writes) == 2  # the start and the end: no cell boundary came 10 s after a write
    book = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert all(c.metadata.papermill["status"] == "completed" for c in book.cells if c.cell_type == "code")

    writes.clear()
    monkeypatch.setattr(execute_module, "SAVE_EVERY", 1.0)
    assert execute(quick, tmp_path / "out.ipynb", parameters={}, cwd=tmp_path, progress=False).ok
    # the start, a cell boundary at least 1 s after each write (one after the sleeping cell's 1.2 s at least), the end
    between = [later - earlier for earlier, later in zip(writes[:-2], writes[1:-1])]
    assert len(writes) >= 3 and all(gap >= 1.0 for gap in between), between
