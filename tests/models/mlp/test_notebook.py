"""`mktlab model=mlp` end to end: real Hydra, Papermill kernel and MLflow store (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import artifact_paths

pytestmark = pytest.mark.slow

TINY = ["model=mlp", "data.subsample=1500", "trainer.epochs=3", "model.eval.cv_folds=2", "model.hidden=[8]", "trainer.progress=false", "trainer.num_seeds=1"]
FIGURES = {f"figures/{name}.png" for name in ("learning_curve", "roc", "pr", "gains", "lift", "calibration")}


def test_mlp_run_records_params_metrics_artifacts_and_status(store, mktlab_cli) -> None:
    done = mktlab_cli([*TINY, *store.overrides])
    assert done.returncode == 0, done.stderr[-3000:]
    [run] = store.runs("mlp")
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["model.hidden"] == "[8]" and params["model.imbalance"] == "sample" and params["optim.name"] == "adamw"
    assert params["data.name"] == "caravan" and params["model.eval.cv_folds"] == "2"
    tags = run.data.tags  # data statistics are tags of the run (its params hold the config only)
    assert int(tags["mktlab.data.stats.num_train"]) + int(tags["mktlab.data.stats.num_val"]) + int(tags["mktlab.data.stats.num_test"]) == 1500
    assert tags["mktlab.monitor"] == "val_roc_auc" and tags["mktlab.monitor_mode"] == "max" and "best_val_roc_auc" in run.data.metrics
    assert [m.step for m in store.client.get_metric_history(run.info.run_id, "val_roc_auc")] == [1, 2, 3]
    metrics = run.data.metrics
    for name in ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "top20_hits", "lift_at_10", "lift_at_20"):
        assert np.isfinite(metrics[f"test_{name}"]) and np.isfinite(metrics[f"baseline_test_{name}"]), name
        assert np.isfinite(metrics[f"cv_{name}_mean"]) and np.isfinite(metrics[f"cv_{name}_std"]), name
    assert metrics["test_top20_hits"] <= metrics["test_buyers"] and 1 <= metrics["best_epoch"] <= 3
    artifacts = artifact_paths(store.client, run.info.run_id)
    assert FIGURES | {"top_customers.csv", "cv_folds.csv", "standardization.csv", "model/params.npz", "model/module.json",
                      "notebook/mlp.ipynb", "config.yaml"} <= artifacts
    assert "test_roc_auc" in done.stderr and "baseline_test_roc_auc" in done.stderr and "cv_roc_auc_mean" in done.stderr

    from mktlab.tracking.checkpoints import load_module_from_run

    model = load_module_from_run(run.info.run_id, tracking_uri=store.uri)
    assert [layer.out_features for layer in model.layers] == [8]
