"""Exponential moving averages of parameters (e.g. a GAN generator's, evaluated in its place)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

EMA_WARMUP = 10.0  # the decay ramps as (1 + t) / (EMA_WARMUP + t): early steps do not drag the average toward the init


def ema_decay(decay: float, step: jax.Array | int) -> jax.Array:
    """The decay used after `step` updates: `min(decay, (1 + step) / (10 + step))`.

    The ramp (as in TensorFlow's `ExponentialMovingAverage` with `num_updates`) lets the
    average follow the fast early changes of a short run instead of remembering the
    random init for `1 / (1 - decay)` steps.
    """
    step = jnp.asarray(step, jnp.float32)
    return jnp.minimum(decay, (1.0 + step) / (EMA_WARMUP + step))


def ema_update(average: Any, new: Any, decay: jax.Array | float) -> Any:
    """`decay * average + (1 - decay) * new` leaf by leaf; leaves that are not floating point take `new`."""

    def mix(a: jax.Array, b: jax.Array) -> jax.Array:
        if not jnp.issubdtype(b.dtype, jnp.floating):
            return b
        return (decay * a + (1.0 - decay) * b).astype(b.dtype)

    return jax.tree.map(mix, average, new)


def ema_init(tree: Any) -> Any:
    """The average at the start: a copy of `tree` (its own buffers, so a donated original cannot alias it)."""
    return jax.tree.map(jnp.copy, tree)


__all__ = ["EMA_WARMUP", "ema_decay", "ema_init", "ema_update"]
