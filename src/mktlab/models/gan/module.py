"""DCGAN generator and discriminator, and the small classifier that scores generated images.

Images are NHWC arrays in [-1, 1]. The networks are sized by the data: a side of
`image_size` pixels is reached from `image_size // 4` by two stride-2 layers, so 8x8
digits and 28x28 MNIST use the same code.

The convolutions are computed as matrix products over image patches (`Conv2D`,
`ConvTranspose2D`). On CPU, XLA runs a transposed convolution, and the input gradient of
a strided one, as a dilated convolution 5-20x slower than the same arithmetic as a
matmul; both layers have the arithmetic of `torch.nn.Conv2d` / `ConvTranspose2d` with
the same kernel, stride and padding.

The discriminator can divide each weight by its spectral norm (`spectral_norm=True`,
Miyato et al., 2018); off, it is the DCGAN discriminator, parameter for parameter.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# DCGAN (Radford et al., 2016) draws every weight from N(0, 0.02).
DCGAN_INIT = nnx.initializers.normal(0.02)


def base_size(image_size: int) -> int:
    """The side of the first feature map: two stride-2 layers scale it to `image_size`."""
    if image_size < 4 or image_size % 4:
        raise ValueError(f"image_size={image_size}: the GAN needs a multiple of 4 (e.g. 8 or 28)")
    return image_size // 4


class PowerIterate(nnx.Variable):
    """The running estimate of a weight's leading singular vector (not trained; it lives in a state's `rest`)."""


def _unit(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    return x / jnp.maximum(jnp.linalg.norm(x), eps)


def spectral_normalize(matrix: jax.Array, v: jax.Array, *, iterations: int = 1) -> tuple[jax.Array, jax.Array]:
    """`(matrix / sigma, v')`: `matrix` (in, out) divided by its largest singular value,
    estimated by `iterations` power iterations started from `v` (in,) (Miyato et al., 2018).

    The singular vectors are constants to the gradient, sigma is not: the gradient flows
    through `sigma = v'^T W u` as in the paper. Returns the updated `v'` to carry to the
    next call, so one iteration per training step converges over the steps. The order of
    the updates is that of PyTorch's `spectral_norm` (`u = W^T v`, then `v' = W u`, for our
    (in, out) layout), so both give the same numbers from the same `v`.
    """
    w = jax.lax.stop_gradient(matrix)
    for _ in range(iterations):
        u = _unit(w.T @ v)
        v = _unit(w @ u)
    u, v = jax.lax.stop_gradient(u), jax.lax.stop_gradient(v)
    sigma = v @ matrix @ u
    return matrix / sigma, v


class _SpectralWeight(nnx.Module):
    """A layer whose weight, read as an (inputs, outputs) matrix, can be spectrally normalized."""

    kernel: nnx.Param
    spectral_v: PowerIterate | None

    def _init_spectral(self, spectral_norm: bool, rngs: nnx.Rngs) -> None:
        inputs = int(np.prod(self.kernel.shape[:-1]))
        self.spectral_v = PowerIterate(_unit(jax.random.normal(rngs.params(), (inputs,)))) if spectral_norm else None

    def weight(self) -> jax.Array:
        """The kernel as used: divided by its spectral norm (the power iterate advancing one step) when enabled."""
        kernel = self.kernel[...]
        if self.spectral_v is None:
            return kernel
        matrix, v = spectral_normalize(kernel.reshape(-1, kernel.shape[-1]), self.spectral_v[...])
        self.spectral_v[...] = v
        return matrix.reshape(kernel.shape)


class _SquareKernel(_SpectralWeight):
    """A `(kernel, kernel, in, out)` weight with its stride and zero padding, an optional bias,
    and optional spectral normalization of the weight (`spectral_norm`)."""

    def __init__(self, in_features: int, out_features: int, kernel: int, *, stride: int = 1, padding: int = 0,
                 use_bias: bool = True, kernel_init=nnx.initializers.lecun_normal(), spectral_norm: bool = False,
                 rngs: nnx.Rngs) -> None:
        self.kernel_size, self.stride, self.padding = kernel, stride, padding
        self.kernel = nnx.Param(kernel_init(rngs.params(), (kernel, kernel, in_features, out_features)))
        self.bias = nnx.Param(jnp.zeros((out_features,))) if use_bias else None
        self._init_spectral(spectral_norm, rngs)

    def _add_bias(self, y: jax.Array) -> jax.Array:
        return y if self.bias is None else y + self.bias[...]


class Dense(_SpectralWeight):
    """A dense layer `x @ kernel + bias` with optional spectral normalization of the kernel."""

    def __init__(self, in_features: int, out_features: int, *, kernel_init=nnx.initializers.lecun_normal(),
                 spectral_norm: bool = False, rngs: nnx.Rngs) -> None:
        self.kernel = nnx.Param(kernel_init(rngs.params(), (in_features, out_features)))
        self.bias = nnx.Param(jnp.zeros((out_features,)))
        self._init_spectral(spectral_norm, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return x @ self.weight() + self.bias[...]


class Conv2D(_SquareKernel):
    """Convolution with a square `kernel`, `stride` and zero `padding` on each side.

    Output side: `(side + 2 * padding - kernel) // stride + 1`. Kernel layout
    `(kernel, kernel, in, out)`.
    """

    def __call__(self, x: jax.Array) -> jax.Array:
        k, s, p = self.kernel_size, self.stride, self.padding
        batch, height, width, channels = x.shape
        out_h, out_w = (height + 2 * p - k) // s + 1, (width + 2 * p - k) // s + 1
        x = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        patches = jnp.stack(
            [x[:, a : a + s * (out_h - 1) + 1 : s, b : b + s * (out_w - 1) + 1 : s] for a in range(k) for b in range(k)], axis=3
        )  # (batch, out_h, out_w, k*k, channels), the kernel's own order
        y = patches.reshape(batch * out_h * out_w, k * k * channels) @ self.weight().reshape(k * k * channels, -1)
        return self._add_bias(y.reshape(batch, out_h, out_w, -1))


class ConvTranspose2D(_SquareKernel):
    """Transposed convolution (the adjoint of `Conv2D` with the same kernel, stride, padding).

    Output side: `(side - 1) * stride + kernel - 2 * padding`; `kernel` must be a multiple
    of `stride`. Each input pixel spreads `kernel x kernel` weighted copies of itself;
    overlapping copies are summed phase by phase.
    """

    def __init__(self, in_features: int, out_features: int, kernel: int, *, stride: int = 1, **kwargs) -> None:
        if kernel % stride:
            raise ValueError(f"kernel={kernel} must be a multiple of stride={stride}")
        super().__init__(in_features, out_features, kernel, stride=stride, **kwargs)

    def __call__(self, x: jax.Array) -> jax.Array:
        k, s, p = self.kernel_size, self.stride, self.padding
        batch, height, width, channels = x.shape
        taps = k // s  # kernel rows (columns) landing on one output phase
        w = jnp.transpose(self.weight(), (2, 0, 1, 3)).reshape(channels, -1)
        y = (x.reshape(-1, channels) @ w).reshape(batch, height, width, taps, s, taps, s, -1)  # kernel row = s*tap + phase
        full = 0
        for i in range(taps):
            for j in range(taps):
                full = full + jnp.pad(y[:, :, :, i, :, j], ((0, 0), (i, taps - 1 - i), (j, taps - 1 - j), (0, 0), (0, 0), (0, 0)))
        rows, cols = s * (height + taps - 1), s * (width + taps - 1)
        full = jnp.transpose(full, (0, 1, 3, 2, 4, 5)).reshape(batch, rows, cols, -1)
        return self._add_bias(full[:, p : rows - p, p : cols - p])


class Generator(nnx.Module):
    """Latent vector -> dense -> reshape -> 2 transposed convolutions -> tanh image.

    Batch norm follows the dense layer and the first transposed convolution. Called with a
    `key` (training mode) it normalizes with the batch statistics and updates their running
    averages; without one (inference, how saved generators sample) it uses the running
    averages.

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
        self.up1 = ConvTranspose2D(wide, features, 4, stride=2, padding=1, use_bias=False, kernel_init=DCGAN_INIT, rngs=rngs)
        self.norm1 = nnx.BatchNorm(features, momentum=bn_momentum, rngs=rngs)
        self.up2 = ConvTranspose2D(features, channels, 4, stride=2, padding=1, kernel_init=DCGAN_INIT, rngs=rngs)

    def __call__(self, z: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        """Images in [-1, 1]; `key` switches training mode on (nothing is drawn from it)."""
        inference = key is None
        x = self.project(z).reshape(z.shape[0], self.base, self.base, -1)
        x = nnx.relu(self.norm0(x, use_running_average=inference))
        x = nnx.relu(self.norm1(self.up1(x), use_running_average=inference))
        return jnp.tanh(self.up2(x))


class Discriminator(nnx.Module):
    """Image -> 2 stride-2 convolutions with leaky ReLU -> one logit (real vs generated).

    Args:
        image_size: side of the square input image (a multiple of 4).
        channels: image channels.
        features: channels of the first convolution (the second has twice as many).
        spectral_norm: divide every weight by its spectral norm, which bounds each layer's
            Lipschitz constant (Miyato et al., 2018). Each call advances the layers' power
            iterates one step (the discriminator only runs in training).
        rngs: random streams for the init.
    """

    def __init__(self, image_size: int, *, channels: int = 1, features: int = 64, spectral_norm: bool = False,
                 rngs: nnx.Rngs) -> None:
        base = base_size(image_size)
        sn = {"spectral_norm": spectral_norm}
        self.down1 = Conv2D(channels, features, 4, stride=2, padding=1, kernel_init=DCGAN_INIT, **sn, rngs=rngs)
        self.down2 = Conv2D(features, 2 * features, 4, stride=2, padding=1, kernel_init=DCGAN_INIT, **sn, rngs=rngs)
        if spectral_norm:
            self.logit = Dense(base * base * 2 * features, 1, kernel_init=DCGAN_INIT, **sn, rngs=rngs)
        else:  # the layer of the DCGAN discriminator, kept so its runs reproduce
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
        self.conv1 = Conv2D(channels, 32, 3, padding=1, rngs=rngs)
        self.conv2 = Conv2D(32, 64, 3, stride=2, padding=1, rngs=rngs)
        self.conv3 = Conv2D(64, 64, 3, stride=2, padding=1, rngs=rngs)
        self.hidden = nnx.Linear(base * base * 64, feature_dim, rngs=rngs)
        self.out = nnx.Linear(feature_dim, num_classes, rngs=rngs)

    def features(self, images: jax.Array) -> jax.Array:
        x = nnx.relu(self.conv1(images))
        x = nnx.relu(self.conv2(x))
        x = nnx.relu(self.conv3(x))
        return nnx.relu(self.hidden(x.reshape(x.shape[0], -1)))

    def __call__(self, images: jax.Array) -> jax.Array:
        return self.out(self.features(images))
