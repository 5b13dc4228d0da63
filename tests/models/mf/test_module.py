"""Matrix factorization: shapes, out-of-vocabulary fallback, a falling loss, determinism."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mktlab.config.schema import OptimConfig, TrainerConfig
from mktlab.models.mf import MatrixFactorization
from mktlab.train.loop import TrainTask, fit_loop
from mktlab.train.mf import mf_loss
from mktlab.train.optim import build_optimizer
from mktlab.train.state import init_state
from mktlab.train.steps import compile_epoch, make_train_step


def tiny_model(**kw) -> MatrixFactorization:
    return MatrixFactorization(5, 7, 3, global_mean=3.0, rngs=nnx.Rngs(0), **kw)


def test_shapes_and_scores() -> None:
    model = tiny_model()
    users, items = jnp.array([0, 1, 4]), jnp.array([0, 6, 3])
    assert model(users, items).shape == (3,)
    scores = model.score_all_items(users)
    assert scores.shape == (3, 7)
    np.testing.assert_allclose(scores[jnp.arange(3), items], model(users, items), rtol=1e-5)


def test_unknown_user_or_item_falls_back_to_biases() -> None:
    model = tiny_model()
    model.item_bias.embedding.value = model.item_bias.embedding.value.at[2, 0].set(0.5)
    prediction = model(jnp.array([5]), jnp.array([2]))  # user 5 is out of vocabulary
    np.testing.assert_allclose(prediction, [3.5], rtol=1e-6)
    assert float(model(jnp.array([5]), jnp.array([7]))[0]) == 3.0  # both unknown: the global mean


def synthetic_ratings(n_users=30, n_items=40, dim=2, seed=0):
    rng = np.random.default_rng(seed)
    p, q = rng.normal(size=(n_users, dim)), rng.normal(size=(n_items, dim))
    users = rng.integers(0, n_users, 2000).astype(np.int32)
    items = rng.integers(0, n_items, 2000).astype(np.int32)
    ratings = (3 + np.sum(p[users] * q[items], -1)).astype(np.float32)
    return {"users": users, "items": items, "ratings": ratings}, n_users, n_items


def test_loss_falls_on_a_low_rank_problem() -> None:
    arrays, n_users, n_items = synthetic_ratings()
    tx = build_optimizer(OptimConfig(lr=0.05))
    module = MatrixFactorization(n_users, n_items, 4, global_mean=3.0, rngs=nnx.Rngs(0))
    graphdef, state = init_state(module, tx)
    epoch = compile_epoch(make_train_step(graphdef, lambda m, b, *, key: mf_loss(m, b, key=key, l2=0.0), tx), 128)
    losses = []
    for e in range(30):
        state, metrics = epoch(state, arrays, jax.random.key(e))
        losses.append(float(metrics["loss"]))
    assert losses[-1] < 0.1 * losses[0]


def _fit(seed: int):
    arrays, n_users, n_items = synthetic_ratings()
    tx = build_optimizer(OptimConfig(lr=0.05))
    graphdef, _ = init_state(MatrixFactorization(n_users, n_items, 4, rngs=nnx.Rngs(0)), tx)
    epoch = compile_epoch(make_train_step(graphdef, lambda m, b, *, key: mf_loss(m, b, key=key, l2=0.01), tx), 256)
    task = TrainTask(
        init=lambda key: init_state(MatrixFactorization(n_users, n_items, 4, rngs=nnx.Rngs(params=key)), tx)[1],
        train_epoch=lambda s, key: epoch(s, arrays, key),
        validate=lambda s: {},
        monitor="train_loss",
        graphdef=graphdef,
    )
    keys = jax.random.split(jax.random.key(seed))
    return fit_loop(task, TrainerConfig(epochs=5, patience=None, progress=False), model_key=keys[0], train_key=keys[1])


def test_same_seed_gives_identical_history_and_other_seed_does_not() -> None:
    a, b, c = _fit(0), _fit(0), _fit(1)
    assert a.history == b.history
    assert a.history != c.history
    assert a.best_epoch == 5 and a.history[-1]["train_loss"] < a.history[0]["train_loss"]


def test_early_stopping_keeps_the_best_epoch() -> None:
    scores = iter([1.0, 0.5, 0.7, 0.8, 0.9, 0.4])
    task = TrainTask(
        init=lambda key: {"w": jnp.zeros(())},
        train_epoch=lambda s, key: ({"w": s["w"] + 1}, {"loss": jnp.asarray(1.0)}),
        validate=lambda s: {"val_rmse": next(scores)},
        monitor="val_rmse",
    )
    result = fit_loop(task, TrainerConfig(epochs=6, patience=2, progress=False), model_key=jax.random.key(0), train_key=jax.random.key(1))
    assert result.stopped_early and result.epochs_run == 4
    assert result.best_epoch == 2 and float(result.state["w"]) == 2.0


def test_nan_loss_raises_a_clear_error() -> None:
    import pytest

    from mktlab.train.loop import NonFiniteLossError

    task = TrainTask(
        init=lambda key: {},
        train_epoch=lambda s, key: (s, {"loss": jnp.asarray(jnp.nan)}),
        validate=lambda s: {},
        monitor="train_loss",
    )
    with pytest.raises(NonFiniteLossError, match="train_loss became nan at epoch 1; lower optim.lr"):
        fit_loop(task, TrainerConfig(epochs=3, progress=False), model_key=jax.random.key(0), train_key=jax.random.key(1))
