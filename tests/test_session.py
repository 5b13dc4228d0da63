"""Several seeds trained at once equal separate runs; child runs per seed, mean and spread on the parent."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mktlab.config import compose, to_container, to_dataclasses
from mktlab.data import load
from mktlab.evaluation.mf import evaluate
from mktlab.tracking import open_run
from mktlab.train import SeedResults, fit

MF_TINY = ["model=mf", "trainer.progress=false", "data.subsample=4000", "trainer.epochs=6", "trainer.patience=2", "model.dim=8",
           "trainer.batch_size=512"]


MLP_TINY = ["model=mlp", "trainer.progress=false", "data.subsample=1500", "trainer.epochs=3", "model.hidden=[8]"]

# Validated at epochs 2 and 3 only: epoch 1 is neither a candidate nor counted as patience.
GAN_TINY = ["model=gan", "trainer.progress=false", "data.subsample=400", "trainer.epochs=3", "trainer.sample_every=2",
            "model.g_features=8", "model.d_features=8", "model.classifier_epochs=2", "model.eval_samples=128"]


@pytest.fixture(scope="module")
def gan_cache(tmp_path_factory) -> str:
    """One evaluation classifier for the module's GAN tests."""
    return f"paths.cache={tmp_path_factory.mktemp('gan-cache')}"


@pytest.mark.parametrize(
    "overrides, tolerance",
    [
        pytest.param(MF_TINY, 1e-7, id="mf, one seed at a time"),
        pytest.param([*MF_TINY, "trainer.seed_batch=2"], 1e-5, id="mf, two seeds under vmap"),
        pytest.param(MLP_TINY, 1e-7, id="mlp, one seed at a time"),
        # the whole training split: the ulp-level differences of a float-weighted row draw under vmap
        # only changed rows there (and the histories by 1e-4 after two epochs)
        pytest.param(["model=mlp", "trainer.progress=false", "trainer.epochs=2", "trainer.seed_batch=2"], 1e-5,
                     id="mlp, two seeds under vmap"),
    ],
)
def test_vectorized_seeds_equal_separate_runs(overrides: list[str], tolerance: float) -> None:
    cfg = to_dataclasses(compose([*overrides, "trainer.seeds=[3,5]"]))
    data = load(cfg)
    together = fit(cfg, data)
    assert isinstance(together, SeedResults) and together.seeds == [3, 5]
    for seed, result in zip(together.seeds, together.results):
        alone = fit(dataclasses.replace(cfg, seed=seed, trainer=dataclasses.replace(cfg.trainer, seeds=None)), data)
        assert [r["epoch"] for r in result.history] == [r["epoch"] for r in alone.history]
        for a, b in zip(result.history, alone.history):
            for key in a:
                assert a[key] == pytest.approx(b[key], rel=tolerance, abs=tolerance), key
        assert result.best_epoch == alone.best_epoch
    assert together.results[0].history != together.results[1].history


def test_seed_batch_must_be_positive() -> None:
    cfg = to_dataclasses(compose([*MF_TINY, "trainer.seeds=[3,5]", "trainer.seed_batch=0"]))
    with pytest.raises(ValueError, match="trainer.seed_batch=0"):
        fit(cfg, load(cfg))


def test_seed_children_and_parent_summary(store) -> None:
    config = to_container(compose([*MF_TINY, "trainer.num_seeds=3", *store.overrides]))
    cfg = to_dataclasses(config)
    data = load(cfg)
    parent = open_run(config)
    report = evaluate(cfg, fit(cfg, data, parent), data).log(parent)
    children = [r for r in store.runs("mf") if r.data.tags.get("mlflow.parentRunId") == parent.run_id]
    assert sorted(r.data.params["seed"] for r in children) == ["0", "1", "2"]
    assert all(r.info.status == "FINISHED" and "test_rmse" in r.data.metrics for r in children)
    assert all(len(store.client.get_metric_history(r.info.run_id, "val_rmse")) >= 1 for r in children)
    values = np.array([r.data.metrics["test_rmse"] for r in children])
    recorded = store.client.get_run(parent.run_id).data.metrics
    assert recorded["test_rmse"] == pytest.approx(values.mean()) and recorded["test_rmse_std"] == pytest.approx(values.std(ddof=1))
    assert report.metrics["num_seeds"] == 3


