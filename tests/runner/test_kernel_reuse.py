"""A sweep's jobs share a warm kernel, and nothing leaks from one job to the next.

A probe notebook (a notebook of one's own, `notebook=...`) runs as the jobs of one sweep:
each job records what it finds (globals, open figures, folder, environment, the kernel's
process) before leaving its own traces (a global, an open figure, a changed setting) and,
as told, raising, interrupting itself or killing its kernel.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from helpers import Store

PROBE = """\
import os, json, warnings
import matplotlib
import matplotlib.pyplot as plt
from mktlab import session

cfg, tracker = session.start(config=config, run_id=run_id)
found = {
    "leaked_global": "LEAK" in globals(),
    "open_figures": len(plt.get_fignums()),
    "cwd_is_run_folder": os.getcwd() == tracker.client.get_run(tracker.run_id).data.tags["mktlab.run_dir"],
    "leaked_variable": "MKTLAB_PROBE_LEAK" in os.environ,
    "lines_width": matplotlib.rcParams["lines.linewidth"],
    "warnings_filters": len(warnings.filters),
    "figures_to_the_runner": os.path.isdir(os.environ.get("MKTLAB_FIGURE_HANDOFF", "")),
}
probe_figure = plt.figure()
found["shows_open_figures"] = matplotlib.is_interactive()  # the notebook backend, loaded at the first figure, shows them at a cell's end
plt.close(probe_figure)
tracker.log_dict(found, "found.json")
tracker.set_tags({"kernel_pid": str(os.getpid())})
LEAK = 1
os.environ["MKTLAB_PROBE_LEAK"] = "1"
matplotlib.rcParams["lines.linewidth"] = 9.0
warnings.simplefilter("ignore")
figure = plt.figure()
if action == "raise":
    raise RuntimeError("this job fails on purpose")
if action == "interrupt":
    raise KeyboardInterrupt
if action == "kill":
    os.kill(os.getpid(), 9)
tracker.log_metrics({"step": step})
"""


def probe(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    book = new_notebook()
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    parameters = new_code_cell("config = None\nrun_id = None\noverrides = []\nstep = 0\naction = 'none'")
    parameters.metadata["tags"] = ["parameters"]
    book.cells = [parameters, new_code_cell(PROBE)]
    path = folder / "probe.ipynb"
    nbformat.write(book, path)
    return path


def job_runs(store: Store) -> list:
    runs = [r for r in store.runs("probe") if r.data.tags.get("mktlab.sweep_role") != "parent"]
    return sorted(runs, key=lambda r: int(r.data.tags["mktlab.job_num"]))


def found(store: Store, run) -> dict:
    path = store.client.download_artifacts(run.info.run_id, "found.json")
    return json.loads(Path(path).read_text())


@pytest.mark.slow
def test_jobs_share_a_kernel_and_start_from_a_clean_slate(store: Store, mktlab_cli, tmp_path: Path) -> None:
    # job 0 leaves traces and raises; job 1 leaves traces and interrupts itself; job 2 leaves traces;
    # job 3 kills its kernel; job 4 runs in the replacement (jobs 2 and 4 in new kernels)
    notebook = probe(tmp_path / "nb")
    actions = ["raise", "interrupt", "none", "kill", "none"]
    result = mktlab_cli(["-m", f"notebook={notebook}", *store.overrides, "hydra/launcher=basic",
                         f"+params.action={','.join(actions)}"], timeout=600)
    assert result.returncode != 0  # three jobs failed on purpose
    runs = job_runs(store)
    assert [r.data.params.get("params.action") for r in runs] == actions
    assert [r.info.status for r in runs] == ["FAILED", "FAILED", "FINISHED", "FAILED", "FINISHED"]
    assert "kernel died" in runs[3].data.tags["mktlab.error"]
    fresh = found(store, runs[0])
    # each job's figures go to the runner, drawn while the next job runs (`mktlab.tracking.figure_handoff`)
    assert fresh == {"leaked_global": False, "open_figures": 0, "cwd_is_run_folder": True, "leaked_variable": False,
                     "lines_width": fresh["lines_width"], "warnings_filters": fresh["warnings_filters"], "figures_to_the_runner": True,
                     "shows_open_figures": True}
    for run in runs[1:]:
        assert found(store, run) == fresh, f"job {run.data.tags['mktlab.job_num']} saw a trace of the job before it"
    pids = [r.data.tags["kernel_pid"] for r in runs]
    # one kernel through the raising job; an interrupted kernel is replaced (it may hold the store's lock), as is a killed one
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]


@pytest.mark.slow
def test_reuse_can_be_turned_off(store: Store, mktlab_cli, tmp_path: Path) -> None:
    notebook = probe(tmp_path / "nb")
    result = mktlab_cli(["-m", f"notebook={notebook}", *store.overrides, "runner.reuse_kernel=false", "params.step=0,1"], timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = job_runs(store)
    assert len({r.data.tags["kernel_pid"] for r in runs}) == 2
