"""The LSTM click predictor module: shapes, masking of the padding, dropout only with a key, click flags."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from helpers import VOCAB, click_batch as batch
from mktlab.models.lstm.module import ClickLSTM


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
