"""Matrix factorization training: a falling loss on a low-rank problem, determinism for a seed, programs reused across fits.

(The loop's own behaviour, early stopping and NaN losses, is tests/train/test_loop.py.)"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from flax import nnx

from helpers import optim_config, trainer_config
from mktlab import session
from mktlab.models import registry
from mktlab.models.mf.module import MatrixFactorization
from mktlab.models.mf.training import PENALTIES, mf_loss
from mktlab.train import programs
from mktlab.train.loop import TrainTask, fit_loop
from mktlab.train.optim import build_optimizer
from mktlab.train.state import init_state
from mktlab.train.steps import compile_epoch, make_train_step


def synthetic_ratings(n_users=30, n_items=40, dim=2, seed=0):
    rng = np.random.default_rng(seed)
    p, q = rng.normal(size=(n_users, dim)), rng.normal(size=(n_items, dim))
    users = rng.integers(0, n_users, 2000).astype(np.int32)
    items = rng.integers(0, n_items, 2000).astype(np.int32)
    ratings = (3 + np.sum(p[users] * q[items], -1)).astype(np.float32)
    return {"users": users, "items": items, "ratings": ratings}, n_users, n_items


def test_loss_falls_on_a_low_rank_problem() -> None:
    arrays, n_users, n_items = synthetic_ratings()
    tx = build_optimizer(optim_config(lr=0.05))
    module = MatrixFactorization(n_users, n_items, 4, global_mean=3.0, rngs=nnx.Rngs(0))
    graphdef, state = init_state(module, tx)
    epoch = compile_epoch(make_train_step(graphdef, mf_loss, tx), 128)
    losses = []
    for e in range(30):
        state, metrics = epoch(state, arrays, jax.random.key(e))
        losses.append(float(metrics["loss"]))
    assert losses[-1] < 0.1 * losses[0]


def _fit(seed: int):
    arrays, n_users, n_items = synthetic_ratings()
    tx = build_optimizer(optim_config(lr=0.05))
    graphdef, _ = init_state(MatrixFactorization(n_users, n_items, 4, rngs=nnx.Rngs(0)), tx)
    epoch = compile_epoch(make_train_step(graphdef, mf_loss, tx), 256)
    arrays = {**arrays, **{name: np.full(len(arrays["ratings"]), 0.01, np.float32) for name in PENALTIES}}
    task = TrainTask(
        init=lambda key: init_state(MatrixFactorization(n_users, n_items, 4, rngs=nnx.Rngs(params=key)), tx)[1],
        train_epoch=lambda s, key: epoch(s, arrays, key),
        validate=lambda s: {},
        monitor="train_loss",
        graphdef=graphdef,
    )
    keys = jax.random.split(jax.random.key(seed))
    return fit_loop(task, trainer_config(epochs=5, patience=None, progress=False), model_key=keys[0], train_key=keys[1])


def test_same_seed_gives_identical_history_and_other_seed_does_not() -> None:
    a, b, c = _fit(0), _fit(0), _fit(1)
    assert a.history == b.history
    assert a.history != c.history
    assert a.best_epoch == 5 and a.history[-1]["train_loss"] < a.history[0]["train_loss"]


def test_a_second_fit_reuses_the_programs_for_any_learning_rate_and_penalty_and_a_changed_problem_gets_its_own() -> None:
    """In one process (a warm kernel's next job) a fit of the same shapes reuses the compiled programs,
    also with another learning rate and L2 strength (the programs read them from the optimizer's state
    and the data), and the ranking head solved by the first fit; ratings with another mean (a constant
    the initial state captures, and other positives) get programs and a ranking head of their own. Each
    fit equals the same fit with nothing kept."""
    cfg = registry.typed(registry.compose(["model=mf", "debug=tiny", "data.subsample=3000", "trainer.progress=false"]))
    data = session.load(cfg)
    shifted = dataclasses.replace(data, train=dataclasses.replace(data.train, ratings=data.train.ratings - 0.5))
    faster = registry.typed(registry.compose(["model=mf", "debug=tiny", "data.subsample=3000", "trainer.progress=false",
                                              "optim.lr=0.01", "model.l2=0.05", "model.l2_exponent=0.8"]))
    programs.clear()
    first = session.fit(cfg, data)
    kept = programs.kept()
    again = session.fit(cfg, data)
    assert programs.kept() == kept == 2  # the programs and the solved ranking head; the second fit added nothing
    others = [session.fit(cfg, shifted), session.fit(faster, data)]
    assert programs.kept() == 4  # the shifted ratings' programs and head; the other rate and penalty ran the first ones
    programs.clear()
    alone = [session.fit(cfg, shifted), session.fit(faster, data)]
    assert first.history == again.history
    for reused, fresh in zip(others, alone):
        assert reused.history == fresh.history
        np.testing.assert_array_equal(reused.model.rank_item_factors.value, fresh.model.rank_item_factors.value)
    assert others[0].history != first.history and others[1].history != first.history
