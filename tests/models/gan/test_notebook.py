"""A real run of the GAN notebook: `mktlab model=gan` with a tiny config into a temporary MLflow store
(its rerun: the contract tests; several seeds in one run: tests/test_session.py)."""

from __future__ import annotations

import numpy as np
import pytest


TINY = ["model=gan", "trainer.epochs=2", "model.sample_every=1", "trainer.progress=false", "data.subsample=400",
        "model.g_features=8", "model.d_features=8", "model.eval.classifier_epochs=2", "model.eval.samples=128"]


@pytest.mark.slow
def test_mktlab_gan_run_logs_metrics_and_images(mktlab_cli, store, tmp_path) -> None:
    args = [*TINY, f"paths.cache={tmp_path / 'cache'}", *store.overrides]
    completed = mktlab_cli(args)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    (run,) = store.runs("gan")
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    for key in ("test_fid", "reference_fid", "test_inception_score", "reference_inception_score", "test_class_coverage",
                "reference_class_coverage", "classifier_val_accuracy", "val_fid", "train_d_loss", "train_g_loss",
                "train_d_real_accuracy", "train_d_fake_accuracy"):
        assert key in metrics and np.isfinite(metrics[key]), key
    assert metrics["reference_fid"] < metrics["test_fid"]
    history = store.client.get_metric_history(run.info.run_id, "val_fid")
    assert sorted(m.step for m in history) == [1, 2]
    assert "reference_fid" in completed.stderr + completed.stdout  # the runner's summary table
    assert run.data.params["optim.generator.lr"] == "0.002" and "optim.lr" not in run.data.params  # the GAN's two optimizers
    assert run.data.tags["mktlab.monitor"] == "val_fid" and run.data.tags["mktlab.monitor_mode"] == "min"

    def files(path: str = "") -> set[str]:
        found = set()
        for item in store.client.list_artifacts(run.info.run_id, path):
            found |= files(item.path) if item.is_dir else {item.path}
        return found

    logged = files()
    assert {"samples/epoch_000.png", "samples/epoch_001.png", "samples/epoch_002.png", "samples/final.png",
            "samples/training.gif", "model/params.npz", "model/module.json", "classifier/params.npz",
            "classifier/info.json", "figures/real_images.png", "figures/training_curves.png",
            "figures/samples_over_time.png", "metrics_vs_reference.csv", "notebook/gan.ipynb"} <= logged, logged

    from mktlab.models.gan.training import generate_from_run

    images = generate_from_run(run.info.run_id, 5, tracking_uri=store.uri, seed=3)
    assert images.shape == (5, 8, 8, 1) and np.all(np.abs(images) <= 1.0)
    np.testing.assert_array_equal(images, generate_from_run(run.info.run_id, 5, tracking_uri=store.uri, seed=3))
