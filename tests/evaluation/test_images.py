"""Image metrics: classifier FID, Inception score bounds, class coverage, grids and the GIF.

(Chunked scoring, once `map_in_chunks` here, is `mktlab.train.predict`: tests/train/test_predict.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from flax import nnx

from helpers import data_config
from mktlab.data.images import load_images
from mktlab.evaluation.images import (
    ImageScorer,
    class_coverage,
    fid,
    frechet_distance,
    gif_bytes,
    image_grid,
    inception_score,
    png_bytes,
)
from mktlab.models.gan.module import ImageClassifier


@pytest.fixture(scope="module")
def digits():
    return load_images(data_config("digits"), seed=0, cache_dir="unused")


@pytest.fixture(scope="module")
def scorer():
    return ImageScorer(ImageClassifier(8, 10, rngs=nnx.Rngs(0)), batch_size=256)


def test_classifier_fid_is_zero_for_identical_sets_and_grows_with_noise(digits, scorer) -> None:
    images = digits.train.images[:500]
    features, probs = scorer(images)
    assert features.shape == (500, 64) and probs.shape == (500, 10)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert fid(features, features) == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(0)
    distances = []
    for sigma in (0.05, 0.2, 0.5, 1.0):
        noisy = np.clip(images + sigma * rng.normal(size=images.shape), -1, 1).astype(np.float32)
        distances.append(fid(features, scorer(noisy)[0]))
    assert distances[0] > 0 and all(a < b for a, b in zip(distances, distances[1:])), distances


def test_frechet_distance_of_known_gaussians() -> None:
    # Between N(m1, s1^2 I) and N(m2, s2^2 I) in d dimensions: |m1 - m2|^2 + d (s1 - s2)^2.
    d = 3
    stats_a = (np.zeros(d), 4.0 * np.eye(d))
    stats_b = (np.ones(d), 1.0 * np.eye(d))
    assert frechet_distance(stats_a, stats_b) == pytest.approx(d * 1.0 + d * (2 - 1) ** 2)
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4000, d)), rng.normal(loc=1.0, size=(4000, d))
    assert fid(a, b) == pytest.approx(3.0, rel=0.1)


def test_inception_score_bounds() -> None:
    k = 10
    confident_uniform = np.eye(k)[np.arange(200) % k]
    assert inception_score(confident_uniform) == pytest.approx(k, rel=1e-6)  # the ceiling
    collapsed = np.tile(np.eye(k)[3], (200, 1))
    assert inception_score(collapsed) == pytest.approx(1.0)  # one class only: the floor
    uncertain = np.full((200, k), 1.0 / k)
    assert inception_score(uncertain) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    random_probs = rng.dirichlet(np.ones(k) * 0.3, size=500)
    assert 1.0 <= inception_score(random_probs) <= k


def test_class_coverage_counts_classes_above_the_share() -> None:
    probs = np.eye(4)[[0] * 90 + [1] * 9 + [2] * 1]
    assert class_coverage(probs, min_share=0.01) == 3
    assert class_coverage(probs, min_share=0.05) == 2
    assert class_coverage(np.tile(np.eye(4)[2], (50, 1))) == 1


def test_grid_png_and_gif(digits) -> None:
    grid = image_grid(digits.train.images[:10], columns=4, scale=2, pad=1)
    assert grid.dtype == np.uint8 and grid.shape == (3 * 17 + 1, 4 * 17 + 1)
    assert png_bytes(grid).startswith(b"\x89PNG")
    gif = gif_bytes([grid, grid[::-1]], ["epoch 0", "epoch 5"])
    assert gif.startswith(b"GIF89a")
    from io import BytesIO

    from PIL import Image

    assert Image.open(BytesIO(gif)).n_frames == 2
