"""The failure matrix: what a user can get wrong, driven through the real `mktlab` command.

Each case asserts the exit code, the one message naming what is wrong, the store's state
(no run left RUNNING, anywhere) and the artifacts a failed run keeps.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import nbformat
import pytest

from helpers import MKTLAB, Store, children_named, wait_for_training
from mktlab.config import ConfigError
from mktlab.models import registry

TINY = ["debug=tiny", "trainer.progress=false"]


def statuses(store: Store) -> list[str]:
    """The status of every run of every experiment in the store."""
    client = store.client
    if not Path(store.uri.removeprefix("sqlite:///")).is_file():
        return []
    return [run.info.status for exp in client.search_experiments() for run in client.search_runs([exp.experiment_id])]


def assert_one_clear_message(done: subprocess.CompletedProcess, *needles: str) -> None:
    """Non-zero exit, the message's words in the output, no Python traceback."""
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-3000:]
    for needle in needles:
        assert needle in output, f"{needle!r} not in:\n{output[-3000:]}"
    assert "Traceback (most recent call last)" not in output, output[-3000:]


BAD_VALUES = [
    (["model.dim=0"], "model.dim=0: expected an integer >= 1"),
    (["optim.lr=-1"], "optim.lr=-1.0: expected a number > 0"),
    (["trainer.epochs=0"], "trainer.epochs=0: expected an integer >= 1"),
    (["data.val_frac=1.5"], "data.val_frac=1.5: expected a fraction in [0, 1)"),
    (["model=lstm", "data=clicklog_file"], "data.path=null: expected a CSV or Parquet click log"),
    (["+data.password=x"], "data.password: no such key"),
    (["trainer.patience=0"], "trainer.patience=0: expected an integer >= 1, or null"),
]


@pytest.mark.parametrize("overrides, needle", BAD_VALUES)
def test_bad_values_are_named_with_their_range(overrides: list[str], needle: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(needle)):
        registry.typed(registry.compose(["debug=tiny", *overrides]))


# Through the command, one case of each way a config is refused: a value checked by mktlab's schema (a size
# outside its range is the sweep's case below; every range is checked above) and a key Hydra does not know.
@pytest.mark.parametrize("overrides, needle", [BAD_VALUES[4], BAD_VALUES[5]], ids=["a required path (row 8)", "an unknown key (row 14)"])
def test_bad_values_stop_the_command_before_any_run(mktlab_cli, store: Store, overrides: list[str], needle: str) -> None:
    done = mktlab_cli([*TINY, *overrides, *store.overrides])
    assert_one_clear_message(done, "Error in config", needle)
    assert statuses(store) == []


def test_a_sweep_validates_every_job_before_the_first_runs(mktlab_cli, store: Store) -> None:
    done = mktlab_cli(["-m", *TINY, "model.dim=8,0", *store.overrides])
    assert_one_clear_message(done, "job 1", "model.dim=0: expected an integer >= 1", "no job was run")
    assert statuses(store) == []  # not even the sweep's parent run


