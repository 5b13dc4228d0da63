"""GAN training: losses, the D and G steps, the scanned epoch, the evaluation classifier,
`fit`, and sampling from a trained or saved generator.

One training step is `d_steps` discriminator updates (each on its own real minibatch and
a fresh generated one) followed by one generator update (and, with `model.g_ema_decay`,
an update of the generator's weight average, the generator that is evaluated, rendered
and saved); an epoch shows the discriminator every training image once, as one
`jax.lax.scan`.

The losses: hinge (`model.loss=hinge`) or DCGAN's non-saturating cross-entropy (`ns`),
and an optional R1 penalty on the discriminator (`model.r1_gamma`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct

from mktlab.config.schema import OptimConfig, TrainerConfig
from mktlab.data.images import ImageData, ImageSplit
from mktlab.evaluation.images import ImageScorer, gaussian_stats, image_metrics
from mktlab.models.gan.config import LOSSES
from mktlab.models.gan.module import Discriminator, Generator, ImageClassifier
from mktlab.tracking.checkpoints import load_module_from_run
from mktlab.train.checkpoint import load_module, save_module
from mktlab.train.ema import ema_decay, ema_init, ema_update
from mktlab.train.keys import run_keys
from mktlab.train.loop import FitResult, TrainTask, fit_loop
from mktlab.train.optim import build_optimizer
from mktlab.train.predict import predict_in_chunks
from mktlab.train.state import TrainState, abstract_graphdef, jit_init, merge_module
from mktlab.train.steps import Step, compile_epoch, make_train_step, num_batches

# Sub-keys of the run's model key: the parameter init uses the key itself.
FIXED_LATENT_STREAM, EVAL_LATENT_STREAM = 1, 2


@struct.dataclass
class GANState:
    """Both players' training states, one pytree.

    `g_ema` is the exponential moving average of the generator's variables
    (`{"params", "rest"}`, see `model.g_ema_decay`), the generator that is evaluated,
    rendered and saved; None when averaging is off.
    """

    g: TrainState
    d: TrainState
    g_ema: Any = None

    def generator_variables(self) -> tuple[Any, Any]:
        """`(params, rest)` of the generator that is evaluated: the average when there is one."""
        if self.g_ema is None:
            return self.g.params, self.g.rest
        return self.g_ema["params"], self.g_ema["rest"]


# --------------------------------------------------------------------------- losses and steps


def _check_loss(loss: str) -> None:
    if loss not in LOSSES:
        raise ValueError(f"model.loss={loss!r}: expected one of {', '.join(LOSSES)}")


def d_loss(d: Discriminator, batch: dict[str, jax.Array], *, key: jax.Array, label_smoothing: float = 0.0,
           loss: str = "ns", r1_gamma: float = 0.0) -> tuple[jax.Array, dict]:
    """The discriminator's loss on real and generated images.

    `loss="ns"`: binary cross-entropy on real (target 1 - label_smoothing) and generated
    (target 0) images, the DCGAN loss. `loss="hinge"`: `mean(relu(1 - D(real))) +
    mean(relu(1 + D(fake)))` (Lim & Ye 2017; Miyato et al. 2018), which stops pushing an
    image once it is classified with a margin. `r1_gamma > 0` adds the R1 penalty
    `r1_gamma / 2 * E ||grad_x D(x_real)||^2` (Mescheder et al., 2018), which keeps D flat
    on the real data.

    Both halves go through D as one batch (D has no batch statistics, so this changes
    nothing but the number of kernel launches).
    """
    del key
    _check_loss(loss)
    logits = d(jnp.concatenate([batch["real"], batch["fake"]]))
    real, fake = logits[: batch["real"].shape[0]], logits[batch["real"].shape[0] :]
    if loss == "ns":
        value = jnp.mean(optax.sigmoid_binary_cross_entropy(real, jnp.full_like(real, 1.0 - label_smoothing)))
        value = value + jnp.mean(optax.sigmoid_binary_cross_entropy(fake, jnp.zeros_like(fake)))
    else:
        value = jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))
    metrics = {"real_accuracy": jnp.mean(real > 0), "fake_accuracy": jnp.mean(fake < 0)}
    if r1_gamma > 0:
        penalty = r1_penalty(d, batch["real"])
        value = value + 0.5 * r1_gamma * penalty
        metrics["r1"] = penalty
    return value, metrics


def r1_penalty(d: Discriminator, real: jax.Array) -> jax.Array:
    """`E ||grad_x D(x)||^2` over the real images `x`.

    D's gradient is taken on a copy of it, so a spectral-norm power iteration inside the
    inner gradient does not touch the outer step's variables.
    """
    graphdef, params, rest = nnx.split(d, nnx.Param, ...)
    grads = jax.grad(lambda x: jnp.sum(merge_module(graphdef, params, rest)(x)))(real)
    return jnp.mean(jnp.sum(grads.reshape(grads.shape[0], -1) ** 2, axis=1))


def g_loss(g: Generator, batch: dict[str, Any], *, key: jax.Array, d_graphdef: nnx.GraphDef,
           loss: str = "ns") -> tuple[jax.Array, dict]:
    """The generator's loss on `D(G(z))`.

    `loss="ns"`: the non-saturating -log D(G(z)), strong gradients while D still wins.
    `loss="hinge"`: -D(G(z)), the generator's side of the hinge loss.

    The discriminator's variables arrive in the batch (`d_params`, `d_rest`) so the
    gradient is taken with respect to the generator only.
    """
    _check_loss(loss)
    d = merge_module(d_graphdef, batch["d_params"], batch["d_rest"])
    logits = d(g(batch["z"], key=key))
    if loss == "ns":
        return jnp.mean(jax.nn.softplus(-logits)), {}
    return -jnp.mean(logits), {}


@dataclass(frozen=True)
class GANSteps:
    """The pure steps: `d_step(d_state, {"real", "fake"})`, `g_step(g_state, {"z", "d_params", "d_rest"})`,
    and `train_step(GANState, {"images"})` = `d_steps` D updates then one G update."""

    d_step: Step
    g_step: Step
    train_step: Step


def make_gan_steps(
    g_graphdef: nnx.GraphDef,
    d_graphdef: nnx.GraphDef,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
    *,
    latent_dim: int,
    batch_size: int,
    d_steps: int = 1,
    label_smoothing: float = 0.0,
    loss: str = "ns",
    r1_gamma: float = 0.0,
    g_ema_decay: float | None = None,
) -> GANSteps:
    """Build the D, G and combined steps (each a pure function, jit it or scan it).

    The keyword defaults are the plain DCGAN step (what a run's config sets comes from
    `conf/model/gan.yaml`). With `g_ema_decay`, the combined step also moves
    `state.g_ema` (which must then be set, see `init_ema`) toward the updated
    generator's variables, with the decay ramped by `mktlab.train.ema.ema_decay`.
    """
    _check_loss(loss)
    d_step = make_train_step(
        d_graphdef, lambda m, b, *, key: d_loss(m, b, key=key, label_smoothing=label_smoothing, loss=loss, r1_gamma=r1_gamma), d_tx
    )
    g_step = make_train_step(g_graphdef, lambda m, b, *, key: g_loss(m, b, key=key, d_graphdef=d_graphdef, loss=loss), g_tx)

    def train_step(state: GANState, batch: dict[str, jax.Array], *, key: jax.Array) -> tuple[GANState, dict]:
        reals = batch["images"].reshape(d_steps, batch_size, *batch["images"].shape[1:])

        def d_update(d_state: TrainState, inputs: tuple[jax.Array, jax.Array]):
            index, real = inputs
            step_key = jax.random.fold_in(key, index)
            # Generated images for D come from G in training mode (batch statistics), as in G's own step.
            generator = merge_module(g_graphdef, state.g.params, state.g.rest)
            fake = jax.lax.stop_gradient(generator(jax.random.normal(step_key, (batch_size, latent_dim)), key=step_key))
            return d_step(d_state, {"real": real, "fake": fake}, key=step_key)

        d_state, d_metrics = jax.lax.scan(d_update, state.d, (jnp.arange(d_steps), reals))
        g_key = jax.random.fold_in(key, d_steps)
        z = jax.random.normal(g_key, (batch_size, latent_dim))
        g_state, g_metrics = g_step(state.g, {"z": z, "d_params": d_state.params, "d_rest": d_state.rest}, key=g_key)
        g_ema = state.g_ema
        if g_ema_decay is not None:
            g_ema = ema_update(g_ema, {"params": g_state.params, "rest": g_state.rest}, ema_decay(g_ema_decay, state.g.step))
        metrics = {
            "d_loss": jnp.mean(d_metrics["loss"]),
            "g_loss": g_metrics["loss"],
            "d_real_accuracy": jnp.mean(d_metrics["real_accuracy"]),
            "d_fake_accuracy": jnp.mean(d_metrics["fake_accuracy"]),
        }
        if "r1" in d_metrics:
            metrics["d_r1"] = jnp.mean(d_metrics["r1"])
        return GANState(g=g_state, d=d_state, g_ema=g_ema), metrics

    return GANSteps(d_step=d_step, g_step=g_step, train_step=train_step)


def init_ema(g: TrainState) -> dict[str, Any]:
    """The generator's average at the start: a copy of its variables."""
    return ema_init({"params": g.params, "rest": g.rest})


