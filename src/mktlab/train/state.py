"""The functional training state shared by every model."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx, struct


@struct.dataclass
class TrainState:
    """Everything a training step changes, as one pytree.

    `params` are the trainable `nnx.Param`s, `rest` every other variable of the module
    (batch statistics, RNG counters), `opt_state` the optax state.
    """

    params: Any
    rest: Any
    opt_state: Any
    step: jax.Array


def split_module(module: nnx.Module) -> tuple[nnx.GraphDef, Any, Any]:
    """(graphdef, params, rest) of a module."""
    return nnx.split(module, nnx.Param, ...)


def merge_module(graphdef: nnx.GraphDef, params: Any, rest: Any) -> nnx.Module:
    """A module from its parts; a fresh copy, safe to call (and mutate) under any trace."""
    return nnx.merge(graphdef, params, rest, copy=True)


def init_state(module: nnx.Module, tx: Any) -> tuple[nnx.GraphDef, TrainState]:
    graphdef, params, rest = split_module(module)
    return graphdef, TrainState(params=params, rest=rest, opt_state=tx.init(params), step=jnp.zeros((), jnp.int32))
