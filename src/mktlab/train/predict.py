"""Chunked prediction: one helper every model scores with.

Scoring a whole split in one call can need more memory than the device has, so inputs
are cut into chunks of rows; a jitted scorer compiles once per chunk shape, so the last
chunk can be padded to a shape already compiled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

PADDINGS = ("none", "chunk", "power_of_two")


def chunk_rows(n: int, chunk_size: int, padding: str) -> int:
    """Rows per chunk for `n` rows: `chunk_size`, or fewer when the rows fit in less
    (the next power of two of `n` with `padding="power_of_two"`)."""
    if padding not in PADDINGS:
        raise ValueError(f"padding={padding!r}: expected one of {', '.join(PADDINGS)}")
    if padding == "power_of_two":
        return max(1, min(chunk_size, 1 << max(n - 1, 0).bit_length()))
    return max(1, min(chunk_size, n))


def predict_in_chunks(fn: Callable[..., Any], inputs: Any, chunk_size: int, *, padding: str = "none") -> Any:
    """`fn` over chunks of rows of `inputs`, its outputs concatenated as numpy arrays.

    Args:
        fn: called as `fn(**chunk)` when `inputs` is a mapping of arrays, else `fn(chunk)`;
            returns an array or a pytree of arrays with one row per input row.
        inputs: an array, or a mapping of arrays with the same number of rows.
        chunk_size: the most rows per call.
        padding: `"none"` (the last chunk is smaller), `"chunk"` (the last chunk is padded with
            zeros to the chunk's size, so a jitted `fn` compiles once) or `"power_of_two"`
            (chunks of the next power of two of the row count, at most `chunk_size`: a few
            compiled shapes serve inputs of any size). Padded rows are dropped from the output.
    """
    named = isinstance(inputs, Mapping)
    arrays = dict(inputs) if named else {"_": inputs}
    n = len(next(iter(arrays.values())))
    if n == 0:
        raise ValueError("no rows to predict")
    size = chunk_rows(n, chunk_size, padding)
    outputs = []
    for start in range(0, n, size):
        chunk = {k: v[start : start + size] for k, v in arrays.items()}
        rows = len(next(iter(chunk.values())))
        if rows < size and padding != "none":
            chunk = {k: np.concatenate([np.asarray(v), np.zeros((size - rows, *v.shape[1:]), v.dtype)]) for k, v in chunk.items()}
        result = fn(**chunk) if named else fn(chunk["_"])
        outputs.append(jax.tree.map(lambda a: np.asarray(a)[:rows], result))
    return jax.tree.map(lambda *parts: np.concatenate(parts), *outputs)
