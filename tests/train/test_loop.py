"""The one training loop: early stopping keeps the best epoch, NaN and diverging losses stop training,
each epoch reaches its callback (the session logs it), the first step's losses stay out of the history."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from helpers import trainer_config
from mktlab.train import NonFiniteLossError, TrainingDiverged, TrainTask, fit_loop

KEYS = {"model_key": jax.random.key(0), "train_key": jax.random.key(1)}


def test_early_stopping_keeps_the_best_epoch() -> None:
    scores = iter([1.0, 0.5, 0.7, 0.8, 0.9, 0.4])
    task = TrainTask(
        init=lambda key: {"w": jnp.zeros(())},
        train_epoch=lambda s, key: ({"w": s["w"] + 1}, {"loss": jnp.asarray(1.0)}),
        validate=lambda s: {"val_rmse": next(scores)},
        monitor="val_rmse",
    )
    result = fit_loop(task, trainer_config(epochs=6, patience=2, progress=False), **KEYS)
    assert result.stopped_early and result.epochs_run == 4
    assert result.best_epoch == 2 and float(result.state["w"]) == 2.0
    assert result.monitor == "val_rmse" and result.best_score == 0.5


def test_nan_loss_raises_a_clear_error() -> None:
    task = TrainTask(
        init=lambda key: {},
        train_epoch=lambda s, key: (s, {"loss": jnp.asarray(jnp.nan)}),
        validate=lambda s: {},
        monitor="train_loss",
    )
    with pytest.raises(NonFiniteLossError, match="train_loss became nan at epoch 1; lower optim.lr"):
        fit_loop(task, trainer_config(epochs=3, progress=False), **KEYS)


def growing_loss_task() -> TrainTask:
    """An epoch whose first step's loss is 1 and whose mean loss grows tenfold each epoch."""
    return TrainTask(
        init=lambda key: {"w": jnp.ones(())},
        train_epoch=lambda s, key: ({"w": s["w"] * 10}, {"loss": s["w"] * 10, "start_loss": jnp.asarray(1.0)}),
        validate=lambda s: {},
        monitor="train_loss",
    )


def test_a_loss_growing_past_the_divergence_factor_stops_training() -> None:
    with pytest.raises(TrainingDiverged, match=r"train_loss grew from 1 at the first step to 1000 at epoch 3 .*divergence_factor=100") as info:
        fit_loop(growing_loss_task(), trainer_config(epochs=5, patience=None, divergence_factor=100.0, progress=False), **KEYS)
    assert not isinstance(info.value, NonFiniteLossError)  # NaN is the subclass; a finite blow-up is not
    result = fit_loop(growing_loss_task(), trainer_config(epochs=5, patience=None, divergence_factor=None, progress=False), **KEYS)
    assert result.epochs_run == 5  # null disables the check


def test_every_epoch_reaches_the_callback_without_the_first_step_losses() -> None:
    seen = []
    result = fit_loop(growing_loss_task(), trainer_config(epochs=2, patience=None, progress=False),
                      on_epoch=lambda epoch, metrics: seen.append((epoch, dict(metrics))), **KEYS)
    assert seen == [(1, {"train_loss": 10.0}), (2, {"train_loss": 100.0})]
    assert [row for row in result.history] == [{"epoch": 1, "train_loss": 10.0}, {"epoch": 2, "train_loss": 100.0}]


def test_a_callback_that_answers_true_stops_training_and_keeps_the_best_epoch_so_far() -> None:
    scores = iter([1.0, 0.5, 0.7, 0.6, 0.4])
    task = TrainTask(
        init=lambda key: {"w": jnp.zeros(())},
        train_epoch=lambda s, key: ({"w": s["w"] + 1}, {"loss": jnp.asarray(1.0)}),
        validate=lambda s: {"val_rmse": next(scores)},
        monitor="val_rmse",
    )
    result = fit_loop(task, trainer_config(epochs=5, patience=None, progress=False), on_epoch=lambda epoch, metrics: epoch == 3, **KEYS)
    assert result.pruned and not result.stopped_early and result.epochs_run == 3
    assert result.best_epoch == 2 and float(result.state["w"]) == 2.0 and result.best_score == 0.5
    assert "pruned" in result.summary("val RMSE")