# --------------------------------------------------------------------------- modules and sampling


def generator_kwargs(cfg: Any, data: ImageData) -> dict[str, Any]:
    """Constructor arguments of the generator (saved with its parameters)."""
    return {"latent_dim": cfg.model.latent_dim, "image_size": data.image_size, "channels": data.image_shape[-1],
            "features": cfg.model.g_features}


def discriminator_kwargs(cfg: Any, data: ImageData) -> dict[str, Any]:
    return {"image_size": data.image_size, "channels": data.image_shape[-1], "features": cfg.model.d_features,
            "spectral_norm": cfg.model.d_spectral_norm}


@functools.lru_cache(maxsize=16)
def make_sampler(g_graphdef: nnx.GraphDef):
    """`sample(params, rest, z) -> images`, jitted, the generator in inference mode (batch norm on
    its running averages).

    Cached per graph, so sampling the same generator again does not compile again.
    """

    @jax.jit
    def sample(params: Any, rest: Any, z: jax.Array) -> jax.Array:
        return merge_module(g_graphdef, params, rest)(z)

    return sample


def generate(generator: Generator, n: int, *, key: jax.Array, batch_size: int = 4096) -> np.ndarray:
    """`n` images in [-1, 1], shape (n, size, size, channels), from latents drawn with `key`."""
    graphdef, params, rest = nnx.split(generator, nnx.Param, ...)
    sample = make_sampler(graphdef)
    z = jax.random.normal(key, (n, generator.latent_dim))
    return predict_in_chunks(lambda chunk: sample(params, rest, chunk), z, batch_size, padding="chunk")


