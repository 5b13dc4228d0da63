"""Chunked prediction: the one helper every model scores with."""

from __future__ import annotations

import numpy as np
import pytest

from mktlab.train.predict import predict_in_chunks


def test_map_in_chunks_pads_the_last_chunk() -> None:
    x = np.arange(10, dtype=np.float32)[:, None]
    calls = []
    out = predict_in_chunks(lambda c: (calls.append(c.shape) or c * 2), x, 4, padding="chunk")
    np.testing.assert_array_equal(out, x * 2)
    assert calls == [(4, 1)] * 3


def test_other_paddings_named_inputs_and_tuples() -> None:
    x = np.arange(10, dtype=np.float32)
    calls = []
    out = predict_in_chunks(lambda c: (calls.append(c.shape) or c + 1), x, 4)
    np.testing.assert_array_equal(out, x + 1)
    assert calls == [(4,), (4,), (2,)]  # "none": the last chunk is smaller
    calls.clear()
    predict_in_chunks(lambda c: (calls.append(c.shape) or c), x, 64, padding="power_of_two")
    assert calls == [(16,)]
    first, second = predict_in_chunks(lambda a, b: (a + b, a - b), {"a": x, "b": 2 * x}, 3)
    np.testing.assert_array_equal(first, 3 * x)
    np.testing.assert_array_equal(second, -x)
    with pytest.raises(ValueError, match="no rows"):
        predict_in_chunks(lambda c: c, x[:0], 4)
