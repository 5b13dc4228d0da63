"""LSTM click predictor: loss, scoring, task and fit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from mktlab.data.click_features import ITEM_FEATURES, ItemFeatures
from mktlab.data.clicklog import ClickLogData, ClickSplit
from mktlab.evaluation.clicks import click_report, gauc
from mktlab.models.lstm.config import MONITORS
from mktlab.models.lstm.module import ClickLSTM
from mktlab.train.loop import TrainTask
from mktlab.train.optim import epoch_optimizer
from mktlab.train.predict import predict_in_chunks
from mktlab.train.state import abstract_graphdef, jit_init, merge_module, split_module
from mktlab.train.steps import compile_epoch, make_train_step, training_mesh

MODEL_INPUTS = ("history", "lengths", "items", "history_clicks")
OPTIONAL_INPUTS = ("features", "long_history", "long_clicks", "long_lengths")  # passed when present


def logits_of(model: ClickLSTM, batch: dict[str, jax.Array], *, key: jax.Array | None = None) -> jax.Array:
    """The module on a batch of model inputs (the optional ones when present)."""
    extra = {k: batch[k] for k in OPTIONAL_INPUTS if k in batch}
    return model(batch["history"], batch["lengths"], batch["items"], batch["history_clicks"], **extra, key=key)


def click_loss(model: ClickLSTM, batch: dict[str, jax.Array], *, key: jax.Array) -> tuple[jax.Array, dict]:
    """Mean binary cross-entropy of the click logits (dropout on)."""
    logits = logits_of(model, batch, key=key)
    loss = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, batch["clicks"]))
    return loss, {}


def feature_names(cfg: Any) -> list[str]:
    """Names of the feature columns the model reads, in order."""
    return list(ITEM_FEATURES) if cfg.model.item_features else []


def item_features(cfg: Any, data: ClickLogData) -> ItemFeatures | None:
    """The item columns fitted on the training impressions (None without `model.item_features`)."""
    if not cfg.model.item_features:
        return None
    train = data.train
    return ItemFeatures.fit(train.users, train.item_ids, train.clicks, strength=cfg.model.eval.smoothing)


def model_inputs(cfg: Any, data: ClickLogData, split: ClickSplit, features: ItemFeatures | None = None) -> dict[str, np.ndarray]:
    """A split's model inputs: its arrays, the longer history when the model reads it, and the item columns
    (training impressions: from the other users' folds; see `mktlab.data.click_features`)."""
    arrays = split.arrays()
    if not uses_long_history(cfg):
        arrays = {k: v for k, v in arrays.items() if not k.startswith("long_")}
    if cfg.model.item_features:
        features = features or item_features(cfg, data)
        if split is data.train:
            arrays["features"] = features.training(split.users, split.item_ids, split.clicks)
        else:
            arrays["features"] = features(split.item_ids)
    return arrays


def with_negatives(arrays: dict[str, np.ndarray], split: ClickSplit, features: ItemFeatures | None, *, per_row: int,
                   seed: int) -> dict[str, np.ndarray]:
    """The training inputs and, for every impression, `per_row` sampled negatives: the same history with an item drawn
    from the training log's impressions (so by popularity), labelled not clicked. A draw that is the impression's own
    item is drawn again once more (then kept). Their item columns come from the other folds of users, as the
    impressions' own do."""
    if per_row < 1 or len(split) == 0:
        return arrays
    rng = np.random.default_rng(seed)
    n = len(split)
    rows = np.tile(np.arange(n), per_row)
    pick = rng.integers(0, n, len(rows))
    same = split.item_ids[pick] == split.item_ids[rows]
    pick[same] = rng.integers(0, n, int(same.sum()))
    extra = {k: v[rows] for k, v in arrays.items()}
    extra["items"], extra["clicks"] = split.items[pick], np.zeros(len(rows), np.float32)
    if "features" in arrays:
        extra["features"] = features.training(split.users, split.item_ids, split.clicks, query_users=split.users[rows],
                                               query_items=split.item_ids[pick])
    return {k: np.concatenate([arrays[k], extra[k]]) for k in arrays}


def uses_long_history(cfg: Any) -> bool:
    """Whether the model reads the longer history (`data.long_len`) at all."""
    return cfg.data.long_len > 0 and (cfg.model.affinity_dim > 0 or cfg.model.long_attention)


def module_kwargs(cfg: Any, data: ClickLogData) -> dict[str, Any]:
    """Constructor arguments of the module (saved with its parameters)."""
    m = cfg.model
    return {
        "num_embeddings": data.num_embeddings,
        "embed_dim": m.embed_dim,
        "hidden": m.hidden,
        "layers": m.layers,
        "bidirectional": m.bidirectional,
        "dropout": m.dropout,
        "dense": m.dense,
        "use_labels": cfg.data.use_labels,
        "unroll": m.unroll,
        "pooling": m.pooling,
        "attention_units": m.attention_units,
        "num_features": len(feature_names(cfg)),
        "affinity_dim": m.affinity_dim,
        "long_attention": m.long_attention,
    }


def scorer(graphdef: nnx.GraphDef, *, batch_size: int) -> Callable[[Any, Any, dict[str, np.ndarray]], np.ndarray]:
    """`score(params, rest, arrays) -> click probabilities` in jitted chunks of at most `batch_size`.

    Chunks are padded to a power of two, so a handful of compiled shapes serve every
    split and request size.
    """

    @jax.jit
    def probabilities(params: Any, rest: Any, chunk: dict[str, jax.Array]) -> jax.Array:
        model = merge_module(graphdef, params, rest)
        return jax.nn.sigmoid(logits_of(model, chunk))

    def score(params: Any, rest: Any, arrays: dict[str, np.ndarray]) -> np.ndarray:
        if len(arrays["items"]) == 0:
            return np.zeros(0, np.float32)
        inputs = {k: np.asarray(arrays[k]) for k in (*MODEL_INPUTS, *OPTIONAL_INPUTS) if k in arrays}
        return predict_in_chunks(lambda **chunk: probabilities(params, rest, chunk), inputs, batch_size, padding="power_of_two")

    return score


def predict(model: ClickLSTM, arrays: dict[str, np.ndarray], *, batch_size: int = 8192) -> np.ndarray:
    """Click probabilities of the impressions in `arrays` (a split's `model_inputs` or a request)."""
    graphdef, params, rest = split_module(model)
    return scorer(graphdef, batch_size=batch_size)(params, rest, arrays)


def evaluate_split(score: Callable[[Any, Any, dict], np.ndarray], state: Any, split: ClickSplit, arrays: dict[str, np.ndarray], *,
                   prefix: str) -> dict[str, float]:
    """`click_report` of the model in `state` on one split (`arrays`: its model inputs)."""
    if len(split) == 0:
        return {}
    return click_report(split.clicks, score(state.params, state.rest, arrays), split.users, prefix=prefix)


def build_task(cfg: Any, data: ClickLogData) -> TrainTask:
    """The loop's view of the LSTM click predictor on `data`."""
    if cfg.model.monitor not in MONITORS:
        raise ValueError(f"model.monitor={cfg.model.monitor!r}: expected one of {', '.join(MONITORS)}")
    tx = epoch_optimizer(cfg.optim, cfg.trainer, len(data.train) * (1 + cfg.model.negatives))
    kwargs = module_kwargs(cfg, data)
    factory = lambda rngs: ClickLSTM(**kwargs, rngs=rngs)  # noqa: E731
    graphdef = abstract_graphdef(factory)
    step = make_train_step(graphdef, click_loss, tx, mesh=training_mesh(cfg.trainer, len(data.train) * (1 + cfg.model.negatives)))
    epoch = compile_epoch(step, cfg.trainer.batch_size)
    features = item_features(cfg, data)
    train_inputs = with_negatives(model_inputs(cfg, data, data.train, features), data.train, features, per_row=cfg.model.negatives,
                                  seed=cfg.seed)
    train_arrays = jax.tree.map(jnp.asarray, train_inputs)
    score = scorer(graphdef, batch_size=cfg.trainer.eval_batch_size)
    has_val = len(data.val) > 0
    val_inputs = model_inputs(cfg, data, data.val, features) if has_val else None
    ranking_val = data.ranking_split("val")
    ranking_inputs = model_inputs(cfg, data, ranking_val, features) if has_val and ranking_val is not data.val else None

    def validate(state) -> dict[str, float]:
        metrics = evaluate_split(score, state, data.val, val_inputs, prefix="val_")
        metrics = {k: metrics[k] for k in ("val_roc_auc", "val_log_loss", "val_gauc") if k in metrics}
        if ranking_inputs is not None and "val_gauc" in metrics:  # GAUC ranks each user's impressions from other histories
            metrics[f"val_{data.held_out_history}_gauc"] = metrics["val_gauc"]
            metrics["val_gauc"] = gauc(ranking_val.clicks, score(state.params, state.rest, ranking_inputs), ranking_val.users)[0]
        return metrics

    return TrainTask(
        init=jit_init(factory, tx),
        train_epoch=lambda state, key: epoch(state, train_arrays, key),
        validate=validate,
        monitor=cfg.model.monitor if has_val else "train_loss",
        mode=MONITORS[cfg.model.monitor] if has_val else "min",
        graphdef=graphdef,
    )


def build_tasks(cfg: Any, data: ClickLogData, seeds: Sequence[int]) -> list[TrainTask]:
    """One task for every seed (nothing in it depends on the seed)."""
    return [build_task(cfg, data)] * len(seeds)
