"""The functional training state shared by every model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
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


def abstract_graphdef(factory: Callable[[nnx.Rngs], nnx.Module]) -> nnx.GraphDef:
    """The graph of the module `factory(rngs)` builds, without computing any parameter."""
    return split_module(nnx.eval_shape(lambda: factory(nnx.Rngs(0))))[0]


def jit_init(factory: Callable[[nnx.Rngs], nnx.Module], tx: optax.GradientTransformation) -> Callable[[jax.Array], TrainState]:
    """`init(key) -> TrainState` of the module `factory(rngs)` builds, as one compiled program
    (building it op by op eagerly costs seconds of dispatch)."""
    return jax.jit(lambda key: init_state(factory(nnx.Rngs(params=key)), tx)[1])
