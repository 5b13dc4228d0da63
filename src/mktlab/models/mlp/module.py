"""A multilayer perceptron that scores customers: the logit of the probability to buy."""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

ACTIVATIONS = {"relu": jax.nn.relu, "gelu": jax.nn.gelu, "tanh": jnp.tanh, "silu": jax.nn.silu}
NORMS = ("none", "batch", "layer")
CATEGORICAL_ENCODINGS = ("onehot", "embed")


class ResponseMLP(nnx.Module):
    """Binary classifier on standardized numeric attributes plus categorical codes.

    Each hidden block is Linear -> (BatchNorm | LayerNorm) -> activation -> Dropout; the
    output is one logit. The module is in training mode when its call gets a `key`
    (dropout on, batch statistics from the batch and updated) and in inference mode
    otherwise (no dropout, running batch statistics).

    Args:
        num_numeric: numeric input columns.
        cardinalities: per categorical column, the number of codes (index 0 = unknown).
        hidden: widths of the hidden layers (empty: logistic regression).
        activation: relu | gelu | tanh | silu.
        dropout: dropout rate after each hidden layer.
        norm: none | batch | layer: normalization after each hidden linear layer.
        categorical: onehot | embed: how the codes enter the first layer.
        embed_dim: embedding width per categorical column (`categorical="embed"`).
        prior_shift: subtracted from the logit by `probability`: the log of the weight the
            training gave buyers relative to the population, so that class weighting or
            balanced sampling leaves calibrated probabilities (ranking is unchanged).
        rngs: random streams for the init.
    """

    def __init__(
        self,
        num_numeric: int,
        cardinalities: Sequence[int],
        hidden: Sequence[int],
        *,
        activation: str = "relu",
        dropout: float = 0.0,
        norm: str = "none",
        categorical: str = "onehot",
        embed_dim: int = 8,
        prior_shift: float = 0.0,
        rngs: nnx.Rngs,
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"model.activation={activation!r}: expected one of {', '.join(ACTIVATIONS)}")
        if norm not in NORMS:
            raise ValueError(f"model.norm={norm!r}: expected one of {', '.join(NORMS)}")
        if categorical not in CATEGORICAL_ENCODINGS:
            raise ValueError(f"model.categorical={categorical!r}: expected one of {', '.join(CATEGORICAL_ENCODINGS)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"model.dropout={dropout}: expected a rate in [0, 1)")
        if any(width < 1 for width in hidden):
            raise ValueError(f"model.hidden={list(hidden)}: every layer needs at least one unit")
        self.cardinalities = tuple(int(n) for n in cardinalities)
        self.categorical = categorical
        self.activation = activation
        self.norm = norm
        self.prior_shift = float(prior_shift)
        if categorical == "embed":
            self.embeddings = nnx.List([nnx.Embed(n, embed_dim, rngs=rngs) for n in self.cardinalities])
            width = num_numeric + embed_dim * len(self.cardinalities)
        else:
            self.embeddings = nnx.List([])
            width = num_numeric + sum(self.cardinalities)
        layers, norms = [], []
        for units in hidden:
            layers.append(nnx.Linear(width, units, rngs=rngs))
            if norm == "batch":
                norms.append(nnx.BatchNorm(units, momentum=0.9, rngs=rngs))
            elif norm == "layer":
                norms.append(nnx.LayerNorm(units, rngs=rngs))
            width = units
        self.layers = nnx.List(layers)
        self.norms = nnx.List(norms)
        self.dropout = nnx.Dropout(dropout)
        self.output = nnx.Linear(width, 1, rngs=rngs)

    def inputs(self, numeric: jax.Array, categorical: jax.Array) -> jax.Array:
        """The first layer's input: numeric columns and the encoded codes."""
        if self.categorical == "embed":
            parts = [embed(categorical[:, j]) for j, embed in enumerate(self.embeddings)]
        else:
            parts = [jax.nn.one_hot(categorical[:, j], n, dtype=numeric.dtype) for j, n in enumerate(self.cardinalities)]
        return jnp.concatenate([numeric, *parts], axis=-1)

    def __call__(self, numeric: jax.Array, categorical: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        """Logits of shape (n,); `key` switches training mode on (dropout masks drawn from it)."""
        training = key is not None
        x = self.inputs(numeric, categorical)
        act = ACTIVATIONS[self.activation]
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if self.norm == "batch":
                x = self.norms[i](x, use_running_average=not training)
            elif self.norm == "layer":
                x = self.norms[i](x)
            x = act(x)
            if training and self.dropout.rate > 0:
                x = self.dropout(x, deterministic=False, rngs=jax.random.fold_in(key, i))
        return self.output(x)[:, 0]

    def probability(self, numeric: jax.Array, categorical: jax.Array) -> jax.Array:
        """Calibrated probability to buy (inference mode)."""
        return jax.nn.sigmoid(self(numeric, categorical) - self.prior_shift)


def prior_shift_for(weight: float) -> float:
    """The logit shift that class weight `weight` on buyers puts into a trained model."""
    return math.log(weight) if weight > 0 else 0.0
