"""Image evaluation any generative model can use: classifier-based FID, Inception score
and class coverage, and sample grids as PNG, GIF or matplotlib figures.

The Inception network of the original metrics knows nothing about 8x8 digits; the
classifier versions here use a small classifier trained on the real images instead
(`mktlab.models.gan.ImageClassifier`): its penultimate layer is the feature space of
the Fréchet distance, its softmax the label distribution of the Inception score. The
numbers are comparable within one data set and classifier, not with published FIDs.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from flax import nnx

from mktlab.train.predict import predict_in_chunks


# --------------------------------------------------------------------------- scoring


class ImageScorer:
    """Features and class probabilities of images under a trained classifier.

    The classifier must have `features(images)` and `out(features)` (the logits layer).
    """

    def __init__(self, classifier: nnx.Module, *, batch_size: int = 4096) -> None:
        self.batch_size = batch_size
        self.graphdef, self.state = nnx.split(classifier)

        def score(state, images):
            model = nnx.merge(self.graphdef, state)
            features = model.features(images)
            return features, jax.nn.softmax(model.out(features))

        self._score = jax.jit(score)

    def __call__(self, images: np.ndarray | jax.Array) -> tuple[np.ndarray, np.ndarray]:
        """`(features, probabilities)` as float64 arrays, one row per image."""
        features, probs = predict_in_chunks(lambda chunk: self._score(self.state, chunk), images, self.batch_size, padding="chunk")
        return features.astype(np.float64), probs.astype(np.float64)


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of feature rows (float64)."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need at least 2 feature rows, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(stats_a: tuple[np.ndarray, np.ndarray], stats_b: tuple[np.ndarray, np.ndarray]) -> float:
    """Fréchet distance between two Gaussians, |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)).

    The trace of the square root is computed as that of the symmetric
    `S_a^(1/2) S_b S_a^(1/2)`, which has the same eigenvalues, so no complex square
    roots of nearly singular products arise.
    """
    (mu_a, cov_a), (mu_b, cov_b) = stats_a, stats_b
    root_a = _psd_sqrt(cov_a)
    product = root_a @ cov_b @ root_a
    trace_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0, None)))
    diff = mu_a - mu_b
    return float(max(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt, 0.0))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Classifier FID between two sets of feature rows."""
    return frechet_distance(gaussian_stats(features_a), gaussian_stats(features_b))


def inception_score(probs: np.ndarray, *, eps: float = 1e-12) -> float:
    """exp(E_x KL(p(y|x) || p(y))): 1 when every image gets the same label distribution,
    the number of classes when each image is confidently one class and the classes are
    equally frequent."""
    probs = np.asarray(probs, np.float64)
    marginal = probs.mean(axis=0, keepdims=True)
    kl = np.sum(probs * (np.log(probs + eps) - np.log(marginal + eps)), axis=1)
    return float(np.exp(np.mean(kl)))


def class_shares(probs: np.ndarray) -> np.ndarray:
    """Share of the images whose most likely class is each class."""
    probs = np.asarray(probs)
    return np.bincount(probs.argmax(axis=1), minlength=probs.shape[1]) / len(probs)


def class_coverage(probs: np.ndarray, *, min_share: float = 0.01) -> int:
    """How many classes get at least `min_share` of the images (few: mode collapse)."""
    return int(np.sum(class_shares(probs) >= min_share))


def label_metrics(probs: np.ndarray, *, min_share: float = 0.01) -> dict[str, float]:
    """What the class probabilities of a set of images say: `inception_score`, `class_coverage`,
    and the smallest and largest class share (`class_share_min`, `class_share_max`; both
    1 / classes when the classes are equally frequent)."""
    shares = class_shares(probs)
    return {
        "inception_score": inception_score(probs),
        "class_coverage": float(class_coverage(probs, min_share=min_share)),
        "class_share_min": float(shares.min()),
        "class_share_max": float(shares.max()),
    }


