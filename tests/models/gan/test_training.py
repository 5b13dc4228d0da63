"""GAN training: the D and G steps, a toy distribution the generator moves toward, the cached
evaluation classifier, and a tiny fit + evaluation in process."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from helpers import composed, data_config
from mktlab import session
from mktlab.data.images import ImageData, load_images
from mktlab.evaluation.images import ImageScorer
from mktlab.models.gan import training as gan
from mktlab.models.gan.module import Discriminator, Generator
from mktlab.models.gan.training import GANFitResult, GANState, d_loss, generate, make_gan_steps
from mktlab.train.optim import build_optimizer
from mktlab.train.state import abstract_graphdef, jit_init, merge_module
from mktlab.train.steps import compile_epoch

LATENT = 8


def tiny_gan(size: int = 8, lr: float = 2e-3, **step_kw):
    tx = build_optimizer(dataclasses.replace(composed("model=gan").optim.generator, lr=lr, b1=0.5))
    g_factory = lambda rngs: Generator(LATENT, size, features=16, rngs=rngs)  # noqa: E731
    d_factory = lambda rngs: Discriminator(size, features=16, rngs=rngs)  # noqa: E731
    g_graphdef, d_graphdef = abstract_graphdef(g_factory), abstract_graphdef(d_factory)
    state = GANState(g=jit_init(g_factory, tx)(jax.random.key(0)), d=jit_init(d_factory, tx)(jax.random.key(1)))
    steps = make_gan_steps(g_graphdef, d_graphdef, tx, tx, latent_dim=LATENT, **step_kw)
    return g_graphdef, d_graphdef, state, steps


def test_generator_moves_toward_a_toy_distribution() -> None:
    """Real images are one pattern (left half light, right half dark) plus noise; the distance
    between the mean generated image and the pattern falls within a few dozen GAN steps."""
    rng = np.random.default_rng(0)
    pattern = np.where(np.arange(8)[None, :] < 4, 0.8, -0.8) * np.ones((8, 1))
    images = (pattern[None, :, :, None] + 0.05 * rng.normal(size=(256, 8, 8, 1))).astype(np.float32)
    g_graphdef, _, state, steps = tiny_gan(batch_size=32)
    epoch = compile_epoch(steps.train_step, 32)

    def distance(state: GANState) -> float:
        generator = merge_module(g_graphdef, state.g.params, state.g.rest)
        samples = generate(generator, 256, key=jax.random.key(5))
        return float(np.sqrt(np.mean((samples.mean(0)[..., 0] - pattern) ** 2)))

    before = distance(state)
    for e in range(6):  # 6 epochs of 8 steps
        state, metrics = epoch(state, {"images": jnp.asarray(images)}, jax.random.key(e))
    after = distance(state)
    assert int(state.g.step) == int(state.d.step) == 48
    # the epoch's means, and each loss at its first step (the loop's divergence check strips those)
    assert set(metrics) == {"d_loss", "g_loss", "d_real_accuracy", "d_fake_accuracy", "start_d_loss", "start_g_loss"}
    assert after < 0.6 * before, (before, after)


def test_d_and_g_steps_are_separately_jitted_updates() -> None:
    _, _, state, steps = tiny_gan(batch_size=16)
    real = jnp.ones((16, 8, 8, 1)) * 0.5
    fake = -jnp.ones((16, 8, 8, 1)) * 0.5
    d_step = jax.jit(lambda s, b, k: steps.d_step(s, b, key=k))
    d_state, losses = state.d, []
    for i in range(5):
        d_state, metrics = d_step(d_state, {"real": real, "fake": fake}, jax.random.key(i))
        losses.append(float(metrics["loss"]))
    assert losses[-1] < losses[0] and float(metrics["real_accuracy"]) == float(metrics["fake_accuracy"]) == 1.0
    g_step = jax.jit(lambda s, b, k: steps.g_step(s, b, key=k))
    z = jax.random.normal(jax.random.key(3), (16, LATENT))
    g_state, g_losses = state.g, []
    for i in range(5):  # against the trained, frozen discriminator
        g_state, metrics = g_step(g_state, {"z": z, "d_params": d_state.params, "d_rest": d_state.rest}, jax.random.key(i))
        g_losses.append(float(metrics["loss"]))
    assert g_losses[-1] < g_losses[0]


def test_label_smoothing_targets_real_images_at_one_minus_epsilon() -> None:
    d = Discriminator(8, features=4, rngs=nnx.Rngs(0))
    batch = {"real": jnp.ones((4, 8, 8, 1)), "fake": -jnp.ones((4, 8, 8, 1))}
    loss, logits = nnx.jit(lambda d, b: (d_loss(d, b, key=jax.random.key(0), label_smoothing=0.1)[0], (d(b["real"]), d(b["fake"]))))(d, batch)
    real, fake = np.asarray(logits[0], np.float64), np.asarray(logits[1], np.float64)
    bce = lambda x, t: np.mean(np.logaddexp(0, x) - t * x)  # noqa: E731  (binary cross-entropy on logits)
    np.testing.assert_allclose(loss, bce(real, 0.9) + bce(fake, 0.0), rtol=1e-5)


@pytest.fixture(scope="module")
def small_digits() -> ImageData:
    return load_images(data_config("digits", subsample=600), seed=0, cache_dir="unused")


def test_tiny_fit_evaluation_and_cached_classifier(small_digits, cfg_for, tmp_path, monkeypatch) -> None:
    from mktlab.models.gan.evaluation import evaluate, reading

    cfg = cfg_for(["model=gan", "trainer.epochs=2", "model.sample_every=1", "trainer.progress=false",
                   "model.g_features=8", "model.d_features=8", "model.eval.classifier_epochs=2", "model.eval.samples=200",
                   "model.d_steps=2", f"paths.cache={tmp_path}"])
    result = session.fit(cfg, small_digits)
    assert isinstance(result, GANFitResult) and result.monitor == "val_fid"
    assert [sorted(k for k in row if k.startswith("val_")) for row in result.history] == [
        ["val_class_coverage", "val_class_share_max", "val_class_share_min", "val_fid", "val_inception_score"]] * 2
    assert int(result.state.d.step) == 2 * int(result.state.g.step) > 0  # d_steps discriminator updates per generator update
    assert sorted(result.samples) == [0, 1, 2] and result.samples[0].shape == (64, 8, 8, 1)
    assert result.best_epoch in (1, 2) and result.val_reference["val_fid"] < result.best_score
    report = evaluate(cfg, result, small_digits)
    m = report.metrics
    for key in ("test_fid", "reference_fid", "test_inception_score", "reference_inception_score",
                "test_class_coverage", "reference_class_coverage", "reference_val_fid", "classifier_val_accuracy"):
        assert np.isfinite(m[key]), key
    assert m["reference_fid"] < m["test_fid"] and 1 <= m["test_inception_score"] <= 10
    assert {"samples/epoch_000.png", "samples/epoch_002.png", "samples/final.png", "samples/training.gif",
            "classifier/params.npz", "classifier/info.json"} <= set(report.files)
    assert "classifier FID" in reading(cfg, report, small_digits)
    report.close_figures()

    # The evaluation classifier was trained once into the cache; the next run loads it.
    folder = result.classifier_dir
    assert folder.parent == tmp_path / "gan_classifier" and small_digits.fingerprint() in (folder / "info.json").read_text()

    def no_training(*args, **kwargs):
        raise AssertionError("the cached classifier should have been loaded")

    monkeypatch.setattr(gan, "train_classifier", no_training)
    loaded, same_folder = gan.load_or_train_classifier(small_digits, cache_dir=tmp_path, epochs=2)
    assert same_folder == folder
    np.testing.assert_allclose(ImageScorer(loaded)(small_digits.val.images)[1], result.scorer(small_digits.val.images)[1], atol=1e-5)
    assert gan.classifier_cache_dir(small_digits, tmp_path, epochs=3) != folder  # other settings: another classifier
