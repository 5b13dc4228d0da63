"""Recording finished runs off a sweep's critical path.

In a sweep whose jobs run in this process (Hydra's basic launcher), logging a job's
executed notebook (its HTML export above all) and closing its run can happen while the
next job already runs in the warm kernel. One background thread does it, in order, and
only while this process waits on a notebook's cells (`waiting_on_notebook`): between two jobs
the runner's own work (opening the next run, parameterizing the next notebook) goes first. Work
on the job that runs now (its figures, drawn as it hands them over: `record_while_running`) takes
its turn on the same thread without that wait, and ends with the job. The
sweep's end (and this process's exit) waits for every run to be recorded before it ranks
them, so no run is left RUNNING.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

# Longest a finished run waits for the next notebook to start before it is recorded anyway.
MAX_DELAY = 10.0

_worker: ThreadPoolExecutor | None = None
_pending: list[Future] = []
_runner_idle = threading.Event()  # set while this process only waits on a notebook's kernel, or has no job left


def record_later(task: Callable[[], None]) -> None:
    """Run `task` (which reports its own failures) on the background thread, once the runner is idle."""
    _pending.append(_thread().submit(_when_idle, task))


def record_while_running(task: Callable[[], None]) -> Future:
    """Run `task` (which handles its own failures) on the background thread once the tasks before it are done,
    without waiting for the runner to be idle: work on the job that runs now (its figures, drawn as they come),
    which ends by itself when the job does. Returns its future (cancelled: it never ran)."""
    future = _thread().submit(task)
    _pending.append(future)
    return future


def _thread() -> ThreadPoolExecutor:
    global _worker
    if _worker is None:
        _worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mktlab-records")
        atexit.register(wait_for_records)
    return _worker


def _when_idle(task: Callable[[], None]) -> None:
    _runner_idle.wait(MAX_DELAY)
    task()


@contextlib.contextmanager
def waiting_on_notebook() -> Iterator[Callable[..., None]]:
    """Within the block this process runs a notebook. The block calls the callable it is given (any
    arguments: it serves as nbclient's `on_cell_execute` hook) once the notebook's first cell is sent to
    the kernel: from then on this process only waits on the kernel, and runs waiting to be recorded are
    recorded. Reading and parameterizing the notebook, before, go first."""
    try:
        yield lambda *_, **__: _runner_idle.set()
    finally:
        _runner_idle.clear()


def wait_for_records() -> None:
    """Block until every run handed to `record_later` is recorded (at once: nothing else is left to run first)."""
    _runner_idle.set()
    while _pending:
        future = _pending.pop(0)
        if not future.cancelled():
            future.result()
