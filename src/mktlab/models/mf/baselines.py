"""Matrix factorization's trivial baselines: most-popular (ranking) and biases only (rating).

Both are evaluated by exactly the model's protocols (`mktlab.models.mf.evaluation`) and logged
as `baseline_test_popularity_*` and `baseline_test_biases_*`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from mktlab.data.ratings import RatingsSplit
from mktlab.evaluation.ranking import Scorer
from mktlab.evaluation.regression import rmse


def item_popularity(split: RatingsSplit, num_items: int) -> np.ndarray:
    """Ratings per known item in `split` (float64, length `num_items`): most-popular ranks by it."""
    items = split.items[split.items < num_items]
    return np.bincount(items, minlength=num_items).astype(np.float64)


def popularity_scorer(popularity: np.ndarray) -> Scorer:
    """Most-popular as a scorer: every user's scores are the items' training popularity."""
    row = jnp.asarray(popularity, jnp.float32)

    def score(users: jax.Array) -> jax.Array:
        return jnp.broadcast_to(row, (users.shape[0], row.shape[0]))

    return score


@dataclass(frozen=True)
class Biases:
    """r(u, i) = mu + b_u + b_i, fitted by regularized least squares; unknown ids get a zero bias."""

    mean: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    l2: float

    def predict(self, users: np.ndarray, items: np.ndarray, *, scale: tuple[float, float]) -> np.ndarray:
        b_u = np.where(users < len(self.user_bias), self.user_bias[np.minimum(users, len(self.user_bias) - 1)], 0.0)
        b_i = np.where(items < len(self.item_bias), self.item_bias[np.minimum(items, len(self.item_bias) - 1)], 0.0)
        return np.clip(self.mean + b_u + b_i, *scale)


def fit_biases(split: RatingsSplit, num_users: int, num_items: int, *, l2: float, sweeps: int = 20) -> Biases:
    """Minimize sum (r - mu - b_u - b_i)^2 + l2 (sum b_u^2 + sum b_i^2) over the biases, mu the mean rating.

    Each sweep solves the item biases in closed form given the user biases, then the other way
    round (coordinate descent on a convex quadratic: it converges to the exact minimum; 20
    sweeps leave changes far below a thousandth of a star).
    """
    known = (split.users < num_users) & (split.items < num_items)
    users, items, ratings = split.users[known], split.items[known], split.ratings[known].astype(np.float64)
    mean = float(ratings.mean()) if len(ratings) else 0.0
    n_u = np.bincount(users, minlength=num_users)
    n_i = np.bincount(items, minlength=num_items)
    b_u, b_i = np.zeros(num_users), np.zeros(num_items)
    for _ in range(sweeps):
        b_i = np.bincount(items, ratings - mean - b_u[users], minlength=num_items) / (l2 + n_i)
        b_u = np.bincount(users, ratings - mean - b_i[items], minlength=num_users) / (l2 + n_u)
    return Biases(mean, b_u, b_i, l2)


def best_biases(train: RatingsSplit, val: RatingsSplit, num_users: int, num_items: int, *, l2_grid: Sequence[float],
                scale: tuple[float, float]) -> Biases:
    """The biases-only model whose `l2` (from `l2_grid`) has the lowest validation RMSE (the first without validation)."""
    fitted = [fit_biases(train, num_users, num_items, l2=l2) for l2 in l2_grid]
    if len(val) == 0 or len(fitted) == 1:
        return fitted[0]
    errors = [rmse(val.ratings, model.predict(val.users, val.items, scale=scale)) for model in fitted]
    return fitted[int(np.argmin(errors))]