def load_generator(directory: str | Path) -> Generator:
    """A generator saved under `directory` (the run's `model/` artifact)."""
    return load_module(directory)  # type: ignore[return-value]


def generate_from_run(run_id: str, n: int, *, tracking_uri: str, seed: int = 0) -> np.ndarray:
    """`n` new images from the generator a run saved (artifact `model/`), latents seeded by `seed`."""
    generator = load_module_from_run(run_id, tracking_uri=tracking_uri, artifact_path="model")
    return generate(generator, n, key=jax.random.key(seed))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- evaluation classifier

CLASSIFIER_VERSION = 1  # bump when ImageClassifier or its training changes: cached classifiers are retrained
CLASSIFIER_BATCH = 128
CLASSIFIER_OPTIMIZER = OptimConfig(name="adam", lr=1e-3, weight_decay=0.0, b1=0.9, b2=0.999, eps=1e-8, momentum=0.0,
                                   nesterov=False, grad_clip=None, schedule="constant", warmup_epochs=0)


def classifier_loss(model: ImageClassifier, batch: dict[str, jax.Array], *, key: jax.Array) -> tuple[jax.Array, dict]:
    del key
    logits = model(batch["images"])
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"]))
    return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["labels"])}


def train_classifier(train: ImageSplit, val: ImageSplit, num_classes: int, *, epochs: int, seed: int = 0,
                     progress: bool = False) -> tuple[ImageClassifier, dict[str, float]]:
    """Train the evaluation classifier with the shared loop; keeps the epoch of best validation accuracy."""
    image_size, channels = train.images.shape[1], train.images.shape[-1]
    kwargs = {"image_size": int(image_size), "num_classes": num_classes, "channels": int(channels)}
    tx = build_optimizer(CLASSIFIER_OPTIMIZER)
    factory = lambda rngs: ImageClassifier(**kwargs, rngs=rngs)  # noqa: E731
    graphdef = abstract_graphdef(factory)
    epoch = compile_epoch(make_train_step(graphdef, classifier_loss, tx), CLASSIFIER_BATCH)
    arrays = {"images": jnp.asarray(train.images), "labels": jnp.asarray(train.labels)}
    predict = jax.jit(lambda params, rest, images: jnp.argmax(merge_module(graphdef, params, rest)(images), -1))

    def validate(state: TrainState) -> dict[str, float]:
        if len(val) == 0:
            return {}
        predicted = predict_in_chunks(lambda chunk: predict(state.params, state.rest, chunk), val.images, 4096, padding="chunk")
        return {"val_accuracy": float(np.mean(predicted == val.labels))}

    task = TrainTask(
        init=jit_init(factory, tx),
        train_epoch=lambda state, key: epoch(state, arrays, key),
        validate=validate,
        monitor="val_accuracy",
        mode="max",
        graphdef=graphdef,
    )
    model_key, train_key = jax.random.split(jax.random.key(seed))
    trainer = TrainerConfig(epochs=epochs, batch_size=CLASSIFIER_BATCH, patience=None, min_delta=0.0, divergence_factor=None,
                            eval_batch_size=4096, progress=progress, seeds=None, num_seeds=1, seed_batch=None, data_parallel=False)
    result = fit_loop(task, trainer, model_key=model_key, train_key=train_key, desc="evaluation classifier")
    info = {"val_accuracy": result.best_score, "best_epoch": result.best_epoch, "epochs": epochs, **kwargs}
    return result.model, info  # type: ignore[return-value]


