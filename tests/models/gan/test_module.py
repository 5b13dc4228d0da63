"""GAN modules: shapes at 8x8 and 28x28, and the patch convolutions against XLA's own."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from mktlab.models.gan.module import Conv2D, ConvTranspose2D, Discriminator, Generator, ImageClassifier, base_size

NHWC = ("NHWC", "HWIO", "NHWC")


# Each call compiled as one program (as training and evaluation run them), not op by op.
call = nnx.jit(lambda module, x: module(x))
call_training = nnx.jit(lambda module, x, key: module(x, key=key))
features = nnx.jit(lambda module, x: module.features(x))


@pytest.mark.parametrize("size", [8, 28])
def test_shapes(size: int) -> None:
    generator = Generator(16, size, features=8, rngs=nnx.Rngs(0))
    images = call(generator, jnp.ones((5, 16)))
    assert images.shape == (5, size, size, 1)
    assert float(jnp.max(jnp.abs(images))) <= 1.0  # tanh
    assert call(Discriminator(size, features=8, rngs=nnx.Rngs(0)), images).shape == (5,)
    classifier = ImageClassifier(size, 10, feature_dim=12, rngs=nnx.Rngs(0))
    assert call(classifier, images).shape == (5, 10) and features(classifier, images).shape == (5, 12)
    # Training mode with a key (batch norm on the batch's statistics), inference without (on running averages).
    z = jax.random.normal(jax.random.key(2), (2, 16))
    trained = call_training(generator, z, jax.random.key(3))
    assert trained.shape == call(generator, z).shape == (2, size, size, 1)
    assert not np.allclose(trained, call(generator, z))
    np.testing.assert_array_equal(call(generator, z), call(generator, z))


def test_image_size_must_be_a_multiple_of_four() -> None:
    assert base_size(28) == 7
    with pytest.raises(ValueError, match="multiple of 4"):
        Generator(8, 10, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("kernel, stride, padding, side", [(4, 2, 1, 8), (4, 2, 1, 14), (3, 2, 1, 8), (3, 1, 1, 5)])
def test_patch_convolutions_match_xla(kernel: int, stride: int, padding: int, side: int) -> None:
    conv = Conv2D(3, 5, kernel, stride=stride, padding=padding, use_bias=False, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, side, side, 3))
    expected = lax.conv_general_dilated(x, conv.kernel[...], (stride, stride), ((padding, padding),) * 2, dimension_numbers=NHWC)
    np.testing.assert_allclose(call(conv, x), expected, atol=1e-5)
    if kernel % stride == 0:
        # The transposed convolution is the adjoint of the convolution with the same kernel.
        transposed = ConvTranspose2D(5, 3, kernel, stride=stride, padding=padding, use_bias=False, rngs=nnx.Rngs(0))
        transposed.kernel[...] = conv.kernel[...].transpose(0, 1, 3, 2)
        y = call(conv, x)
        _, adjoint = jax.vjp(conv, x)
        np.testing.assert_allclose(call(transposed, y), adjoint(y)[0], atol=1e-5)
        assert call(transposed, y).shape == x.shape
