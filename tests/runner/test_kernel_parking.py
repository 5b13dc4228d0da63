"""A finished command's kernel waits, warm, for the next `mktlab` command (`MKTLAB_KERNEL_IDLE` seconds).

Each test parks kernels in a temp folder of its own (`TMPDIR`), so it adopts only its own. The suite
runs every other command with `MKTLAB_KERNEL_IDLE=0` (tests/conftest.py): no kernel waits after them.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from helpers import BIN, Store, children_named, gone_within, stop_what_waits_in, untimed

pytestmark = pytest.mark.slow

TINY = ["model=mf", "debug=tiny", "trainer.progress=false", "seed=0"]


@pytest.fixture
def parking(tmp_path: Path):
    """`(run, parked)`: `run(name, *overrides, idle=...)` runs `mktlab` with kernels parked in a temp folder of this
    test's; `parked()` lists the parked kernels' records there (each only its owner may read: it holds the kernel's
    key). Every kernel still parked is stopped at the end."""
    temp = Path(tempfile.mkdtemp(prefix="mkp"))  # short: the kernels' Unix socket paths must fit

    def run(name: str, *overrides: str, idle: str = "60") -> subprocess.CompletedProcess:
        env = {**os.environ, "TMPDIR": str(temp), "MKTLAB_KERNEL_IDLE": idle}
        return subprocess.run([str(BIN / "mktlab"), *overrides, f"hydra.run.dir={tmp_path / name}"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)

    def parked() -> list[dict]:
        paths = list(temp.glob("mktlab-kernels-*/parked/*.json"))
        assert all(path.stat().st_mode & 0o077 == 0 for path in paths)
        return [json.loads(path.read_text()) for path in paths]

    yield run, parked
    stop_what_waits_in(temp)  # the kernels parked, and the runners the commands left on standby



def test_the_next_command_runs_in_the_kernel_the_last_one_left_with_the_same_metrics(parking, store: Store) -> None:
    run, parked = parking
    first = run("first", *TINY, *store.overrides)
    assert first.returncode == 0, first.stderr[-3000:]
    (record,) = parked()
    assert psutil.pid_exists(record["pid"])

    # the store is removed and made anew at the same path: the kernel opens it again, not the file it had open
    store_file = Path(store.uri.removeprefix("sqlite:///"))
    store_file.unlink()
    second = run("second", *TINY, *store.overrides)
    assert second.returncode == 0, second.stderr[-3000:]
    assert [r["pid"] for r in parked()] == [record["pid"]]  # adopted, then parked again

    fresh = run("fresh", *TINY, *store.overrides, idle="0")  # a kernel of its own, which it stops
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert [r["pid"] for r in parked()] == [record["pid"]]
    runs = store.runs("mf")
    assert len(runs) == 2  # the first run went with the store's old file
    assert untimed(runs[0].data.metrics) == untimed(runs[1].data.metrics)


def test_a_kernel_whose_code_changed_on_disk_is_not_adopted_and_leaves(parking, store: Store) -> None:
    run, parked = parking
    assert run("first", *TINY, *store.overrides).returncode == 0
    (record,) = parked()
    import mktlab.runner.kernel_state as imported  # a module every kernel imports

    source = Path(imported.__file__)
    stat = source.stat()
    try:
        os.utime(source, (stat.st_atime, time.time() + 1))
        second = run("second", *TINY, *store.overrides)
    finally:
        os.utime(source, (stat.st_atime, stat.st_mtime))
    assert second.returncode == 0, second.stderr[-3000:]
    assert gone_within(record["pid"], 10)
    assert [r["pid"] for r in parked()] != [record["pid"]]


def test_a_parked_kernel_leaves_when_its_wait_is_over(parking, store: Store) -> None:
    run, parked = parking
    assert run("first", *TINY, *store.overrides, idle="2").returncode == 0
    (record,) = parked()
    assert gone_within(record["pid"], 15)
    second = run("second", *TINY, *store.overrides)
    assert second.returncode == 0, second.stderr[-3000:]
    (now,) = parked()  # the record of the kernel that left is removed; the new command's kernel waits in its turn
    assert now["pid"] != record["pid"]


def test_a_kernel_leaves_when_its_command_is_killed(tmp_path: Path, store: Store) -> None:
    """Kernels do not end with their runner's process (a parked one outlives it): a kernel whose runner was killed
    mid-run notices and leaves by itself."""
    env = {**os.environ, "MKTLAB_KERNEL_IDLE": "60", "TMPDIR": tempfile.mkdtemp(prefix="mkp")}
    command = subprocess.Popen([str(BIN / "mktlab"), "model=mf", "trainer.progress=false", *store.overrides,
                                f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        kernels: list[psutil.Process] = []
        while not kernels and time.monotonic() < deadline and command.poll() is None:
            time.sleep(0.5)
            kernels = children_named(command.pid, "ipykernel")
        assert kernels, "the command started no kernel"
        time.sleep(2)
    finally:
        command.kill()
        command.wait()
    assert all(gone_within(kernel.pid, 10) for kernel in kernels)


def test_a_wrong_idle_time_is_named(parking) -> None:
    run, _ = parking
    done = run("bad", *TINY, idle="soon")
    assert done.returncode == 2
    assert "MKTLAB_KERNEL_IDLE must be the seconds" in done.stderr and "'soon'" in done.stderr


def test_two_commands_at_once_share_no_kernel(parking, tmp_path: Path, store: Store) -> None:
    """One parked kernel, two commands starting together: one adopts it, the other starts its own, and both
    runs finish; afterwards both kernels wait."""
    run, parked = parking
    assert run("first", *TINY, *store.overrides).returncode == 0
    (record,) = parked()
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda name: run(name, *TINY, *store.overrides), ["left", "right"]))
    assert [d.returncode for d in done] == [0, 0], [d.stderr[-2000:] for d in done]
    pids = sorted(r["pid"] for r in parked())
    assert len(pids) == 2 and record["pid"] in pids
    assert [r.info.status for r in store.runs("mf")] == ["FINISHED"] * 3
