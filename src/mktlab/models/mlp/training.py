"""The customer-response MLP: the attributes it reads, weighted binary cross-entropy, balanced sampling,
task and fit."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from mktlab.data.tabular import TabularData, TabularSplit
from mktlab.evaluation.classification import binary_metrics_traced
from mktlab.models.mlp.module import ResponseMLP, prior_shift_for
from mktlab.train.keys import run_keys
from mktlab.train.loop import FitResult, TrainTask, fit_loop, fit_loop_vectorized
from mktlab.train.optim import epoch_optimizer
from mktlab.train.predict import predict_in_chunks
from mktlab.train.state import abstract_graphdef, jit_init, merge_module
from mktlab.train.steps import compile_epoch, make_train_step, scan_epoch, training_mesh

IMBALANCE = ("weight", "sample", "none")


def bce_loss(model: ResponseMLP, batch: dict[str, jax.Array], *, key: jax.Array, pos_weight: float) -> tuple[jax.Array, dict]:
    """Binary cross-entropy with buyers weighted `pos_weight` times, averaged over the batch's weight."""
    logits = model(batch["numeric"], batch["categorical"], key=key)
    labels = batch["labels"]
    losses = optax.sigmoid_binary_cross_entropy(logits, labels)
    weights = 1.0 + (pos_weight - 1.0) * labels
    return jnp.sum(weights * losses) / jnp.sum(weights), {}


def class_weighting(cfg: Any, data: TabularData) -> tuple[float, float]:
    """(buyer weight in the loss, weight the training effectively gave buyers) for `model.imbalance`.

    `weight` multiplies buyers' loss by `model.pos_weight` (non-buyers per buyer when
    unset); `sample` draws each epoch's rows so that both classes are equally likely,
    which weighs buyers by non-buyers per buyer in expectation; `none` does neither.
    """
    if cfg.model.imbalance not in IMBALANCE:
        raise ValueError(f"model.imbalance={cfg.model.imbalance!r}: expected one of {', '.join(IMBALANCE)}")
    balanced = data.pos_weight()
    if cfg.model.imbalance == "weight":
        weight = balanced if cfg.model.pos_weight is None else float(cfg.model.pos_weight)
        if weight <= 0:
            raise ValueError(f"model.pos_weight={cfg.model.pos_weight}: expected a positive weight")
        return weight, weight
    if cfg.model.imbalance == "sample":
        return 1.0, balanced
    return 1.0, 1.0


def matching(patterns: Sequence[str], names: Sequence[str], *, key: str, source: str) -> list[str]:
    """The `names` that `patterns` select, in the order of `names`.

    The entries apply in order: an attribute name or shell-style pattern adds the attributes
    it matches (`P*`: every contribution level), one starting with `!` removes them
    (`["*", "!MOSTYPE"]`: all but the customer subtype). An entry that matches no attribute
    is an error (a typo, or a list written for another table).
    """
    chosen: set[str] = set()
    for entry in patterns:
        pattern = entry[1:] if entry.startswith("!") else entry
        matched = {name for name in names if fnmatch.fnmatchcase(name, pattern)}
        if not matched:
            raise ValueError(f"{key}: {entry!r} matches no attribute of {source}")
        chosen = chosen - matched if entry.startswith("!") else chosen | matched
    return [name for name in names if name in chosen]


def input_columns(cfg: Any, data: TabularData) -> tuple[list[int] | None, list[int] | None]:
    """(numeric, categorical) column indices of the attributes `model.features` selects; (None, None) for all."""
    if cfg.model.features is None:
        return None, None
    chosen = set(matching(cfg.model.features, [*data.numeric_names, *data.categorical_names], key="model.features", source=data.source))
    if not chosen:
        raise ValueError(f"model.features={list(cfg.model.features)} leaves no attribute to read")
    return ([j for j, name in enumerate(data.numeric_names) if name in chosen],
            [j for j, name in enumerate(data.categorical_names) if name in chosen])


def level_encoding(cfg: Any, data: TabularData) -> dict[str, list]:
    """The module's `level_*` arguments for the numeric attributes `model.levels` selects.

    Each such attribute also enters one-hot encoded by its integer code; its levels are
    0 up to its largest code in the training split (a larger code later counts as the largest).
    """
    names = matching(cfg.model.levels, data.numeric_names, key="model.levels", source=data.source) if cfg.model.levels else []
    columns = [data.numeric_names.index(name) for name in names]
    mean, std = data.mean[columns].astype(np.float64), data.std[columns].astype(np.float64)
    largest = np.rint(data.train.numeric[:, columns].max(axis=0, initial=0.0) * std + mean) if columns else np.zeros(0)
    return {"level_columns": columns, "level_mean": [float(v) for v in mean], "level_std": [float(v) for v in std],
            "level_count": [int(max(v, 0)) + 1 for v in largest]}


def module_kwargs(cfg: Any, data: TabularData) -> dict[str, Any]:
    """Constructor arguments of the module (saved with its parameters)."""
    _, effective = class_weighting(cfg, data)
    numeric_columns, categorical_columns = input_columns(cfg, data)
    return {
        "num_numeric": data.num_numeric,
        "cardinalities": list(data.cardinalities),
        "hidden": list(cfg.model.hidden),
        "activation": cfg.model.activation,
        "dropout": cfg.model.dropout,
        "norm": cfg.model.norm,
        "categorical": cfg.model.categorical,
        "embed_dim": cfg.model.embed_dim,
        "prior_shift": prior_shift_for(effective) if cfg.model.correct_prior else 0.0,
        "numeric_columns": numeric_columns,
        "categorical_columns": categorical_columns,
        **level_encoding(cfg, data),
    }


