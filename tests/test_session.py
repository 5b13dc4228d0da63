"""The notebook side (`mktlab.session`): one seed's run gets the monitor tags, per-epoch and best metrics and
the data's statistics; several seeds trained at once equal separate runs, with a child run per seed and the
mean and spread on the parent."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from helpers import composed
from mktlab import session
from mktlab.config import to_container
from mktlab.models import registry
from mktlab.train import FitResult, SeedResults, seed_list, several_seeds

MF_TINY = ["model=mf", "trainer.progress=false", "data.subsample=4000", "trainer.epochs=6", "trainer.patience=2", "model.dim=8",
           "trainer.batch_size=512"]


# Validated at epochs 2 and 3 only: epoch 1 is neither a candidate nor counted as patience.
GAN_TINY = ["model=gan", "trainer.progress=false", "data.subsample=400", "trainer.epochs=3", "model.sample_every=2",
            "model.g_features=8", "model.d_features=8", "model.eval.classifier_epochs=2", "model.eval.samples=128"]


@pytest.fixture(scope="module")
def gan_cache(tmp_path_factory) -> str:
    """One evaluation classifier for the module's GAN tests."""
    return f"paths.cache={tmp_path_factory.mktemp('gan-cache')}"


def alone(cfg, seed: int):
    """The config of a separate run of one seed."""
    return dataclasses.replace(cfg, seed=seed, trainer=dataclasses.replace(cfg.trainer, seeds=None, num_seeds=1))


def test_seed_list_is_always_a_list() -> None:
    cfg = composed(*MF_TINY, "seed=4")
    assert seed_list(cfg) == [4] and not several_seeds(cfg)
    assert seed_list(composed(*MF_TINY, "seed=4", "trainer.num_seeds=3")) == [4, 5, 6]
    assert seed_list(composed(*MF_TINY, "trainer.seeds=[3,5]")) == [3, 5] and several_seeds(composed(*MF_TINY, "trainer.seeds=[3,5]"))


def test_one_seed_run_gets_monitor_tags_epoch_and_best_metrics_and_data_statistics(store) -> None:
    """The session, not the loop, tags the monitored metric and logs its best value (sweeps rank runs by them)."""
    config = to_container(registry.compose([*MF_TINY, *store.overrides]))
    cfg, tracker = session.start(config=config)
    data = session.load(cfg, tracker)
    result = session.fit(cfg, data, tracker)
    assert isinstance(result, FitResult) and result.monitor == "val_rmse"
    run = store.client.get_run(tracker.run_id)
    assert run.data.tags["mktlab.monitor"] == "val_rmse" and run.data.tags["mktlab.monitor_mode"] == "min"
    assert run.data.metrics["best_val_rmse"] == pytest.approx(result.best_score) and run.data.metrics["best_epoch"] == result.best_epoch
    assert [m.step for m in store.client.get_metric_history(tracker.run_id, "val_rmse")] == list(range(1, result.epochs_run + 1))
    assert not any(k.startswith("train_start_") or k.startswith("start_") for k in run.data.metrics)
    assert run.data.tags["mktlab.data.stats.num_train"] == str(data.summary()["num_train"])
    assert not any(k.startswith("data.stats.") for k in run.data.params)  # params hold the config only
    assert run.data.tags["mktlab.origin"] == "notebook" and run.info.status == "RUNNING"
    report = session.evaluate(cfg, result, data, tracker)
    assert "test_rmse" in store.client.get_run(tracker.run_id).data.metrics
    report.close_figures()
    assert "RMSE" in session.reading(cfg, report, data)
    session.finish(tracker)
    assert store.client.get_run(tracker.run_id).info.status == "FINISHED"


# Seeds stepped one at a time (`trainer.seed_batch` 1, the CPU default) equal separate runs for every model:
# the contract's `test_seeds_together_equal_separate_runs`. Here: seeds stepped together under vmap.
@pytest.mark.parametrize(
    "overrides, tolerance",
    [
        pytest.param([*MF_TINY, "trainer.seed_batch=2"], 1e-5, id="mf, two seeds under vmap"),
        # the whole training split: the ulp-level differences of a float-weighted row draw under vmap
        # only changed rows there (and the histories by 1e-4 after two epochs)
        pytest.param(["model=mlp", "trainer.progress=false", "trainer.epochs=2", "trainer.seed_batch=2"], 1e-5,
                     id="mlp, two seeds under vmap"),
    ],
)
def test_vectorized_seeds_equal_separate_runs(overrides: list[str], tolerance: float) -> None:
    cfg = composed(*overrides, "trainer.seeds=[3,5]")
    data = registry.load_data(cfg)
    together = session.fit(cfg, data)
    assert isinstance(together, SeedResults) and together.seeds == [3, 5]
    for seed, result in zip(together.seeds, together.results):
        separate = session.fit(alone(cfg, seed), data)
        assert [r["epoch"] for r in result.history] == [r["epoch"] for r in separate.history]
        for a, b in zip(result.history, separate.history):
            for key in a:
                assert a[key] == pytest.approx(b[key], rel=tolerance, abs=tolerance), key
        assert result.best_epoch == separate.best_epoch
    assert together.results[0].history != together.results[1].history


