"""Training the response MLP: class weighting, balanced epochs, a loss that falls, early stopping, saving."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from flax import nnx
from sklearn.metrics import roc_auc_score

from helpers import replace_in
from mktlab.config import ConfigError
from mktlab.data.tabular import TabularTable, prepare
from mktlab.models.mlp.module import ResponseMLP
from mktlab.models.mlp.training import balanced_rows, bce_loss, build_task, class_weighting, fit_quietly, module_kwargs, predict
from mktlab.session import fit
from mktlab.train.checkpoint import load_module, save_module

TINY = ["model=mlp", "trainer.progress=false", "model.hidden=[8]", "trainer.batch_size=64", "trainer.num_seeds=1", "model.features=null", "model.levels=null"]


def synthetic(n: int = 600, *, seed: int = 0, positive_share: float = 0.2):
    """A separable problem: buyers have a high `x0 + x1` or the categorical code 3."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"x{j}": rng.integers(0, 10, n) for j in range(4)})
    frame["code"] = rng.integers(1, 4, n)
    score = frame["x0"] + frame["x1"] + 6 * (frame["code"] == 3)
    labels = (score >= np.quantile(score, 1 - positive_share)).to_numpy(np.int8)
    table = TabularTable(frame, labels, np.arange(1, n + 1), {"code": 3}, "synthetic")
    order = rng.permutation(n)
    return prepare(table, np.sort(order[: n // 2]), np.sort(order[n // 2 : 3 * n // 4]), np.sort(order[3 * n // 4 :]))


def test_class_weighting_and_prior_correction(cfg_for) -> None:
    data = synthetic()
    balanced = data.pos_weight()
    assert balanced == pytest.approx((len(data.train) - data.train.positives) / data.train.positives)
    cfg = cfg_for([*TINY, "model.imbalance=weight"])
    assert class_weighting(cfg, data) == (pytest.approx(balanced), pytest.approx(balanced))
    cfg = cfg_for([*TINY, "model.imbalance=weight", "model.pos_weight=3"])
    assert class_weighting(cfg, data) == (3.0, 3.0) and module_kwargs(cfg, data)["prior_shift"] == pytest.approx(math.log(3))
    assert class_weighting(cfg_for([*TINY, "model.imbalance=sample"]), data) == (1.0, pytest.approx(balanced))
    assert class_weighting(cfg_for([*TINY, "model.imbalance=none"]), data) == (1.0, 1.0)
    assert module_kwargs(cfg_for([*TINY, "model.correct_prior=false"]), data)["prior_shift"] == 0.0
    with pytest.raises(ConfigError, match="model.imbalance=smote: expected one of weight, sample, none"):
        cfg_for([*TINY, "model.imbalance=smote"])  # refused when the config is typed, before any run
    with pytest.raises(ValueError, match="model.imbalance"):
        class_weighting(replace_in(cfg_for(TINY), "model", imbalance="smote"), data)
    model = ResponseMLP(4, [4], [3], prior_shift=math.log(3), rngs=nnx.Rngs(0))
    numeric, codes = jnp.ones((2, 4)), jnp.ones((2, 1), jnp.int32)
    np.testing.assert_allclose(model.probability(numeric, codes), jax.nn.sigmoid(model(numeric, codes) - math.log(3)), rtol=1e-6)


def test_weighted_loss_is_the_weighted_mean_of_the_cross_entropy() -> None:
    model = ResponseMLP(2, [2], [], rngs=nnx.Rngs(0))
    batch = {"numeric": jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), "categorical": jnp.array([[1], [0], [1]]),
             "labels": jnp.array([1.0, 0.0, 0.0])}
    loss, _ = bce_loss(model, batch, key=None, pos_weight=4.0)
    p = np.asarray(jax.nn.sigmoid(model(batch["numeric"], batch["categorical"])))
    expected = (-4 * np.log(p[0]) - np.log(1 - p[1]) - np.log(1 - p[2])) / 6
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_balanced_rows_draw_both_classes_equally() -> None:
    labels = jnp.asarray((np.arange(2000) % 20 == 0).astype(np.float32))  # 5% positives
    rows = np.asarray(balanced_rows(labels, jax.random.key(0)))
    assert rows.shape == (2000,) and float(labels[rows].mean()) == pytest.approx(0.5, abs=0.05)
    buyers_drawn = np.bincount(rows[np.asarray(labels)[rows] > 0], minlength=2000)[::20]
    assert (buyers_drawn > 0).mean() > 0.95  # every buyer is drawn ~10 times, not a few of them


def test_balanced_rows_are_the_same_under_vmap_and_survive_an_empty_class() -> None:
    labels = jnp.asarray((np.arange(500) % 7 == 0).astype(np.float32))
    keys = jax.random.split(jax.random.key(3), 4)
    together = np.asarray(jax.vmap(lambda key: balanced_rows(labels, key))(keys))
    np.testing.assert_array_equal(together, np.stack([np.asarray(balanced_rows(labels, key)) for key in keys]))
    for constant in (jnp.zeros(10), jnp.ones(10)):
        rows = np.asarray(balanced_rows(constant, jax.random.key(0)))
        assert rows.min() >= 0 and rows.max() < 10 and len(set(rows)) > 3


@pytest.mark.parametrize("options", [["model.imbalance=weight"], ["model.imbalance=sample", "model.norm=batch"],
                                     ["model.categorical=embed", "model.norm=layer", "model.imbalance=none"]])
def test_loss_falls_and_validation_auc_is_high_on_a_separable_problem(cfg_for, options: list[str]) -> None:
    data = synthetic()
    cfg = cfg_for([*TINY, *options, "trainer.epochs=25", "trainer.patience=null", "optim.lr=0.01", "model.dropout=0.0"])
    result = fit(cfg, data)
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.5 * losses[0]
    assert result.best_score > 0.95 and roc_auc_score(data.test.labels, predict(result.model, data.test)) > 0.95


def test_the_best_epoch_is_the_one_kept(cfg_for) -> None:
    data = synthetic(seed=1)
    cfg = cfg_for([*TINY, "trainer.epochs=12", "trainer.patience=null", "optim.lr=0.2"])  # a large step: AUC wanders
    result = fit(cfg, data)
    val_auc = [row["val_roc_auc"] for row in result.history]
    assert result.best_epoch == int(np.argmax(val_auc)) + 1 and result.best_score == max(val_auc)
    assert roc_auc_score(data.val.labels, predict(result.model, data.val)) == pytest.approx(result.best_score, abs=1e-6)
    assert fit_quietly(cfg, data).history == result.history  # cross-validation folds train the same way, logging nothing


def test_early_stopping_and_batch_statistics(cfg_for) -> None:
    data = synthetic()
    cfg = cfg_for([*TINY, "model.norm=batch", "trainer.epochs=50", "trainer.patience=2", "optim.lr=0.05"])
    task = build_task(cfg, data)
    state = task.init(jax.random.key(0))
    new_state, _ = task.train_epoch(state, jax.random.key(1))
    changed = jax.tree.map(lambda a, b: not np.allclose(a, b), state.rest, new_state.rest)
    assert any(jax.tree.leaves(changed))  # running batch statistics moved
    result = fit(cfg, data)
    assert result.stopped_early and result.epochs_run < 50


def test_saved_module_rebuilds_the_same_predictions(cfg_for, tmp_path) -> None:
    data = synthetic()
    cfg = cfg_for([*TINY, "trainer.epochs=2", "model.categorical=embed", "model.norm=batch"])
    result = fit(cfg, data)
    save_module(result.model, tmp_path, kwargs=module_kwargs(cfg, data))
    restored = load_module(tmp_path)
    np.testing.assert_allclose(predict(restored, data.test), predict(result.model, data.test), rtol=1e-6)


def test_validation_without_buyers_monitors_the_training_loss(cfg_for) -> None:
    data = synthetic()
    data = dataclasses.replace(data, val=dataclasses.replace(data.val, labels=np.zeros_like(data.val.labels)))
    task = build_task(cfg_for(TINY), data)
    assert (task.monitor, task.mode) == ("train_loss", "min")
