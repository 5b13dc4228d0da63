"""Implicit alternating least squares (iALS): the ranking head's objective, solved in closed form, in JAX.

The objective (Hu, Koren & Volinsky 2008, in the form of Rendle et al. 2022, "Revisiting
the performance of iALS on item recommendation benchmarks") over user factors W and item
factors H, with s_ui = w_u . h_i:

    sum_{(u,i) observed} c_ui (s_ui - 1)^2  +  alpha0 * sum_{all (u,i)} s_ui^2
      + l2 * sum_u (n_u + alpha0 * num_items)^nu |w_u|^2 + l2 * sum_i (n_i + alpha0 * num_users)^nu |h_i|^2

Every pair a user did not pick is a weak negative (weight alpha0), the picked pairs are
positives; the regularization grows with how much data a row has (nu = 1: as the row's
share of the loss; nu = 0: one constant for every row). With H fixed the objective is a
ridge regression per user, and the other way round: one sweep solves all users, then all
items. Each solve runs a few steps of conjugate gradients warm-started at the current
factors (as the `implicit` package does), on the normal equations

    (alpha0 * H^T H + H^T diag(c_u) H + reg_u I) w_u = H^T c_u,

applied without ever forming a per-user matrix: the all-pairs term is one (dim, dim) Gram
matrix, and the observed term touches the observed pairs only (a gather of their factors,
a product, and a sum per row over pairs kept sorted by row). Time and memory grow with the
observed pairs and the rows, never with rows x columns.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


def confidence_matrix(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, num_users: int, num_items: int, *,
                      min_rating: float, slope: float = 0.0) -> np.ndarray:
    """The dense (num_users, num_items) float32 matrix of `positive_pairs`' weights, 0 elsewhere."""
    rows, cols, weights = positive_pairs(users, items, ratings, num_users, num_items, min_rating=min_rating, slope=slope)
    matrix = np.zeros((num_users, num_items), np.float32)
    matrix[rows, cols] = weights
    return matrix