def classifier_cache_dir(data: ImageData, cache_dir: str | Path, epochs: int) -> Path:
    key = hashlib.sha256(f"{data.fingerprint()}|v{CLASSIFIER_VERSION}|epochs={epochs}".encode()).hexdigest()[:16]
    return Path(cache_dir) / "gan_classifier" / f"{data.source}-{key}"


def load_or_train_classifier(data: ImageData, *, cache_dir: str | Path, epochs: int,
                             progress: bool = False) -> tuple[ImageClassifier, Path]:
    """The evaluation classifier of `data` (every class of its full training split).

    Trained once per data set and kept under `<cache_dir>/gan_classifier/`, keyed by a
    digest of the training images and the classifier's settings; later runs load it.
    Returns the classifier and its folder (`params.npz`, `module.json`, `info.json`).
    """
    target = classifier_cache_dir(data, cache_dir, epochs)
    if (target / "info.json").is_file():
        return load_module(target), target  # type: ignore[return-value]
    model, info = train_classifier(data.full_train, data.full_val, data.num_classes, epochs=epochs, progress=progress)
    info = {**info, "source": data.source, "fingerprint": data.fingerprint(), "version": CLASSIFIER_VERSION}
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed into place: a concurrent run never sees half a classifier.
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        kwargs = {k: info[k] for k in ("image_size", "num_classes", "channels")}
        save_module(model, tmp, kwargs=kwargs)
        (tmp / "info.json").write_text(json.dumps(info, indent=2))
        try:
            os.replace(tmp, target)
        except OSError:  # another run cached it first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return model, target


# --------------------------------------------------------------------------- fit


@dataclass
class GANFitResult(FitResult):
    """`FitResult` plus what the GAN's evaluation needs.

    Attributes:
        samples: epoch -> the fixed latent batch rendered at that epoch (epoch 0: before training).
        generator_kwargs: the generator's constructor arguments.
        g_graphdef: the generator's graph.
        scorer: features and class probabilities under the evaluation classifier.
        classifier_dir: the cached classifier's folder.
        val_reference: the real-vs-real reference of the per-epoch validation metrics.
    """

    samples: dict[int, np.ndarray] = field(default_factory=dict)
    generator_kwargs: dict[str, Any] = field(default_factory=dict)
    g_graphdef: Any = None
    scorer: ImageScorer | None = None
    classifier_dir: Path | None = None
    val_reference: dict[str, float] = field(default_factory=dict)

    @property
    def model(self) -> Generator:
        """The kept epoch's generator (its weight average when `model.g_ema_decay` is set; called
        without a key, it samples in inference mode)."""
        return merge_module(self.g_graphdef, *self.state.generator_variables())  # type: ignore[return-value]


