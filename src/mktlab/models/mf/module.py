"""Matrix factorization: r(u, i) = mu + b_u + b_i + p_u . q_i, with an optional ranking head w_u . h_i."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class SolvedFactors(nnx.Variable):
    """Factors set by a closed-form solve (alternating least squares), not by gradients.

    Not an `nnx.Param`, so the optimizer never sees them: they travel in the training
    state's `rest` and the ranking head's solver replaces them once per epoch.
    """


class MatrixFactorization(nnx.Module):
    """Biased matrix factorization for ratings, plus an optional ranking head for top-k lists.

    The rating head predicts a rating, mu + b_u + b_i + p_u . q_i. A model trained only on
    squared rating error ranks obscure five-star items first, so with `rank_dim` > 0 the
    module also holds a second pair of factor tables, w_u . h_i, fitted to *which* items a
    user rates highly (implicit ALS, `mktlab.models.mf.ials`): `ranking_scores` orders items
    by it, `__call__` still predicts ratings. Without a ranking head, items are ranked by
    the predicted rating.

    Index `num_users` (`num_items`) is the out-of-vocabulary id of users (items) unseen
    in training: their factors and bias are zero, so a prediction falls back to the
    global mean plus the known side's bias.

    Args:
        num_users: users seen in training.
        num_items: items seen in training.
        dim: embedding dimension of the rating head.
        init_scale: standard deviation of the rating factors' normal init.
        use_bias: learn the global mean and per-user / per-item biases.
        global_mean: initial global mean (the training ratings' mean).
        rank_dim: embedding dimension of the ranking head; 0: no ranking head.
        rank_init_scale: standard deviation of the ranking factors' normal init, divided by
            sqrt(rank_dim) (so their dot products start near zero whatever the dimension).
        rngs: random streams for the init.
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        dim: int,
        *,
        init_scale: float = 0.1,
        use_bias: bool = True,
        global_mean: float = 0.0,
        rank_dim: int = 0,
        rank_init_scale: float = 0.1,
        rngs: nnx.Rngs,
    ) -> None:
        self.num_users = num_users
        self.num_items = num_items
        self.use_bias = use_bias
        self.rank_dim = rank_dim
        normal = nnx.initializers.normal(init_scale)
        self.user_factors = nnx.Embed(num_users, dim, embedding_init=normal, rngs=rngs)
        self.item_factors = nnx.Embed(num_items, dim, embedding_init=normal, rngs=rngs)
        zeros = nnx.initializers.zeros_init()
        self.user_bias = nnx.Embed(num_users, 1, embedding_init=zeros, rngs=rngs)
        self.item_bias = nnx.Embed(num_items, 1, embedding_init=zeros, rngs=rngs)
        self.global_mean = nnx.Param(jnp.asarray(global_mean if use_bias else 0.0, jnp.float32))
        if rank_dim > 0:  # drawn after the rating head's tables, which therefore start as without it
            scale = rank_init_scale / rank_dim**0.5
            self.rank_user_factors = SolvedFactors(scale * jax.random.normal(rngs.params(), (num_users, rank_dim)))
            self.rank_item_factors = SolvedFactors(scale * jax.random.normal(rngs.params(), (num_items, rank_dim)))

    def components(self, users: jax.Array, items: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        """Factors and biases of each (user, item) pair; zeros for out-of-vocabulary ids."""
        known_user = (users < self.num_users)[:, None]
        known_item = (items < self.num_items)[:, None]
        users = jnp.where(known_user[:, 0], users, 0)
        items = jnp.where(known_item[:, 0], items, 0)
        p = self.user_factors(users) * known_user
        q = self.item_factors(items) * known_item
        b_u = (self.user_bias(users) * known_user)[:, 0]
        b_i = (self.item_bias(items) * known_item)[:, 0]
        if not self.use_bias:
            b_u, b_i = jnp.zeros_like(b_u), jnp.zeros_like(b_i)
        return p, q, b_u, b_i

    def __call__(self, users: jax.Array, items: jax.Array) -> jax.Array:
        """Predicted ratings of (user, item) pairs (the rating head)."""
        p, q, b_u, b_i = self.components(users, items)
        return self.global_mean.value + b_u + b_i + jnp.sum(p * q, axis=-1)

    def score_all_items(self, users: jax.Array) -> jax.Array:
        """Predicted ratings of every training item for each user: shape (len(users), num_items)."""
        p = self.user_factors(users)
        scores = p @ self.item_factors.embedding.value.T
        if self.use_bias:
            scores = scores + self.global_mean.value + self.user_bias(users) + self.item_bias.embedding.value[:, 0][None, :]
        return scores

    def ranking_scores(self, users: jax.Array) -> jax.Array:
        """The scores top-k lists are ordered by, for every training item: (len(users), num_items).

        The ranking head's w_u . h_i when the module has one, else the predicted ratings.
        Only the order within a user's row means anything.
        """
        if self.rank_dim == 0:
            return self.score_all_items(users)
        return self.rank_user_factors.value[users] @ self.rank_item_factors.value.T
