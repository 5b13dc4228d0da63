"""DCGAN generator and discriminator, and the small classifier that scores generated images.

Images are NHWC arrays in [-1, 1]. The networks are sized by the data: a side of
`image_size` pixels is reached from `image_size // 4` by two stride-2 layers, so 8x8
digits and 28x28 MNIST use the same code.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

# DCGAN (Radford et al., 2016) draws every weight from N(0, 0.02).
DCGAN_INIT = nnx.initializers.normal(0.02)


def base_size(image_size: int) -> int:
    """The side of the first feature map: two stride-2 layers scale it to `image_size`."""
    if image_size < 4 or image_size % 4:
        raise ValueError(f"image_size={image_size}: the GAN needs a multiple of 4 (e.g. 8 or 28)")
    return image_size // 4


class Generator(nnx.Module):
    """Latent vector -> dense -> reshape -> 2 transposed convolutions -> tanh image.

    Batch norm follows the dense layer and the first transposed convolution. In training
    mode it normalizes with the batch statistics; `eval()` switches to the running
    averages (how saved generators sample).

    Args:
        latent_dim: size of the input noise vector.
        image_size: side of the square output image (a multiple of 4).
        channels: image channels (1 for grey images).
        features: channels of the last hidden feature map (the first has twice as many).
        bn_momentum: decay of the batch-norm running averages.
        rngs: random streams for the init.
    """

    def __init__(self, latent_dim: int, image_size: int, *, channels: int = 1, features: int = 64,
                 bn_momentum: float = 0.9, rngs: nnx.Rngs) -> None:
        self.latent_dim = latent_dim
        self.image_size = image_size
        self.base = base_size(image_size)
        wide = 2 * features
        self.project = nnx.Linear(latent_dim, self.base * self.base * wide, use_bias=False, kernel_init=DCGAN_INIT, rngs=rngs)
        self.norm0 = nnx.BatchNorm(wide, momentum=bn_momentum, rngs=rngs)
        self.up1 = nnx.ConvTranspose(wide, features, (4, 4), (2, 2), padding="SAME", use_bias=False, kernel_init=DCGAN_INIT, rngs=rngs)
        self.norm1 = nnx.BatchNorm(features, momentum=bn_momentum, rngs=rngs)
        self.up2 = nnx.ConvTranspose(features, channels, (4, 4), (2, 2), padding="SAME", kernel_init=DCGAN_INIT, rngs=rngs)

    def __call__(self, z: jax.Array) -> jax.Array:
        x = self.project(z).reshape(z.shape[0], self.base, self.base, -1)
        x = nnx.relu(self.norm0(x))
        x = nnx.relu(self.norm1(self.up1(x)))
        return jnp.tanh(self.up2(x))


class Discriminator(nnx.Module):
    """Image -> 2 stride-2 convolutions with leaky ReLU -> one logit (real vs generated).

    Args:
        image_size: side of the square input image (a multiple of 4).
        channels: image channels.
        features: channels of the first convolution (the second has twice as many).
        rngs: random streams for the init.
    """

    def __init__(self, image_size: int, *, channels: int = 1, features: int = 64, rngs: nnx.Rngs) -> None:
        base = base_size(image_size)
        self.down1 = nnx.Conv(channels, features, (4, 4), (2, 2), padding="SAME", kernel_init=DCGAN_INIT, rngs=rngs)
        self.down2 = nnx.Conv(features, 2 * features, (4, 4), (2, 2), padding="SAME", kernel_init=DCGAN_INIT, rngs=rngs)
        self.logit = nnx.Linear(base * base * 2 * features, 1, kernel_init=DCGAN_INIT, rngs=rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        x = nnx.leaky_relu(self.down1(images), 0.2)
        x = nnx.leaky_relu(self.down2(x), 0.2)
        return self.logit(x.reshape(x.shape[0], -1))[:, 0]


class ImageClassifier(nnx.Module):
    """A small CNN that labels real images; its penultimate layer is the feature space of
    the classifier FID, its softmax the distribution of the classifier Inception score.

    Args:
        image_size: side of the square input image (a multiple of 4).
        num_classes: labels it predicts.
        channels: image channels.
        feature_dim: size of the penultimate (feature) layer.
        rngs: random streams for the init.
    """

    def __init__(self, image_size: int, num_classes: int, *, channels: int = 1, feature_dim: int = 64, rngs: nnx.Rngs) -> None:
        base = base_size(image_size)
        self.conv1 = nnx.Conv(channels, 32, (3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(32, 64, (3, 3), (2, 2), rngs=rngs)
        self.conv3 = nnx.Conv(64, 64, (3, 3), (2, 2), rngs=rngs)
        self.hidden = nnx.Linear(base * base * 64, feature_dim, rngs=rngs)
        self.out = nnx.Linear(feature_dim, num_classes, rngs=rngs)

    def features(self, images: jax.Array) -> jax.Array:
        x = nnx.relu(self.conv1(images))
        x = nnx.relu(self.conv2(x))
        x = nnx.relu(self.conv3(x))
        return nnx.relu(self.hidden(x.reshape(x.shape[0], -1)))

    def __call__(self, images: jax.Array) -> jax.Array:
        return self.out(self.features(images))
