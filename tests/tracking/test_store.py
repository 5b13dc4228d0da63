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


def test_a_new_store_starts_as_a_copy_of_the_empty_one_kept_from_the_first(tmp_path, monkeypatch) -> None:
    """The first new SQLite store is created by MLflow and kept, emptied of experiments; a later new store
    is a copy of it, where MLflow makes the Default experiment with that store's own artifact folder."""
    import shutil
    import sqlite3

    from mktlab.tracking import store

    template = tmp_path / "cache" / "empty.db"
    monkeypatch.setattr(store, "_empty_store_template", lambda: template)
    first = store._open(f"sqlite:///{tmp_path / 'first' / 'mlflow.db'}", timeout=30)
    assert first.get_experiment("0").name == "Default"
    with sqlite3.connect(template) as kept:
        assert kept.execute("SELECT COUNT(*) FROM experiments").fetchone() == (0,)
        assert kept.execute("SELECT COUNT(*) FROM alembic_version").fetchone() == (1,)

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    copied, copy = [], shutil.copyfile
    monkeypatch.setattr(shutil, "copyfile", lambda source, target: copied.append(source) or copy(source, target))
    second = store._open(f"sqlite:///{tmp_path / 'second' / 'mlflow.db'}", timeout=30)
    assert copied == [template]
    assert second.get_experiment("0").artifact_location == str(tmp_path / "elsewhere" / "mlruns" / "0")
    experiment = store.get_or_create_experiment(second, "mf", str(tmp_path / "artifacts"))
    run = second.create_run(experiment)
    second.log_metric(run.info.run_id, "test_rmse", 0.9)
    assert second.get_run(run.info.run_id).data.metrics == {"test_rmse": 0.9}
    assert first.search_experiments(filter_string="name = 'mf'") == []  # the stores share nothing
