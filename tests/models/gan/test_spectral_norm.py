"""Spectral normalization of the GAN's discriminator (`model.d_spectral_norm`): the normalized weight has
spectral norm 1, the normalized discriminator is at most 4-Lipschitz, and off it is the DCGAN one."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mktlab.models.gan.module import Discriminator, spectral_normalize


def test_spectral_normalize_divides_by_the_largest_singular_value() -> None:
    w = 3.0 * jax.random.normal(jax.random.key(0), (20, 7))
    v = jax.random.normal(jax.random.key(1), (20,))
    for _ in range(30):  # the power iterate carried from call to call, as over training steps
        normalized, v = spectral_normalize(w, v)
    assert np.linalg.norm(np.asarray(w), 2) > 5
    np.testing.assert_allclose(np.linalg.norm(np.asarray(normalized), 2), 1.0, rtol=1e-4)


def _largest_ratio(f, inputs: jax.Array, key: jax.Array) -> float:
    """The largest |f(x) - f(y)| / |x - y| over pairs of `inputs` and small random moves of them."""
    moved = inputs + 0.1 * jax.random.normal(key, inputs.shape)
    ratios = []
    for x, y in [(inputs, moved), (inputs, inputs[::-1])]:
        num = jnp.sqrt(jnp.sum((f(x) - f(y)).reshape(len(x), -1) ** 2, axis=1))
        den = jnp.sqrt(jnp.sum((x - y).reshape(len(x), -1) ** 2, axis=1))
        ratios.append(jnp.max(num / jnp.maximum(den, 1e-9)))
    return float(max(ratios))


def test_spectral_norm_bounds_the_discriminators_lipschitz_constant() -> None:
    """With spectral normalization each weight has norm 1 whatever its scale: the dense layer
    is 1-Lipschitz, a 4x4 stride-2 convolution at most 2-Lipschitz (each pixel sits in at most
    4 patches), the whole discriminator at most 4-Lipschitz (leaky ReLU is 1-Lipschitz). The
    same weights without it give a discriminator far steeper than that."""
    plain = Discriminator(8, features=8, rngs=nnx.Rngs(0))
    normed = Discriminator(8, features=8, spectral_norm=True, rngs=nnx.Rngs(0))
    for layer in ("down1", "down2", "logit"):  # large weights, the same in both
        big = 50.0 * getattr(plain, layer).kernel[...]
        getattr(plain, layer).kernel[...] = big
        getattr(normed, layer).kernel[...] = big.reshape(getattr(normed, layer).kernel.shape)
    images = jax.random.uniform(jax.random.key(2), (64, 8, 8, 1), minval=-1, maxval=1)
    for _ in range(30):  # calls advance each layer's power iterate
        normed(images)
    key = jax.random.key(3)
    assert _largest_ratio(normed, images, key) <= 4.0 * 1.001
    assert _largest_ratio(plain, images, key) > 40.0
    assert _largest_ratio(normed.down1, images, key) <= 2.0 * 1.001
    features = jax.random.normal(jax.random.key(4), (64, normed.logit.kernel.shape[0]))
    assert _largest_ratio(normed.logit, features, key) <= 1.0 * 1.001
    np.testing.assert_allclose(np.linalg.norm(np.asarray(normed.logit.weight()), 2), 1.0, rtol=1e-4)


def test_the_discriminator_without_spectral_norm_is_the_dcgan_one() -> None:
    """The option off builds exactly the old layers (the same parameters from the same key)."""
    d = Discriminator(8, features=8, rngs=nnx.Rngs(0))
    assert isinstance(d.logit, nnx.Linear) and d.down1.spectral_v is None and d.down2.spectral_v is None
    flat = {path: np.asarray(value) for path, value in nnx.to_flat_state(nnx.state(d))}
    assert sorted(flat) == [("down1", "bias"), ("down1", "kernel"), ("down2", "bias"), ("down2", "kernel"),
                            ("logit", "bias"), ("logit", "kernel")]
    normed = Discriminator(8, features=8, spectral_norm=True, rngs=nnx.Rngs(0))
    # the first layer's kernel is drawn before any power iterate, so it is the DCGAN one
    np.testing.assert_array_equal(flat[("down1", "kernel")], normed.down1.kernel[...])