def image_metrics(features: np.ndarray, probs: np.ndarray, reference: tuple[np.ndarray, np.ndarray] | np.ndarray, *,
                  min_share: float = 0.01) -> dict[str, float]:
    """`fid` against `reference` (feature rows or their Gaussian stats), and `label_metrics`."""
    stats = reference if isinstance(reference, tuple) else gaussian_stats(reference)
    return {"fid": frechet_distance(gaussian_stats(features), stats), **label_metrics(probs, min_share=min_share)}


# --------------------------------------------------------------------------- pictures


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Images in [-1, 1], shape (n, h, w[, 1]) -> uint8 (n, h, w)."""
    images = np.asarray(images, np.float32)
    if images.ndim == 4:
        images = images[..., 0]
    return np.round((np.clip(images, -1, 1) + 1) * 127.5).astype(np.uint8)


def cell_scale(image_size: int, target: int = 56) -> int:
    """Pixel repeat that makes a cell about `target` pixels wide (8x8 digits are tiny)."""
    return max(1, round(target / image_size))


def image_grid(images: np.ndarray, *, columns: int = 8, scale: int = 1, pad: int = 2, pad_value: int = 128) -> np.ndarray:
    """Images in [-1, 1] tiled row by row into one uint8 picture, each pixel repeated `scale` times."""
    pixels = to_uint8(images)
    if scale > 1:
        pixels = pixels.repeat(scale, axis=1).repeat(scale, axis=2)
    n, h, w = pixels.shape
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad), pad_value, np.uint8)
    for i, image in enumerate(pixels):
        r, c = divmod(i, columns)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = image
    return grid


def png_bytes(grid: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(grid).save(buffer, format="PNG")
    return buffer.getvalue()


def gif_bytes(grids: Sequence[np.ndarray], captions: Sequence[str] | None = None, *, frame_ms: int = 500) -> bytes:
    """An animated GIF (looping) of equally sized grids, each with an optional caption strip above."""
    from PIL import Image, ImageDraw

    frames = []
    for i, grid in enumerate(grids):
        frame = Image.fromarray(grid)
        if captions is not None:
            canvas = Image.new("L", (frame.width, frame.height + 14), 255)
            canvas.paste(frame, (0, 14))
            ImageDraw.Draw(canvas).text((3, 1), captions[i], fill=0)
            frame = canvas
        frames.append(frame)
    if not frames:
        raise ValueError("no frames for the GIF")
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
    return buffer.getvalue()


def grid_figure(images: np.ndarray, *, title: str, columns: int = 8, labels: Sequence[str] | None = None):
    """A matplotlib figure of an image grid (one picture); `labels` caption each image in its corner."""
    n = len(images)
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    pad = 1
    height, width = np.asarray(images).shape[1:3]
    fig, ax = plt.subplots(figsize=(columns * 0.95, rows * 0.95 + 0.4))
    ax.imshow(image_grid(images, columns=columns, pad=pad), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    for i, label in enumerate(labels or []):
        r, c = divmod(i, columns)
        ax.text(pad + c * (width + pad) - 0.3, pad + r * (height + pad) - 0.3, label, color="yellow", fontsize=7, ha="left", va="top")
    ax.axis("off")
    ax.set_title(title)
    fig.set_layout_engine("tight")
    return fig


def frames_figure(frames: Mapping[int, np.ndarray], *, columns: int = 8, max_panels: int = 6, title: str = "Fixed-latent samples over training"):
    """Up to `max_panels` sample grids, spread evenly over `frames` (epoch -> images), side by side."""
    epochs = sorted(frames)
    if len(epochs) > max_panels:
        epochs = [epochs[int(round(i))] for i in np.linspace(0, len(epochs) - 1, max_panels)]
    fig, axes = plt.subplots(1, len(epochs), figsize=(2.6 * len(epochs), 2.9), squeeze=False)
    for ax, epoch in zip(axes[0], epochs):
        ax.imshow(image_grid(frames[epoch], columns=columns), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(f"epoch {epoch}")
        ax.axis("off")
    fig.suptitle(title)
    fig.set_layout_engine("tight")
    return fig