def balanced_rows(labels: jax.Array, key: jax.Array) -> jax.Array:
    """As many row indices as labels, drawn with replacement so each class is equally likely.

    A fair coin picks each draw's class (the other one when a class is empty), then a row of
    that class uniformly. The draws are integers only, so seeds trained together under
    `vmap` draw exactly the rows their separate runs draw (a weighted `jax.random.choice`
    compares uniforms with a float cumulative sum, which differs by an ulp under `vmap`).
    """
    buyers = labels > 0
    by_class = jnp.argsort(buyers, stable=True)  # non-buyers first, then buyers
    positives = jnp.sum(buyers, dtype=jnp.int32)
    negatives = labels.shape[0] - positives
    coin_key, row_key = jax.random.split(key)
    heads = jax.random.bernoulli(coin_key, 0.5, labels.shape)
    buyer_draw = jnp.where(positives == 0, False, jnp.where(negatives == 0, True, heads))
    within = jax.random.randint(row_key, labels.shape, 0, jnp.where(buyer_draw, positives, negatives))
    return by_class[jnp.where(buyer_draw, negatives + within, within)]


def compile_balanced_epoch(step: Any, batch_size: int) -> Any:
    """Like `compile_epoch`, but the epoch's rows are a class-balanced draw with replacement."""

    def epoch(state: Any, arrays: dict[str, jax.Array], key: jax.Array) -> Any:
        draw_key, epoch_key = jax.random.split(key)
        rows = balanced_rows(arrays["labels"], draw_key)
        drawn = jax.tree.map(lambda a: jnp.take(a, rows, axis=0), arrays)
        return scan_epoch(step, state, drawn, key=epoch_key, batch_size=batch_size)

    return jax.jit(epoch)


def predict(model: ResponseMLP, split: TabularSplit, *, batch_size: int = 65536) -> np.ndarray:
    """Calibrated probabilities to buy of the customers of `split`."""
    if len(split) == 0:
        return np.zeros(0, np.float32)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    # the parameters are the program's constants (one compile per call, small for this network): passed as
    # arguments instead, XLA rounds the probabilities differently in the last bits, and recorded metrics would change
    apply = jax.jit(lambda numeric, categorical: merge_module(graphdef, params, rest).probability(numeric, categorical))
    return predict_in_chunks(apply, {"numeric": split.numeric, "categorical": split.categorical}, batch_size)


def build_task(cfg: Any, data: TabularData) -> TrainTask:
    """The loop's view of the MLP on `data`: early stopping on validation ROC AUC."""
    tx = epoch_optimizer(cfg.optim, cfg.trainer, len(data.train))
    kwargs = module_kwargs(cfg, data)
    factory = lambda rngs: ResponseMLP(**kwargs, rngs=rngs)  # noqa: E731
    graphdef = abstract_graphdef(factory)
    pos_weight, _ = class_weighting(cfg, data)
    loss = lambda model, batch, *, key: bce_loss(model, batch, key=key, pos_weight=pos_weight)  # noqa: E731
    step = make_train_step(graphdef, loss, tx, mesh=training_mesh(cfg.trainer, len(data.train)))
    if cfg.model.imbalance == "sample":
        epoch = compile_balanced_epoch(step, cfg.trainer.batch_size)
    else:
        epoch = compile_epoch(step, cfg.trainer.batch_size)
    train_arrays = jax.tree.map(jnp.asarray, data.train.arrays())
    val = data.val
    val_arrays = (jnp.asarray(val.numeric), jnp.asarray(val.categorical), jnp.asarray(val.labels))
    has_val = len(np.unique(val.labels)) == 2  # validation AUC needs buyers and non-buyers

    @jax.jit
    def val_metrics(params, rest, numeric, categorical, labels):
        scores = merge_module(graphdef, params, rest).probability(numeric, categorical)
        return {f"val_{k}": v for k, v in binary_metrics_traced(labels, scores).items()}

    def validate(state) -> dict[str, float]:
        if len(val) == 0:
            return {}
        metrics = jax.device_get(val_metrics(state.params, state.rest, *val_arrays))
        return {k: float(v) for k, v in metrics.items()}

    return TrainTask(
        init=jit_init(factory, tx),
        train_epoch=lambda state, key: epoch(state, train_arrays, key),
        validate=validate,
        monitor="val_roc_auc" if has_val else "train_loss",
        mode="max" if has_val else "min",
        graphdef=graphdef,
    )


def build_tasks(cfg: Any, data: TabularData, seeds: Sequence[int]) -> list[TrainTask]:
    """One task for every seed (nothing in it depends on the seed)."""
    return [build_task(cfg, data)] * len(seeds)


def fit_quietly(cfg: Any, data: TabularData, *, desc: str = "mlp") -> FitResult:
    """Train one copy on `data` with `cfg.seed`'s keys and log nothing (cross-validation folds)."""
    keys = run_keys(cfg.seed)
    return fit_loop(build_task(cfg, data), cfg.trainer, model_key=keys["model_key"], train_key=keys["train_key"], desc=desc)


def fit_seeds_quietly(cfg: Any, data: TabularData, seeds: Sequence[int], *, desc: str = "mlp") -> list[FitResult]:
    """Train one copy per seed on `data`, together as `session.fit` trains them, and log nothing
    (cross-validation folds): copy i equals `fit_quietly` with `seed=seeds[i]`."""
    keys = [run_keys(seed) for seed in seeds]
    return fit_loop_vectorized(build_tasks(cfg, data, seeds), cfg.trainer, model_keys=[k["model_key"] for k in keys],
                               train_keys=[k["train_key"] for k in keys], callbacks=[None] * len(seeds), desc=desc)
