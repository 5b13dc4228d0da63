"""LSTM click predictor: shapes, masking of the padding, a loss that falls where clicks depend on the history."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from mktlab.config.schema import ClickLogDataConfig, LSTMModelConfig, OptimConfig, TrainerConfig
from mktlab.data.clicklog import PAD, make_click_data
from mktlab.models.lstm import ClickLSTM
from mktlab.train.loop import fit_loop
from mktlab.train.lstm import build_task, predict

VOCAB = 30


def batch(seed: int = 0, n: int = 6, max_len: int = 5):
    rng = np.random.default_rng(seed)
    lengths = np.array([0, 1, 2, 3, 5, 4][:n], np.int32)
    slots = np.arange(max_len)[None, :] < lengths[:, None]
    history = np.where(slots, rng.integers(1, VOCAB, (n, max_len)), PAD).astype(np.int32)
    clicks = np.where(slots, rng.integers(0, 2, (n, max_len)), 0).astype(np.float32)
    return history, clicks, lengths, rng.integers(1, VOCAB, n).astype(np.int32)


@pytest.mark.parametrize(("layers", "bidirectional"), [(1, False), (2, False), (1, True), (2, True)])
def test_shapes_and_padding_is_masked(layers: int, bidirectional: bool) -> None:
    model = ClickLSTM(VOCAB, 8, 6, layers=layers, bidirectional=bidirectional, dropout=0.2, dense=5, use_labels=True, rngs=nnx.Rngs(0))
    history, clicks, lengths, items = batch()
    logits = model(history, lengths, items, clicks)
    assert logits.shape == (6,)
    assert model.encode(history, lengths, clicks).shape == (6, 6 * (2 if bidirectional else 1))
    # Whatever sits in the padded positions (items and click flags) leaves the output unchanged.
    padded = np.arange(5)[None, :] >= lengths[:, None]
    noisy_history = np.where(padded, np.random.default_rng(1).integers(1, VOCAB, history.shape), history).astype(np.int32)
    noisy_clicks = np.where(padded, 1.0, clicks).astype(np.float32)
    np.testing.assert_allclose(model(noisy_history, lengths, items, noisy_clicks), logits, atol=1e-6)
    # An empty history has a zero state.
    np.testing.assert_array_equal(model.encode(noisy_history, lengths, noisy_clicks)[0], 0.0)
    # The real items do matter, and dropout draws differ only when a key is given.
    changed = history.copy()
    changed[4, 0] = (changed[4, 0] % (VOCAB - 1)) + 1
    assert not np.allclose(model(changed, lengths, items, clicks)[4], logits[4])
    np.testing.assert_array_equal(model(history, lengths, items, clicks), logits)
    assert not np.allclose(model(history, lengths, items, clicks, key=jax.random.key(0)), logits)


def test_click_flags_enter_only_when_used() -> None:
    history, clicks, lengths, items = batch()
    without = ClickLSTM(VOCAB, 8, 6, use_labels=False, rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(without(history, lengths, items, clicks), without(history, lengths, items, 1 - clicks))
    with_labels = ClickLSTM(VOCAB, 8, 6, use_labels=True, rngs=nnx.Rngs(0))
    assert not np.allclose(with_labels(history, lengths, items, clicks)[4], with_labels(history, lengths, items, 1 - clicks)[4])


def synthetic_log(n_users: int = 60, per_user: int = 40, seed: int = 0):
    """Clicks that depend on the history only: a user clicks item i when they saw item i - 1 just before.

    Items cycle through 1..8 at random; neither the item nor the user alone says anything.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        items = rng.integers(1, 9, per_user)
        for t, item in enumerate(items):
            clicked = t > 0 and items[t - 1] == item - 1 or t > 0 and items[t - 1] == 8 and item == 1
            rows.append((user, int(item), t, float(rng.random() < (0.9 if clicked else 0.1))))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "clicked"])


def tiny_cfg(**model):
    from types import SimpleNamespace

    return SimpleNamespace(
        model=LSTMModelConfig(embed_dim=8, hidden=16, dense=16, dropout=0.0, **model),
        data=ClickLogDataConfig(max_len=4, use_labels=False, val_per_user=5, test_per_user=5, min_item_count=1),
        optim=OptimConfig(lr=0.02),
        trainer=TrainerConfig(epochs=8, batch_size=64, patience=None, progress=False),
        seed=0,
    )


def test_loss_falls_and_the_model_learns_a_history_dependent_click() -> None:
    cfg = tiny_cfg()
    data = make_click_data(synthetic_log(), cfg.data)
    task = build_task(cfg, data)
    result = fit_loop(task, cfg.trainer, model_key=jax.random.key(0), train_key=jax.random.key(1))
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.8 * losses[0]
    assert result.best_score > 0.75  # validation AUC; only the previous item tells a click (0.5 without the history)
    scores = predict(result.model, data.test.arrays())
    assert scores.shape == (len(data.test),) and np.all((scores > 0) & (scores < 1))


def test_training_is_deterministic_for_a_seed() -> None:
    cfg = tiny_cfg()
    cfg.trainer = TrainerConfig(epochs=2, batch_size=128, patience=None, progress=False)
    data = make_click_data(synthetic_log(n_users=20), cfg.data)
    runs = [fit_loop(build_task(cfg, data), cfg.trainer, model_key=jax.random.key(0), train_key=jax.random.key(1)) for _ in range(2)]
    assert runs[0].history == runs[1].history


def test_unknown_monitor_is_rejected() -> None:
    cfg = tiny_cfg(monitor="val_accuracy")
    with pytest.raises(ValueError, match="model.monitor"):
        build_task(cfg, make_click_data(synthetic_log(n_users=5), cfg.data))