def positive_pairs(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, num_users: int, num_items: int, *,
                   min_rating: float, slope: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (user, item) pairs rated at least `min_rating`, sorted by user then item, and their weights
    1 + slope * (rating - min_rating) (1 when `min_rating` is -inf): with `slope` > 0 a five-star rating
    weighs more than a four-star one. Out-of-vocabulary ids are dropped; a pair rated twice at or above
    `min_rating` weighs as its last such rating."""
    users, items, ratings = np.asarray(users), np.asarray(items), np.asarray(ratings)
    keep = (ratings >= min_rating) & (users < num_users) & (items < num_items)
    users, items, ratings = users[keep].astype(np.int64), items[keep].astype(np.int64), ratings[keep]
    pair = users * num_items + items
    # the last record of each pair: unique over the reversed records
    unique, last = np.unique(pair[::-1], return_index=True)
    chosen = len(pair) - 1 - last
    weights = 1.0 + slope * (ratings[chosen] - min_rating) if np.isfinite(min_rating) else np.ones(len(chosen))
    return (unique // num_items).astype(np.int32), (unique % num_items).astype(np.int32), weights.astype(np.float32)


class Pairs(NamedTuple):
    """Observed pairs seen from one side: `rows` index the factors being solved, `cols` the other
    side's, sorted by row; `weights` their confidences."""

    rows: jax.Array
    cols: jax.Array
    weights: jax.Array


class Observations(NamedTuple):
    """The data of one iALS problem, computed once (`observations`) and passed into the compiled sweeps.

    Attributes:
        by_row: the observed pairs sorted by row (the users' solve).
        by_col: the same pairs seen from the columns, sorted by column (the items' solve).
        reg_rows, reg_cols: each row's and each column's L2 penalty (module docstring).
    """

    by_row: Pairs
    by_col: Pairs
    reg_rows: jax.Array
    reg_cols: jax.Array


def regularization(counts: np.ndarray, others: int, *, alpha0: float, l2: float, exponent: float) -> np.ndarray:
    """l2 * (observations of the row + alpha0 * columns) ** exponent, per row of `counts`."""
    return (l2 * (np.asarray(counts, np.float64) + alpha0 * others) ** exponent).astype(np.float32)


def observations(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, shape: tuple[int, int], *, alpha0: float, l2: float,
                 exponent: float) -> Observations:
    """The `Observations` of the pairs (rows[k], cols[k]) with confidence weights[k] > 0, in a
    (rows, columns) = `shape` problem, under the objective's weights."""
    rows, cols, weights = np.asarray(rows, np.int32), np.asarray(cols, np.int32), np.asarray(weights, np.float32)
    by_row, by_col = np.lexsort((cols, rows)), np.lexsort((rows, cols))
    return Observations(
        by_row=Pairs(jnp.asarray(rows[by_row]), jnp.asarray(cols[by_row]), jnp.asarray(weights[by_row])),
        by_col=Pairs(jnp.asarray(cols[by_col]), jnp.asarray(rows[by_col]), jnp.asarray(weights[by_col])),
        reg_rows=jnp.asarray(regularization(np.bincount(rows, minlength=shape[0]), shape[1], alpha0=alpha0, l2=l2, exponent=exponent)),
        reg_cols=jnp.asarray(regularization(np.bincount(cols, minlength=shape[1]), shape[0], alpha0=alpha0, l2=l2, exponent=exponent)),
    )


def dense_observations(confidence: np.ndarray, *, alpha0: float, l2: float, exponent: float) -> Observations:
    """The `Observations` of a dense (rows, columns) confidence matrix, 0 where unobserved."""
    confidence = np.asarray(confidence, np.float32)
    rows, cols = np.nonzero(confidence)
    return observations(rows, cols, confidence[rows, cols], confidence.shape, alpha0=alpha0, l2=l2, exponent=exponent)


def solve_rows(x: jax.Array, y: jax.Array, pairs: Pairs, reg: jax.Array, *, alpha0: float, cg_steps: int) -> jax.Array:
    """The rows' factors that minimize the objective with the columns' factors `y` fixed.

    Args:
        x: (rows, dim) current factors, the conjugate gradients' starting point.
        y: (columns, dim) the other side's factors.
        pairs: the observed pairs, sorted by row.
        reg: (rows,) each row's L2 penalty.
        alpha0: the weight of every pair (module docstring).
        cg_steps: conjugate gradient steps (each: one pass over the observed pairs and one (rows, dim, dim) product).
    """
    gram = y.T @ y
    reg = reg[:, None]
    observed = y[pairs.cols]  # (pairs, dim): the other side's factors of every observed pair, gathered once per solve

    def per_row(values: jax.Array) -> jax.Array:  # (pairs, dim) -> (rows, dim): the sum over each row's pairs
        return jax.ops.segment_sum(values, pairs.rows, num_segments=x.shape[0], indices_are_sorted=True)

    def system(v: jax.Array) -> jax.Array:  # each row's (alpha0 Y^T Y + Y^T diag(c) Y + reg I) v
        scores = jnp.sum(v[pairs.rows] * observed, axis=1) * pairs.weights
        return alpha0 * (v @ gram) + per_row(scores[:, None] * observed) + reg * v

    residual = per_row(pairs.weights[:, None] * observed) - system(x)
    direction, norm = residual, jnp.sum(residual * residual, axis=1)

    def step(_: int, carry: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
        x, residual, direction, norm = carry
        image = system(direction)
        rate = norm / jnp.maximum(jnp.sum(direction * image, axis=1), 1e-30)
        x = x + rate[:, None] * direction
        residual = residual - rate[:, None] * image
        new_norm = jnp.sum(residual * residual, axis=1)
        direction = residual + (new_norm / jnp.maximum(norm, 1e-30))[:, None] * direction
        return x, residual, direction, new_norm

    return jax.lax.fori_loop(0, cg_steps, step, (x, residual, direction, norm))[0]


def sweep(users: jax.Array, items: jax.Array, data: Observations, *, alpha0: float, cg_steps: int) -> tuple[jax.Array, jax.Array]:
    """One alternation: every user's factors given the items', then every item's given the new users'."""
    users = solve_rows(users, items, data.by_row, data.reg_rows, alpha0=alpha0, cg_steps=cg_steps)
    return users, solve_rows(items, users, data.by_col, data.reg_cols, alpha0=alpha0, cg_steps=cg_steps)


def objective(users: jax.Array, items: jax.Array, data: Observations, *, alpha0: float) -> jax.Array:
    """The iALS objective (module docstring) divided by the number of observed pairs.

    The observed term gathers the scores of the observed pairs only; the all-pairs term is
    trace(W^T W H^T H), so nothing here scores every pair.
    """
    pairs = data.by_row
    scores = jnp.sum(users[pairs.rows] * items[pairs.cols], axis=1)
    observed = jnp.sum(pairs.weights * (scores - 1.0) ** 2)
    everything = jnp.sum((users.T @ users) * (items.T @ items))  # sum over all pairs of s_ui^2
    penalty = jnp.sum(data.reg_rows * jnp.sum(users**2, 1)) + jnp.sum(data.reg_cols * jnp.sum(items**2, 1))
    return (observed + alpha0 * everything + penalty) / jnp.maximum(pairs.rows.shape[0], 1)


__all__ = ["Observations", "Pairs", "confidence_matrix", "positive_pairs", "observations", "dense_observations", "regularization",
           "solve_rows", "sweep", "objective"]
