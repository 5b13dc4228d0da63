"""Recording finished runs off a sweep's critical path.

In a sweep whose jobs run in this process (Hydra's basic launcher), logging a job's
executed notebook (its HTML export above all) and closing its run can happen while the
next job already runs in the warm kernel. One background thread does it, in order; the
sweep's end (and this process's exit) waits for every run to be recorded before it ranks
them, so no run is left RUNNING.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

_worker: ThreadPoolExecutor | None = None
_pending: list[Future] = []


def record_later(task: Callable[[], None]) -> None:
    """Run `task` (which reports its own failures) on the background thread."""
    global _worker
    if _worker is None:
        _worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mktlab-records")
        atexit.register(wait_for_records)
    _pending.append(_worker.submit(task))


def wait_for_records() -> None:
    """Block until every run handed to `record_later` is recorded."""
    while _pending:
        _pending.pop(0).result()