def test_seed_batch_must_be_positive() -> None:
    """Refused when the config is typed; the loop refuses it too (a config built in code)."""
    from mktlab.config import ConfigError

    with pytest.raises(ConfigError, match="trainer.seed_batch=0"):
        composed(*MF_TINY, "trainer.seeds=[3,5]", "trainer.seed_batch=0")
    cfg = composed(*MF_TINY, "trainer.seeds=[3,5]")
    cfg = dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, seed_batch=0))
    with pytest.raises(ValueError, match="trainer.seed_batch=0"):
        session.fit(cfg, registry.load_data(cfg))


def test_seed_children_and_parent_summary(store) -> None:
    config = to_container(registry.compose([*MF_TINY, "trainer.num_seeds=3", *store.overrides]))
    cfg, parent = session.start(config=config)
    data = session.load(cfg, parent)
    report = session.evaluate(cfg, session.fit(cfg, data, parent), data, parent)
    report.close_figures()
    children = [r for r in store.runs("mf") if r.data.tags.get("mlflow.parentRunId") == parent.run_id]
    assert sorted(r.data.params["seed"] for r in children) == ["0", "1", "2"]
    assert all(r.info.status == "FINISHED" and "test_rmse" in r.data.metrics for r in children)
    assert all(len(store.client.get_metric_history(r.info.run_id, "val_rmse")) >= 1 for r in children)
    assert all(r.data.tags["mktlab.monitor"] == "val_rmse" and "best_val_rmse" in r.data.metrics for r in children)
    values = np.array([r.data.metrics["test_rmse"] for r in children])
    recorded = store.client.get_run(parent.run_id)
    metrics = recorded.data.metrics
    assert metrics["test_rmse"] == pytest.approx(values.mean()) and metrics["test_rmse_std"] == pytest.approx(values.std(ddof=1))
    assert report.metrics["num_seeds"] == 3
    # the parent ranks by its seeds' mean best score, in the monitor's direction
    best = np.array([r.data.metrics["best_val_rmse"] for r in children])
    assert recorded.data.tags["mktlab.monitor"] == "val_rmse" and recorded.data.tags["mktlab.monitor_mode"] == "min"
    assert metrics["best_val_rmse"] == pytest.approx(best.mean()) and metrics["best_val_rmse_std"] == pytest.approx(best.std(ddof=1))
    session.finish(parent)


@pytest.mark.parametrize("seed_batch, tolerance", [pytest.param(2, 1e-5, id="under vmap")])
def test_gan_seeds_equal_separate_runs(gan_cache: str, seed_batch: int, tolerance: float) -> None:
    """Each seed has its own fixed and evaluation latents and rendered frames; all share one
    classifier and one compiled epoch, and each equals its separate `fit` (seeds in turn: the contract's test)."""
    from mktlab.models.gan.training import GANFitResult

    cfg = composed(*GAN_TINY, gan_cache, "trainer.seeds=[3,5]", f"trainer.seed_batch={seed_batch}")
    data = registry.load_data(cfg)
    together = session.fit(cfg, data)
    assert isinstance(together, SeedResults) and all(isinstance(r, GANFitResult) for r in together.results)
    assert together.results[0].scorer is together.results[1].scorer
    for seed, result in zip(together.seeds, together.results):
        separate = session.fit(alone(cfg, seed), data)
        assert [sorted(row) for row in result.history] == [sorted(row) for row in separate.history]
        assert [r["epoch"] for r in result.history if "val_fid" in r] == [2, 3]
        for a, b in zip(result.history, separate.history):
            for key in a:
                assert a[key] == pytest.approx(b[key], rel=tolerance, abs=tolerance), key
        assert result.best_epoch == separate.best_epoch
        assert sorted(result.samples) == sorted(separate.samples) == [0, 2, 3]
        for epoch in result.samples:
            np.testing.assert_allclose(result.samples[epoch], separate.samples[epoch], atol=tolerance)
    assert not np.allclose(together.results[0].samples[3], together.results[1].samples[3])


def test_gan_seed_children_parent_summary_and_saved_generator(store, gan_cache: str) -> None:
    from mktlab.models.gan.training import generate_from_run

    config = to_container(registry.compose([*GAN_TINY, gan_cache, "trainer.num_seeds=2", *store.overrides]))
    cfg, parent = session.start(config=config)
    data = session.load(cfg, parent)
    report = session.evaluate(cfg, session.fit(cfg, data, parent), data, parent)
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
    assert f"test FID ± {values.std(ddof=1):.1f}" in session.reading(cfg, report, data)
    logged = {a.path for a in store.client.list_artifacts(parent.run_id, "model")}
    assert {"model/params.npz", "model/module.json"} <= logged
    images = generate_from_run(parent.run_id, 4, tracking_uri=store.uri, seed=1)
    assert images.shape == (4, 8, 8, 1) and np.all(np.abs(images) <= 1.0)
    session.finish(parent)