@pytest.mark.parametrize("seed_batch, tolerance", [pytest.param(1, 1e-6, id="in turn"), pytest.param(2, 1e-5, id="under vmap")])
def test_gan_seeds_equal_separate_runs(gan_cache: str, seed_batch: int, tolerance: float) -> None:
    """Each seed has its own fixed and evaluation latents and rendered frames; all share one
    classifier and one compiled epoch, and each equals its separate `fit`."""
    from mktlab.train.gan import GANFitResult

    cfg = to_dataclasses(compose([*GAN_TINY, gan_cache, "trainer.seeds=[3,5]", f"trainer.seed_batch={seed_batch}"]))
    data = load(cfg)
    together = fit(cfg, data)
    assert isinstance(together, SeedResults) and all(isinstance(r, GANFitResult) for r in together.results)
    assert together.results[0].scorer is together.results[1].scorer
    for seed, result in zip(together.seeds, together.results):
        alone = fit(dataclasses.replace(cfg, seed=seed, trainer=dataclasses.replace(cfg.trainer, seeds=None)), data)
        assert [sorted(row) for row in result.history] == [sorted(row) for row in alone.history]
        assert [r["epoch"] for r in result.history if "val_fid" in r] == [2, 3]
        for a, b in zip(result.history, alone.history):
            for key in a:
                assert a[key] == pytest.approx(b[key], rel=tolerance, abs=tolerance), key
        assert result.best_epoch == alone.best_epoch
        assert sorted(result.samples) == sorted(alone.samples) == [0, 2, 3]
        for epoch in result.samples:
            np.testing.assert_allclose(result.samples[epoch], alone.samples[epoch], atol=tolerance)
    assert not np.allclose(together.results[0].samples[3], together.results[1].samples[3])


def test_gan_seed_children_parent_summary_and_saved_generator(store, gan_cache: str) -> None:
    from mktlab.evaluation.gan import evaluate as evaluate_gan
    from mktlab.evaluation.gan import reading
    from mktlab.train.gan import generate_from_run

    config = to_container(compose([*GAN_TINY, gan_cache, "trainer.num_seeds=2", *store.overrides]))
    cfg = to_dataclasses(config)
    data = load(cfg)
    parent = open_run(config)
    report = evaluate_gan(cfg, fit(cfg, data, parent), data).log(parent)
    report.close_figures()
    children = [r for r in store.runs("gan") if r.data.tags.get("mlflow.parentRunId") == parent.run_id]
    assert sorted(r.data.params["seed"] for r in children) == ["0", "1"]
    assert all(r.info.status == "FINISHED" and "test_fid" in r.data.metrics for r in children)
    assert all(len(store.client.get_metric_history(r.info.run_id, "val_fid")) == 2 for r in children)
    values = np.array([r.data.metrics["test_fid"] for r in children])
    recorded = store.client.get_run(parent.run_id).data.metrics
    assert recorded["test_fid"] == pytest.approx(values.mean()) and recorded["test_fid_std"] == pytest.approx(values.std(ddof=1))
    assert recorded["num_seeds"] == 2
    assert {"samples/training.gif", "samples/final.png"} <= set(report.files) and "training_curves" in report.figures
    assert f"test FID ± {values.std(ddof=1):.1f}" in reading(report, data)
    logged = {a.path for a in store.client.list_artifacts(parent.run_id, "model")}
    assert {"model/params.npz", "model/module.json"} <= logged
    images = generate_from_run(parent.run_id, 4, tracking_uri=store.uri, seed=1)
    assert images.shape == (4, 8, 8, 1) and np.all(np.abs(images) <= 1.0)
    parent.finish()
