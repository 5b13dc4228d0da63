"""Parallel writers: 16 sweep jobs on 4 joblib workers (reused kernels; each job writes every epoch), one SQLite store, nothing lost."""

from __future__ import annotations

import pytest
from helpers import stub_notebook, sweep_runs


@pytest.mark.slow
def test_16_jobs_on_4_workers_all_land_in_sqlite(store, mktlab_cli, tmp_path):
    result = mktlab_cli(
        ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4", *stub_notebook(tmp_path / "nb"), *store.overrides,
         "params.dim=1,2,3,4", "seed=0,1,2,3"],
        timeout=500,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "database is locked" not in result.stdout + result.stderr

    parent, children = sweep_runs(store)
    assert parent.info.status == "FINISHED" and parent.data.tags["mktlab.launcher"] == "joblib"
    assert len(children) == 16
    assert sorted(int(r.data.tags["mktlab.job_num"]) for r in children) == list(range(16))
    assert {(r.data.params["params.dim"], r.data.params["seed"]) for r in children} == {(str(d), str(s)) for d in range(1, 5) for s in range(4)}
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert {"best_val_rmse", "best_epoch", "test_rmse", "val_rmse", "train_loss"} <= set(run.data.metrics)
        assert len(store.client.get_metric_history(run.info.run_id, "val_rmse")) == 10  # every epoch's write landed
    # The parent carries the best child's metrics: the smallest dimension, seed 0.
    best = min(children, key=lambda r: r.data.metrics["best_val_rmse"])
    assert best.info.run_name == "params.dim=1,seed=0"
    assert parent.data.metrics["best_val_rmse"] == best.data.metrics["best_val_rmse"]
    assert parent.data.metrics["sweep_jobs"] == 16 and parent.data.metrics["sweep_failed_jobs"] == 0
