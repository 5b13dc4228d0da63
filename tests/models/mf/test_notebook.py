"""`mktlab model=mf` end to end: Hydra, a real Papermill kernel, a temporary MLflow store (slow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import artifact_paths

pytestmark = pytest.mark.slow

TINY = ["debug=tiny", "trainer.epochs=3", "data.subsample=3000", "model.eval.recommend_users=3"]


def test_mf_run_records_params_metrics_artifacts_and_status(store, mktlab_cli) -> None:
    done = mktlab_cli(["model=mf", "model.dim=8", *TINY, *store.overrides])
    assert done.returncode == 0, done.stderr[-3000:]
    [run] = store.runs("mf")
    assert run.info.status == "FINISHED"
    assert run.data.params["model.dim"] == "8" and run.data.params["optim.name"] == "adam"
    assert run.data.params["trainer.epochs"] == "3" and run.data.params["model.eval.recommend_users"] == "3"
    assert run.data.tags["mktlab.data.stats.num_train"] == "2400"  # data statistics are tags: params hold the config only
    assert not any(key.startswith(("data.stats.", "mktlab.")) for key in run.data.params)
    assert run.data.tags["mktlab.overrides"].startswith("model=mf model.dim=8")
    assert run.data.tags["mktlab.monitor"] == "val_rmse" and run.data.tags["mktlab.monitor_mode"] == "min"
    assert {"best_val_rmse", "best_epoch"} <= set(run.data.metrics)
    history = store.client.get_metric_history(run.info.run_id, "val_rmse")
    assert [m.step for m in history] == [1, 2, 3]
    for key in ("test_rmse", "test_mae", "test_precision_at_10", "test_recall_at_10", "test_ndcg_at_10", "test_hit_rate_at_10",
                "test_coverage_at_10", "test_mean_popularity_at_10"):
        assert np.isfinite(run.data.metrics[key]), key
        if key != "test_rmse" and key != "test_mae":  # the same protocol for most-popular and the rating head's lists
            assert np.isfinite(run.data.metrics[f"baseline_test_popularity_{key.removeprefix('test_')}"]), key
            assert np.isfinite(run.data.metrics[f"reference_test_rating_head_{key.removeprefix('test_')}"]), key
    assert np.isfinite(run.data.metrics["baseline_test_biases_rmse"]) and np.isfinite(run.data.metrics["baseline_test_biases_mae"])
    for key in ("test_ndcg_at_10", "baseline_test_popularity_ndcg_at_10", "test_rmse", "baseline_test_biases_rmse"):
        assert key in done.stderr, key  # the run's summary shows the model beside its baselines
    artifacts = artifact_paths(store.client, run.info.run_id)
    assert {"config.yaml", "notebook/mf.ipynb", "notebook/mf.html", "figures/learning_curve.png",
            "figures/error_histogram.png", "figures/recommendation_popularity.png", "model/params.npz", "model/module.json",
            "recommendations_top10.csv", "model_vs_popularity_top10.csv"} <= artifacts
    assert "run " + run.info.run_id in done.stderr and "test_rmse" in done.stderr and "mlflow ui" in done.stderr

    # each figure is drawn once: the notebook shows the very PNGs the run holds
    import base64

    import nbformat
    from mlflow.artifacts import download_artifacts

    folder = Path(download_artifacts(run_id=run.info.run_id, tracking_uri=store.uri))
    shown = {base64.b64decode(output["data"]["image/png"]) for cell in nbformat.read(folder / "notebook" / "mf.ipynb", 4).cells
             for output in cell.get("outputs", []) if "image/png" in output.get("data", {})}
    logged = {path.read_bytes() for path in (folder / "figures").glob("*.png")}
    assert len(logged) == 3 and shown == logged

    from mktlab.tracking.checkpoints import load_module_from_run

    model = load_module_from_run(run.info.run_id, tracking_uri=store.uri)
    assert model.user_factors.embedding.value.shape[1] == 8