def gan_batch_size(trainer: TrainerConfig, num_images: int, d_steps: int) -> int:
    """Real images per D step: `trainer.batch_size`, fewer when the data cannot fill `d_steps` batches."""
    if d_steps < 1:
        raise ValueError(f"model.d_steps={d_steps}: must be at least 1")
    size = min(trainer.batch_size, num_images // d_steps)
    if size < 1:
        raise ValueError(f"{num_images} training images cannot fill {d_steps} discriminator batches")
    return size


def evaluation_count(cfg: Any, data: ImageData) -> int:
    """Generated images scored per evaluation: `model.eval.samples`, at most the training images."""
    return min(cfg.model.eval.samples, len(data.train))


@dataclass(frozen=True)
class GANTraining:
    """The compiled pieces of one GAN configuration on one data set (what `fit` runs and the benchmark times).

    Attributes:
        init: `init(key) -> GANState`, both players' parameters and optimizer states.
        epoch: `epoch(state, key) -> (state, metrics)` over the training images, one compiled `lax.scan`.
        sample: `sample(params, rest, z) -> images` of the generator in evaluation mode.
        batch_size: real images per discriminator step.
        steps_per_epoch: generator updates per epoch.
    """

    init: Callable[[jax.Array], GANState]
    epoch: Callable[[GANState, jax.Array], tuple[GANState, dict]]
    sample: Callable[..., jax.Array]
    g_graphdef: nnx.GraphDef
    d_graphdef: nnx.GraphDef
    g_kwargs: dict[str, Any]
    d_kwargs: dict[str, Any]
    batch_size: int
    steps_per_epoch: int


def build_training(cfg: Any, data: ImageData) -> GANTraining:
    """Networks, optimizers and the scanned epoch of `cfg` on `data.train`."""
    m, trainer = cfg.model, cfg.trainer
    batch_size = gan_batch_size(trainer, len(data.train), m.d_steps)
    steps_per_epoch = num_batches(len(data.train), batch_size * m.d_steps)
    g_tx = build_optimizer(cfg.optim.generator, total_steps=steps_per_epoch * trainer.epochs, steps_per_epoch=steps_per_epoch)
    d_tx = build_optimizer(cfg.optim.discriminator, total_steps=steps_per_epoch * m.d_steps * trainer.epochs,
                           steps_per_epoch=steps_per_epoch * m.d_steps)
    g_kwargs, d_kwargs = generator_kwargs(cfg, data), discriminator_kwargs(cfg, data)
    g_factory = lambda rngs: Generator(**g_kwargs, rngs=rngs)  # noqa: E731
    d_factory = lambda rngs: Discriminator(**d_kwargs, rngs=rngs)  # noqa: E731
    g_graphdef, d_graphdef = abstract_graphdef(g_factory), abstract_graphdef(d_factory)
    g_init, d_init = jit_init(g_factory, g_tx), jit_init(d_factory, d_tx)
    steps = make_gan_steps(g_graphdef, d_graphdef, g_tx, d_tx, latent_dim=m.latent_dim, batch_size=batch_size,
                           d_steps=m.d_steps, label_smoothing=m.label_smoothing, loss=m.loss, r1_gamma=m.r1_gamma,
                           g_ema_decay=m.g_ema_decay)
    epoch_fn = compile_epoch(steps.train_step, batch_size * m.d_steps)
    train_arrays = {"images": jnp.asarray(data.train.images)}

    def init(key: jax.Array) -> GANState:
        g_key, d_key = jax.random.split(key)
        g_state = g_init(g_key)
        return GANState(g=g_state, d=d_init(d_key), g_ema=None if m.g_ema_decay is None else init_ema(g_state))

    return GANTraining(
        init=init, epoch=lambda state, key: epoch_fn(state, train_arrays, key), sample=make_sampler(g_graphdef),
        g_graphdef=g_graphdef, d_graphdef=d_graphdef, g_kwargs=g_kwargs, d_kwargs=d_kwargs,
        batch_size=batch_size, steps_per_epoch=steps_per_epoch,
    )


@dataclass(frozen=True)
class GANSetup:
    """What every seed of one configuration shares: the compiled training, the evaluation
    classifier (as `scorer`) and the validation images' statistics.

    Attributes:
        training: the compiled networks, optimizers and epoch (`build_training`).
        scorer: features and class probabilities under the evaluation classifier.
        classifier_dir: the cached classifier's folder.
        val_stats: Gaussian statistics of the validation images' features (None: too few images to score).
        val_reference: the real-vs-real reference of the per-epoch validation metrics.
    """

    training: GANTraining
    scorer: ImageScorer
    classifier_dir: Path
    val_stats: Any
    val_reference: dict[str, float]


def build_setup(cfg: Any, data: ImageData) -> GANSetup:
    """The evaluation classifier (trained once per data set, then cached) and the compiled training of `cfg`."""
    classifier, classifier_dir = load_or_train_classifier(
        data, cache_dir=cfg.paths.cache, epochs=cfg.model.eval.classifier_epochs, progress=cfg.trainer.progress
    )
    scorer = ImageScorer(classifier, batch_size=cfg.trainer.eval_batch_size)
    val_stats, val_reference = None, {}
    if len(data.val) >= 2:
        val_features, _ = scorer(data.val.images)
        val_stats = gaussian_stats(val_features)
        ref_features, ref_probs = scorer(data.train.images[: evaluation_count(cfg, data)])
        metrics = image_metrics(ref_features, ref_probs, val_stats, min_share=cfg.model.eval.coverage_min_share)
        val_reference = {f"val_{k}": v for k, v in metrics.items()}
    return GANSetup(training=build_training(cfg, data), scorer=scorer, classifier_dir=classifier_dir,
                    val_stats=val_stats, val_reference=val_reference)


def seed_task(cfg: Any, data: ImageData, setup: GANSetup, seed: int) -> TrainTask:
    """One seed's task: its fixed and evaluation latents (from the seed's model key), its
    rendered frames, validation and hook; its result is a `GANFitResult`.

    Every seed's task shares `setup.training.epoch`, so seeds train together with one
    compiled epoch (`fit_loop_vectorized`). Every `model.sample_every` epochs (and at the
    last) the evaluated generator (the weight average with `model.g_ema_decay`) renders the
    fixed latent batch, and `model.eval.samples` of its images are scored against the
    validation split.
    """
    m, trainer, training, scorer = cfg.model, cfg.trainer, setup.training, setup.scorer
    model_key = run_keys(seed)["model_key"]
    sample = training.sample
    fixed_z = jax.random.normal(jax.random.fold_in(model_key, FIXED_LATENT_STREAM), (m.num_fixed_samples, m.latent_dim))
    eval_z = jax.random.normal(jax.random.fold_in(model_key, EVAL_LATENT_STREAM), (evaluation_count(cfg, data), m.latent_dim))
    frames: dict[int, np.ndarray] = {}

    def due(epoch: int) -> bool:
        return epoch % m.sample_every == 0 or epoch == trainer.epochs

    def render(state: GANState) -> np.ndarray:
        return np.asarray(sample(*state.generator_variables(), fixed_z))

    def init(key: jax.Array) -> GANState:
        state = training.init(key)
        frames[0] = render(state)
        return state

    def validate(state: GANState) -> dict[str, float]:
        epoch = int(state.g.step) // training.steps_per_epoch
        if setup.val_stats is None or not due(epoch):
            return {}  # the loop then neither selects nor counts patience on this epoch
        params, rest = state.generator_variables()
        images = predict_in_chunks(lambda z: sample(params, rest, z), eval_z, trainer.eval_batch_size, padding="chunk")
        features, probs = scorer(images)
        return {f"val_{k}": v for k, v in image_metrics(features, probs, setup.val_stats, min_share=m.eval.coverage_min_share).items()}

    def on_epoch_end(epoch: int, state: GANState, row: dict[str, float]) -> None:
        if due(epoch):
            frames[epoch] = render(state)

    def finish(result: FitResult) -> GANFitResult:
        return GANFitResult(
            **{f: getattr(result, f) for f in result.__dataclass_fields__},
            samples=frames, generator_kwargs=training.g_kwargs, g_graphdef=training.g_graphdef, scorer=scorer,
            classifier_dir=setup.classifier_dir, val_reference=setup.val_reference,
        )

    return TrainTask(init=init, train_epoch=training.epoch, validate=validate, monitor="val_fid", mode="min",
                     on_epoch_end=on_epoch_end, finish=finish)


def build_tasks(cfg: Any, data: ImageData, seeds: Sequence[int]) -> list[TrainTask]:
    """One `seed_task` per seed over one shared `build_setup` (one classifier, one compiled epoch)."""
    setup = build_setup(cfg, data)
    return [seed_task(cfg, data, setup, seed) for seed in seeds]
