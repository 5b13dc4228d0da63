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

applied without ever forming a per-user matrix: the observations are a dense
(rows, columns) confidence matrix, zero where unobserved, so each product with the
system is two matrix products. That is fast for data sets of up to some thousands of
users and items (MovieLens latest-small, ml-100k, ml-1m); its memory is rows x columns.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


def confidence_matrix(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, num_users: int, num_items: int, *,
                      min_rating: float, slope: float = 0.0) -> np.ndarray:
    """The dense (num_users, num_items) float32 matrix of observations: 1 + slope * (rating - min_rating)
    where the user rated the item at least `min_rating` in these records, 0 elsewhere (out-of-vocabulary
    ids are dropped). With `slope` > 0 a five-star rating weighs more than a four-star one."""
    keep = (ratings >= min_rating) & (users < num_users) & (items < num_items)
    matrix = np.zeros((num_users, num_items), np.float32)
    if np.isfinite(min_rating):
        weights = 1.0 + slope * (ratings[keep] - min_rating)
    else:
        weights = np.ones(int(keep.sum()), np.float32)
    matrix[users[keep], items[keep]] = weights
    return matrix


class Observations(NamedTuple):
    """The data of one iALS problem, computed once (`observations`) and passed into the compiled sweeps.

    Attributes:
        confidence: (rows, columns) weights of the observed pairs, 0 where unobserved.
        confidence_t: its transpose, materialized once rather than transposed in every sweep.
        rows, cols, weights: the observed pairs and their weights (the nonzero entries).
        reg_rows, reg_cols: each row's and each column's L2 penalty (module docstring).
    """

    confidence: jax.Array
    confidence_t: jax.Array
    rows: jax.Array
    cols: jax.Array
    weights: jax.Array
    reg_rows: jax.Array
    reg_cols: jax.Array


def row_regularization(confidence: np.ndarray, *, alpha0: float, l2: float, exponent: float) -> np.ndarray:
    """l2 * (observations of the row + alpha0 * columns) ** exponent, per row of `confidence`."""
    counts = np.sum(np.asarray(confidence) > 0, axis=1).astype(np.float64)
    return (l2 * (counts + alpha0 * confidence.shape[1]) ** exponent).astype(np.float32)


def observations(confidence: np.ndarray, *, alpha0: float, l2: float, exponent: float) -> Observations:
    """The `Observations` of a dense confidence matrix under the objective's weights."""
    confidence = np.asarray(confidence, np.float32)
    rows, cols = np.nonzero(confidence)
    return Observations(
        confidence=jnp.asarray(confidence),
        confidence_t=jnp.asarray(np.ascontiguousarray(confidence.T)),
        rows=jnp.asarray(rows, jnp.int32),
        cols=jnp.asarray(cols, jnp.int32),
        weights=jnp.asarray(confidence[rows, cols]),
        reg_rows=jnp.asarray(row_regularization(confidence, alpha0=alpha0, l2=l2, exponent=exponent)),
        reg_cols=jnp.asarray(row_regularization(confidence.T, alpha0=alpha0, l2=l2, exponent=exponent)),
    )


def solve_rows(x: jax.Array, y: jax.Array, confidence: jax.Array, reg: jax.Array, *, alpha0: float, cg_steps: int) -> jax.Array:
    """The rows' factors that minimize the objective with the columns' factors `y` fixed.

    Args:
        x: (rows, dim) current factors, the conjugate gradients' starting point.
        y: (columns, dim) the other side's factors.
        confidence: (rows, columns) weights of the observed pairs, 0 where unobserved.
        reg: (rows,) each row's L2 penalty.
        alpha0: the weight of every pair (module docstring).
        cg_steps: conjugate gradient steps (each: two (rows, columns, dim) matrix products).
    """
    gram = y.T @ y
    reg = reg[:, None]

    def system(v: jax.Array) -> jax.Array:  # each row's (alpha0 Y^T Y + Y^T diag(c) Y + reg I) v
        return alpha0 * (v @ gram) + ((v @ y.T) * confidence) @ y + reg * v

    residual = confidence @ y - system(x)
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
    users = solve_rows(users, items, data.confidence, data.reg_rows, alpha0=alpha0, cg_steps=cg_steps)
    return users, solve_rows(items, users, data.confidence_t, data.reg_cols, alpha0=alpha0, cg_steps=cg_steps)


def objective(users: jax.Array, items: jax.Array, data: Observations, *, alpha0: float) -> jax.Array:
    """The iALS objective (module docstring) divided by the number of observed pairs.

    The observed term gathers the scores of the observed pairs only; the all-pairs term is
    trace(W^T W H^T H), so nothing here scores every pair.
    """
    scores = jnp.sum(users[data.rows] * items[data.cols], axis=1)
    observed = jnp.sum(data.weights * (scores - 1.0) ** 2)
    everything = jnp.sum((users.T @ users) * (items.T @ items))  # sum over all pairs of s_ui^2
    penalty = jnp.sum(data.reg_rows * jnp.sum(users**2, 1)) + jnp.sum(data.reg_cols * jnp.sum(items**2, 1))
    return (observed + alpha0 * everything + penalty) / jnp.maximum(data.rows.shape[0], 1)


__all__ = ["Observations", "confidence_matrix", "observations", "row_regularization", "solve_rows", "sweep", "objective"]
