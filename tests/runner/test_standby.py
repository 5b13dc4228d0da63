"""A finished command leaves a runner on standby, and the next `mktlab` command runs in a fork of it.

Each test keeps what waits in a temp folder of its own (`TMPDIR`), so only its own commands meet its standby
runner. The suite runs every other command with `MKTLAB_KERNEL_IDLE=0` (tests/conftest.py): nothing waits after them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from helpers import BIN, Store, children_named, gone_within, stop_what_waits_in, untimed, wait_for_training

pytestmark = pytest.mark.slow

TINY = ["model=mf", "debug=tiny", "trainer.progress=false", "seed=0"]
LONG = ["model=mf", "trainer.progress=false", "data.subsample=20000", "trainer.epochs=300", "trainer.patience=null"]
WRONG = ["model=mf", "trainer.epochs=oops"]  # fails at once, naming the key


class Standby:
    """`mktlab` commands run with a temp folder of their own (`TMPDIR`) and the runner on standby they leave there."""

    def __init__(self, cwd: Path, **env: str) -> None:
        self.temp = Path(tempfile.mkdtemp(prefix="mks"))  # short: the socket paths must fit
        self.cwd = cwd
        self.env = {**os.environ, "TMPDIR": str(self.temp), "MKTLAB_KERNEL_IDLE": "60", "PYTHONUNBUFFERED": "1", **env}

    def command(self, name: str, *overrides: str) -> list[str]:
        return [str(BIN / "mktlab"), *overrides, f"hydra.run.dir={self.cwd / name}"]

    def run(self, name: str, *overrides: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(name, *overrides), cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=600)

    def start(self, name: str, *overrides: str) -> subprocess.Popen:
        return subprocess.Popen(self.command(name, *overrides), cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def files(self, suffix: str) -> list[Path]:
        return list(self.temp.glob(f"mktlab-kernels-*/standby/*{suffix}"))

    def ready(self, within: float = 90) -> int:
        """The pid of the runner on standby, once it listens."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            records = self.files(".json")
            if records and self.files(".sock"):
                return json.loads(records[0].read_text())["pid"]
            time.sleep(0.2)
        raise AssertionError(f"no runner on standby after {within} s")

    def log(self) -> str:
        return "".join(path.read_text() for path in self.files(".log"))

    def served(self) -> list[int]:
        """The pids of the processes the standby forked to run commands."""
        return [int(pid) for pid in re.findall(r"serving (\d+):", self.log())]

    def stop(self) -> None:
        stop_what_waits_in(self.temp)


@pytest.fixture
def standby(tmp_path: Path):
    made: list[Standby] = []

    def make(**env: str) -> Standby:
        made.append(Standby(tmp_path, **env))
        return made[-1]

    yield make
    for each in made:
        each.stop()



def test_the_next_command_runs_in_the_runner_left_on_standby_with_the_same_metrics(standby, store: Store) -> None:
    commands = standby()
    first = commands.run("first", *TINY, *store.overrides)
    assert first.returncode == 0, first.stderr[-3000:]
    waiting = commands.ready()

    second = commands.run("second", *TINY, *store.overrides)
    assert second.returncode == 0, second.stderr[-3000:]
    (served,) = commands.served()
    assert "hydra.run.dir" not in commands.log()  # its values may hold credentials: the log names none
    # its output reached this command's own pipes: the papermill log, the summary and the link
    assert "Executing notebook with kernel" in second.stdout and "open it in MLflow" in second.stderr
    assert gone_within(served, 10)  # ended, and reaped by the standby
    assert psutil.pid_exists(waiting)  # which waits for the next command

    first_run, second_run = sorted(store.runs("mf"), key=lambda run: run.info.start_time)
    assert second_run.info.status == "FINISHED"
    assert second_run.data.tags["mktlab.run_dir"] == str(commands.cwd / "second")
    assert untimed(first_run.data.metrics) == untimed(second_run.data.metrics)

    wrong = commands.run("wrong", *WRONG)  # a failure's message and exit status come through it too
    assert wrong.returncode == 1 and "trainer.epochs" in wrong.stderr
    assert len(commands.served()) == 2


def test_ctrl_c_reaches_the_command_a_runner_on_standby_runs(standby, store: Store) -> None:
    commands = standby()
    assert commands.run("first", *WRONG).returncode == 1  # a command that failed leaves a standby too
    commands.ready()
    process = commands.start("long", *LONG, *store.overrides)
    wait_for_training(store, process)
    assert commands.served(), "the standby did not run the command"
    process.send_signal(signal.SIGINT)  # what a terminal's Ctrl-C sends this command
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    (run,) = store.runs("mf")
    assert run.info.status == "KILLED"
    assert all(gone_within(pid, 10) for pid in commands.served())


def test_a_command_killed_outright_takes_the_process_that_runs_it_along(standby, store: Store) -> None:
    commands = standby()
    assert commands.run("first", *WRONG).returncode == 1
    commands.ready()
    process = commands.start("long", *LONG, *store.overrides)
    wait_for_training(store, process)
    (served,) = commands.served()
    kernels = children_named(served, "ipykernel")
    assert kernels
    process.kill()
    process.wait()
    assert gone_within(served, 10)
    assert all(gone_within(kernel.pid, 10) for kernel in kernels)


def test_a_runner_on_standby_whose_import_path_changed_leaves_and_the_command_runs_by_itself(standby, tmp_path: Path) -> None:
    extra = tmp_path / "extra"  # a folder of the import path, as a package installed or removed changes site-packages
    extra.mkdir()
    commands = standby(PYTHONPATH=str(extra))
    assert commands.run("first", *WRONG).returncode == 1
    waiting = commands.ready()
    (extra / "new_module.py").write_text("")
    second = commands.run("second", *WRONG)
    assert second.returncode == 1 and "trainer.epochs" in second.stderr
    assert "stale" in commands.log() and str(extra) in commands.log()
    assert not commands.served()
    assert gone_within(waiting, 10)


def test_a_runner_on_standby_leaves_when_its_wait_is_over(standby) -> None:
    commands = standby(MKTLAB_KERNEL_IDLE="2")
    assert commands.run("first", *WRONG).returncode == 1
    waiting = commands.ready()
    assert gone_within(waiting, 20)
    assert not commands.files(".sock") and not commands.files(".json")
    assert "no command came" in commands.log()
