"""Runs recorded off a sweep's critical path: after the job, while the runner waits on the next notebook's cells."""

from __future__ import annotations

import threading

from mktlab.runner import background


def test_a_finished_run_is_recorded_while_the_runner_waits_on_the_next_notebook() -> None:
    background._runner_idle.clear()  # between two jobs: the runner opens the next run
    recorded = threading.Event()
    background.record_later(recorded.set)
    assert not recorded.wait(0.5)  # the runner's own work between jobs goes first
    with background.waiting_on_notebook() as cells_started:
        assert not recorded.wait(0.5)  # reading and parameterizing the notebook: the runner's own work
        cells_started(cell=None, cell_index=0)  # as nbclient calls it when it sends the first cell
        assert recorded.wait(10)
    assert not background._runner_idle.is_set()

    later = threading.Event()
    background.record_later(later.set)
    background.wait_for_records()  # the sweep's end: every run recorded, at once
    assert later.is_set()
