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

    It reads the columns it is given (all by default) and, for the level columns, also the
    attribute's code one-hot encoded: the code is recovered from the standardized value
    inside the compiled step, so the data keeps one layout whatever the network reads.

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
        numeric_columns: the numeric input columns the network reads (indices); None reads all.
        categorical_columns: the categorical columns it reads (indices into `cardinalities`); None reads all.
        level_columns: numeric columns whose levels also enter one-hot encoded (indices into
            all numeric columns, read or not): an attribute's code recovered from its
            standardized value, `round(x * std + mean)`, clipped to `0 .. count - 1`.
        level_mean: per level column, the mean that standardized it.
        level_std: per level column, the standard deviation that standardized it.
        level_count: per level column, how many levels (codes 0 .. count - 1) it has.
        rngs: random streams for the init.

    The column and level arguments default to "as before them": a module saved without them
    loads as the network it was.
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
        numeric_columns: Sequence[int] | None = None,
        categorical_columns: Sequence[int] | None = None,
        level_columns: Sequence[int] = (),
        level_mean: Sequence[float] = (),
        level_std: Sequence[float] = (),
        level_count: Sequence[int] = (),
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
        self.numeric_columns = tuple(range(num_numeric)) if numeric_columns is None else tuple(int(j) for j in numeric_columns)
        self.categorical_columns = (tuple(range(len(cardinalities))) if categorical_columns is None
                                    else tuple(int(j) for j in categorical_columns))
        if any(not 0 <= j < num_numeric for j in self.numeric_columns):
            raise ValueError(f"numeric_columns={list(self.numeric_columns)}: expected indices below {num_numeric}")
        if any(not 0 <= j < len(cardinalities) for j in self.categorical_columns):
            raise ValueError(f"categorical_columns={list(self.categorical_columns)}: expected indices below {len(cardinalities)}")
        if not len(level_columns) == len(level_mean) == len(level_std) == len(level_count):
            raise ValueError("level_columns, level_mean, level_std and level_count need one entry per level column")
        if any(not 0 <= j < num_numeric for j in level_columns) or any(n < 1 for n in level_count):
            raise ValueError(f"level_columns={list(level_columns)}, level_count={list(level_count)}: expected numeric columns with levels")
        self.cardinalities = tuple(int(cardinalities[j]) for j in self.categorical_columns)
        self.level_columns = tuple(int(j) for j in level_columns)
        self.level_mean = tuple(float(v) for v in level_mean)
        self.level_std = tuple(float(v) for v in level_std)
        self.level_count = tuple(int(n) for n in level_count)
        self.reads_all_numeric = self.numeric_columns == tuple(range(num_numeric))
        numeric_width = len(self.numeric_columns) + sum(self.level_count)  # the first layer's numeric inputs
        self.categorical = categorical
        self.activation = activation
        self.norm = norm
        self.prior_shift = float(prior_shift)
        if categorical == "embed":
            self.embeddings = nnx.List([nnx.Embed(n, embed_dim, rngs=rngs) for n in self.cardinalities])
            width = numeric_width + embed_dim * len(self.cardinalities)
        else:
            self.embeddings = nnx.List([])
            width = numeric_width + sum(self.cardinalities)
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
        """The first layer's input: the numeric columns read, the one-hot levels, the encoded codes read."""
        levels = [
            jax.nn.one_hot(jnp.clip(jnp.round(numeric[:, j] * std + mean), 0, count - 1).astype(jnp.int32), count, dtype=numeric.dtype)
            for j, mean, std, count in zip(self.level_columns, self.level_mean, self.level_std, self.level_count)
        ]
        if not self.reads_all_numeric:
            numeric = numeric[:, jnp.array(self.numeric_columns, jnp.int32)]
        codes = [categorical[:, j] for j in self.categorical_columns]
        if self.categorical == "embed":
            parts = [embed(code) for code, embed in zip(codes, self.embeddings)]
        else:
            parts = [jax.nn.one_hot(code, n, dtype=numeric.dtype) for code, n in zip(codes, self.cardinalities)]
        return jnp.concatenate([numeric, *levels, *parts], axis=-1)

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
