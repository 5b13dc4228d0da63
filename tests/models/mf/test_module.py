"""The matrix factorization module: shapes, scores, out-of-vocabulary fallback."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from mktlab.models.mf.module import MatrixFactorization


def tiny_model(**kw) -> MatrixFactorization:
    return MatrixFactorization(5, 7, 3, global_mean=3.0, rngs=nnx.Rngs(0), **kw)


def test_shapes_and_scores() -> None:
    model = tiny_model()
    users, items = jnp.array([0, 1, 4]), jnp.array([0, 6, 3])
    assert model(users, items).shape == (3,)
    scores = model.score_all_items(users)
    assert scores.shape == (3, 7)
    np.testing.assert_allclose(scores[jnp.arange(3), items], model(users, items), rtol=1e-5)


def test_unknown_user_or_item_falls_back_to_biases() -> None:
    model = tiny_model()
    model.item_bias.embedding.value = model.item_bias.embedding.value.at[2, 0].set(0.5)
    prediction = model(jnp.array([5]), jnp.array([2]))  # user 5 is out of vocabulary
    np.testing.assert_allclose(prediction, [3.5], rtol=1e-6)
    assert float(model(jnp.array([5]), jnp.array([7]))[0]) == 3.0  # both unknown: the global mean
