"""Training the LSTM click predictor: a loss that falls where clicks depend on the history, determinism
for a seed, the monitored metric checked."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest

from helpers import composed, replace_in
from mktlab.config import ConfigError
from mktlab.data.clicklog import make_click_data
from mktlab.models.lstm.training import build_task, model_inputs, predict
from mktlab.train.loop import fit_loop

# A small LSTM on one core (`trainer=default`: no data-parallel split), no early stopping.
TINY = ("model=lstm", "trainer=default", "model.embed_dim=8", "model.hidden=16", "model.dense=16", "model.dropout=0.0",
        "data.max_len=4", "data.use_labels=false", "data.val_per_user=5", "data.test_per_user=5", "data.min_item_count=1",
        "optim.lr=0.02", "trainer.epochs=8", "trainer.batch_size=64", "trainer.patience=null", "trainer.progress=false")


def synthetic_log(n_users: int = 60, per_user: int = 40, seed: int = 0) -> pd.DataFrame:
    """Clicks that depend on the history only: a user clicks item i when they saw item i - 1 just before.

    Items cycle through 1..8 at random; neither the item nor the user alone says anything.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        items = rng.integers(1, 9, per_user)
        for t, item in enumerate(items):
            clicked = t > 0 and items[t - 1] == item - 1 or t > 0 and items[t - 1] == 8 and item == 1
            rows.append((user, int(item), t, float(rng.random() < (0.9 if clicked else 0.1))))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "clicked"])


def test_loss_falls_and_the_model_learns_a_history_dependent_click() -> None:
    cfg = composed(*TINY)
    data = make_click_data(synthetic_log(), cfg.data)
    task = build_task(cfg, data)
    result = fit_loop(task, cfg.trainer, model_key=jax.random.key(0), train_key=jax.random.key(1))
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.8 * losses[0]
    assert result.best_score > 0.75  # validation AUC; only the previous item tells a click (0.5 without the history)
    scores = predict(result.model, model_inputs(cfg, data, data.test))
    assert scores.shape == (len(data.test),) and np.all((scores > 0) & (scores < 1))


def test_training_is_deterministic_for_a_seed() -> None:
    cfg = composed(*TINY, "trainer.epochs=2", "trainer.batch_size=128")
    data = make_click_data(synthetic_log(n_users=20), cfg.data)
    runs = [fit_loop(build_task(cfg, data), cfg.trainer, model_key=jax.random.key(0), train_key=jax.random.key(1)) for _ in range(2)]
    assert runs[0].history == runs[1].history


def test_unknown_monitor_is_rejected() -> None:
    with pytest.raises(ConfigError, match="model.monitor=val_accuracy: expected one of val_roc_auc"):
        composed(*TINY, "model.monitor=val_accuracy")  # refused when the config is typed, before any run
    cfg = replace_in(composed(*TINY), "model", monitor="val_accuracy")
    with pytest.raises(ValueError, match="model.monitor"):
        build_task(cfg, make_click_data(synthetic_log(n_users=5), cfg.data))