def test_a_damaged_sqlite_store_is_named_and_no_run_exists(mktlab_cli, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(b"this is not a database\x00" * 100)
    done = mktlab_cli([*TINY, f"tracking.uri=sqlite:///{damaged}"])
    assert_one_clear_message(done, f"cannot open the tracking store the SQLite file {damaged}")
    assert damaged.read_bytes().startswith(b"this is not a database")


def test_an_artifact_store_that_cannot_be_written_fails_the_run(mktlab_cli, store: Store, tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("artifacts cannot go under a file")
    done = mktlab_cli([*TINY, f"tracking.uri={store.uri}", f"tracking.artifact_root={blocked / 'mlartifacts'}"])
    assert_one_clear_message(done, "cannot record run", str(blocked))
    (run,) = store.runs("mf")
    assert run.info.status == "FAILED" and "cannot record run" in run.data.tags["mktlab.error"]


def test_an_unreachable_server_fails_fast_with_the_password_masked(mktlab_cli) -> None:
    started = time.monotonic()
    done = mktlab_cli([*TINY, "tracking=server", "tracking.uri=http://analyst:Hunter2Password@127.0.0.1:9", "tracking.timeout=5"])
    assert time.monotonic() - started < 60  # start-up included; MLflow's own retries took minutes
    assert_one_clear_message(done, "the MLflow server http://analyst:****@127.0.0.1:9 did not answer within 5 s")
    assert "Hunter2Password" not in done.stdout + done.stderr


def test_diverging_training_fails_with_advice_and_a_new_tag_needs_no_plus(mktlab_cli, store: Store) -> None:
    done = mktlab_cli([*TINY, "optim.lr=1e6", "trainer.epochs=6", "tags.ticket=MKT-12", *store.overrides])
    assert done.returncode == 1
    assert "lower optim.lr" in done.stderr
    (run,) = store.runs("mf")
    assert run.info.status == "FAILED"
    assert "diverges" in run.data.tags["mktlab.error"] or "became" in run.data.tags["mktlab.error"]
    assert run.data.tags["ticket"] == "MKT-12"  # `tags.ticket=...`, a key the config does not hold, without Hydra's `+` (row 14)




def _start(args: list[str], tmp_path: Path, *, own_group: bool = False) -> subprocess.Popen:
    """`mktlab *args`; with `own_group`, in a process group of its own, which a terminal's Ctrl-C reaches whole."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [MKTLAB, *args, f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'multirun'}"]
    return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=own_group)


LONG = ["trainer.progress=false", "data.subsample=20000", "trainer.epochs=300", "trainer.patience=null"]


@pytest.mark.slow
def test_a_dead_kernel_ends_the_run(store: Store, tmp_path: Path) -> None:
    process = _start([*LONG, *store.overrides], tmp_path)
    wait_for_training(store, process)
    (kernel,) = children_named(process.pid, "ipykernel")
    killed = time.monotonic()
    kernel.send_signal(signal.SIGKILL)
    _, stderr = process.communicate(timeout=120)
    assert time.monotonic() - killed < 10 + 5  # noticed within 10 s (plus logging the partial notebook)
    assert process.returncode == 1
    assert "the notebook kernel died during cell" in stderr and "killed by SIGKILL" in stderr
    (run,) = store.runs("mf")
    assert run.info.status == "FAILED" and "the notebook kernel died during cell" in run.data.tags["mktlab.error"]
    assert "notebook/mf.ipynb" in {a.path for a in store.client.list_artifacts(run.info.run_id, "notebook")}
    book = nbformat.read(tmp_path / "run" / "mf.ipynb", as_version=4)
    states = [c.metadata.papermill["status"] for c in book.cells if c.cell_type == "code"]
    assert "failed" in states and states[states.index("failed") + 1 :] == ["pending"] * (len(states) - states.index("failed") - 1)


@pytest.mark.slow
def test_a_dead_kernel_fails_only_its_job_of_a_sweep(store: Store, tmp_path: Path) -> None:
    process = _start(["-m", *LONG, "seed=0,1", *store.overrides], tmp_path)
    wait_for_training(store, process)
    (kernel,) = children_named(process.pid, "ipykernel")
    kernel.send_signal(signal.SIGKILL)
    wait_for_training(store, process, job="1")  # the sweep goes on in a new kernel: job 1 trains
    for survivor in children_named(process.pid, "ipykernel"):  # job 1 would train 300 epochs: interrupt it
        survivor.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode != 0
    runs = store.runs("mf")
    statuses = {r.data.tags.get("mktlab.job_num", r.data.tags.get("mktlab.sweep_role")): r.info.status for r in runs}
    assert "RUNNING" not in statuses.values(), f"{statuses}\n{stderr[-3000:]}"
    job0 = next(r for r in runs if r.data.tags.get("mktlab.job_num") == "0")
    assert job0.info.status == "FAILED" and "kernel died" in job0.data.tags["mktlab.error"]
    job1 = [r for r in runs if r.data.tags.get("mktlab.job_num") == "1"]
    assert job1, "the sweep stopped after the dead job instead of going on"


@pytest.mark.slow
def test_ctrl_c_marks_the_run_killed_and_the_notebook_says_where_it_stopped(store: Store, tmp_path: Path) -> None:
    process = _start([*LONG, *store.overrides], tmp_path)
    wait_for_training(store, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    (run,) = store.runs("mf")
    assert run.info.status == "KILLED"
    book = nbformat.read(tmp_path / "run" / "mf.ipynb", as_version=4)
    code = [c for c in book.cells if c.cell_type == "code"]
    states = [c.metadata.papermill["status"] for c in code]
    stopped = states.index("interrupted")
    assert "result = session.fit" in "".join(code[stopped].source)
    assert all(s == "completed" for s in states[:stopped]) and all(s == "pending" for s in states[stopped + 1 :])
    assert all(not c.outputs and c.execution_count is None for c in code[stopped + 1 :])


@pytest.mark.slow
def test_ctrl_c_stops_a_sweep_with_one_message_and_every_run_closed(store: Store, tmp_path: Path) -> None:
    process = _start(["-m", *LONG, "seed=0,1,2", *store.overrides], tmp_path)
    wait_for_training(store, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    assert "mktlab: interrupted" in stderr and "Traceback" not in stderr, stderr[-3000:]
    runs = store.runs("mf")
    statuses = {r.data.tags.get("mktlab.job_num", r.data.tags.get("mktlab.sweep_role")): r.info.status for r in runs}
    assert statuses == {"0": "KILLED", "parent": "FAILED"}, statuses  # jobs 1 and 2 never started


@pytest.mark.slow
def test_ctrl_c_in_a_parallel_sweep_leaves_no_run_running(store: Store, tmp_path: Path) -> None:
    """Ctrl-C reaches the launcher and its joblib workers at once; joblib then stops its workers, maybe before
    their jobs close their runs: the sweep closes every run still RUNNING as KILLED."""
    process = _start(["-m", "hydra/launcher=joblib", *LONG, "seed=0,1,2,3", *store.overrides], tmp_path, own_group=True)
    wait_for_training(store, process)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    runs = store.runs("mf")
    statuses = {r.data.tags.get("mktlab.job_num", r.data.tags.get("mktlab.sweep_role")): r.info.status for r in runs}
    assert statuses.pop("parent") == "FAILED" and statuses and set(statuses.values()) == {"KILLED"}, statuses
