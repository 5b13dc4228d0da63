"""The project's tracking store: processes that open a fresh SQLite store at once."""

from __future__ import annotations

import multiprocessing

from helpers import open_store_at_once


def test_processes_opening_a_fresh_store_at_once_all_get_it(tmp_path) -> None:
    """MLflow creates the tables when a client is constructed; `get_client` does that under a
    file lock, as a notebook's kernel and its runner (or the jobs of a sweep) do at once."""
    context = multiprocessing.get_context("spawn")
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    barrier, results = context.Barrier(3), context.Queue()
    processes = [context.Process(target=open_store_at_once, args=(uri, barrier, results)) for _ in range(3)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert outcomes == [("ok", 1)] * 3  # each sees the store with its Default experiment
