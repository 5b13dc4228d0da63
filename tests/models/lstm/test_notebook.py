"""`mktlab model=lstm` end to end: Hydra, a real Papermill kernel, a temporary MLflow store (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import artifact_paths

pytestmark = pytest.mark.slow

TINY = ["model=lstm", "debug=tiny", "trainer.epochs=2", "data.subsample=3000", "data.max_len=8",
        "model.embed_dim=8", "model.hidden=8", "model.dense=8", "trainer.batch_size=256", "trainer.progress=false", "data.long_len=16"]


def test_lstm_seeds_run_records_its_ensemble_baselines_figures_and_models(store, mktlab_cli, monkeypatch) -> None:
    """The default's shape at tiny sizes: two seeds (a child run each) and their ensemble in the parent."""
    done = mktlab_cli([*TINY, "trainer.num_seeds=2", *store.overrides])
    assert done.returncode == 0, done.stderr[-3000:]
    runs = store.runs("lstm")
    [run] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == run.info.run_id]
    assert run.info.status == "FINISHED" and len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    assert run.data.params["model.hidden"] == "8" and run.data.params["data.max_len"] == "8"
    for child in children:
        assert [m.step for m in store.client.get_metric_history(child.info.run_id, "val_gauc")] == [1, 2]
        assert len(store.client.get_metric_history(child.info.run_id, "val_rolling_gauc")) == 2
    assert run.data.tags["mktlab.monitor"] == "val_roc_auc" and run.data.tags["mktlab.monitor_mode"] == "max"
    metrics = run.data.metrics
    for key in ("test_roc_auc", "test_roc_auc_std", "test_log_loss", "test_gauc", "test_mean_predicted", "test_observed_ctr",
                "test_frozen_gauc", "test_ensemble_roc_auc", "test_ensemble_gauc", "test_ensemble_rolling_gauc", "val_ensemble_roc_auc",
                "val_ensemble_gauc", "baseline_test_popularity_roc_auc", "baseline_test_popularity_gauc",
                "baseline_test_logreg_roc_auc", "baseline_test_logreg_gauc"):
        assert np.isfinite(metrics[key]), key
    assert 0.4 < metrics["test_roc_auc"] <= 1.0 and metrics["num_seeds"] == 2
    # GAUC ranks each user's test impressions from frozen histories; the rolling one is kept beside it
    assert metrics["test_gauc"] == metrics["test_frozen_gauc"] and np.isfinite(metrics["test_rolling_gauc"])
    artifacts = artifact_paths(store.client, run.info.run_id)
    assert {"notebook/lstm.ipynb", "figures/learning_curve.png", "figures/roc_curve.png", "figures/calibration.png",
            "figures/auc_by_history_length.png", "auc_by_history_length.csv", "auc_by_items_seen.csv", "ensemble_by_seed.csv",
            "model/params.npz", "model/module.json", "pyfunc_model/MLmodel"} <= artifacts, artifacts
    assert "test_gauc" in done.stderr and "baseline_test_logreg_roc_auc" in done.stderr

    from mktlab.tracking.checkpoints import load_module_from_run

    model = load_module_from_run(run.info.run_id, tracking_uri=store.uri)
    assert model.hidden == 8

    import mlflow.pyfunc
    import pandas as pd

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    served = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/pyfunc_model")
    answer = served.predict(pd.DataFrame({"recent_items": [[1, 2, 3]], "candidate_items": [[1, 2]]}))
    assert len(answer["click_probabilities"].iloc[0]) == 2
