"""The response MLP module: shapes, training and inference modes, logistic regression without hidden layers,
options refused with their config key."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mktlab.models.mlp.module import ResponseMLP


@pytest.mark.parametrize("categorical", ["onehot", "embed"])
@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_output_shape_at_tiny_sizes(categorical: str, norm: str) -> None:
    model = ResponseMLP(3, [4, 2], [5, 3], norm=norm, categorical=categorical, embed_dim=2, dropout=0.5, rngs=nnx.Rngs(0))
    numeric, codes = jnp.ones((7, 3)), jnp.array([[0, 1], [3, 1]] * 3 + [[2, 0]])
    assert model(numeric, codes).shape == (7,)
    assert model(numeric, codes, key=jax.random.key(1)).shape == (7,)
    assert model.inputs(numeric, codes).shape == (7, 3 + (4 + 2 if categorical == "onehot" else 2 * 2))
    probabilities = model.probability(numeric, codes)
    assert probabilities.shape == (7,) and bool(jnp.all((probabilities > 0) & (probabilities < 1)))


def test_no_hidden_layer_is_logistic_regression() -> None:
    model = ResponseMLP(3, [2], [], rngs=nnx.Rngs(0))
    x, codes = jnp.arange(6.0).reshape(2, 3), jnp.array([[1], [0]])
    expected = jnp.concatenate([x, jax.nn.one_hot(codes[:, 0], 2)], 1) @ model.output.kernel.value[:, 0] + model.output.bias.value[0]
    np.testing.assert_allclose(model(x, codes), expected, rtol=1e-6)


def test_dropout_only_in_training_mode_and_inference_is_deterministic() -> None:
    model = ResponseMLP(4, [3], [32, 16], dropout=0.5, rngs=nnx.Rngs(0))
    numeric, codes = jax.random.normal(jax.random.key(0), (16, 4)), jnp.ones((16, 1), jnp.int32)
    np.testing.assert_array_equal(model(numeric, codes), model(numeric, codes))
    a, b = model(numeric, codes, key=jax.random.key(1)), model(numeric, codes, key=jax.random.key(2))
    assert not np.allclose(a, b) and not np.allclose(a, model(numeric, codes))


def test_invalid_options_are_rejected_with_the_config_key() -> None:
    for kwargs, key in [({"activation": "swish"}, "model.activation"), ({"norm": "group"}, "model.norm"),
                        ({"categorical": "hash"}, "model.categorical"), ({"dropout": 1.0}, "model.dropout")]:
        with pytest.raises(ValueError, match=key):
            ResponseMLP(2, [2], [4], rngs=nnx.Rngs(0), **kwargs)
