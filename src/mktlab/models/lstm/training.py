"""LSTM click predictor: loss, scoring, task and fit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from mktlab.data.clicklog import ClickLogData, ClickSplit
from mktlab.evaluation.clicks import click_report
from mktlab.models.lstm.config import MONITORS
from mktlab.models.lstm.module import ClickLSTM
from mktlab.train.loop import TrainTask
from mktlab.train.optim import epoch_optimizer
from mktlab.train.predict import predict_in_chunks
from mktlab.train.state import abstract_graphdef, jit_init, merge_module, split_module
from mktlab.train.steps import compile_epoch, make_train_step, training_mesh

MODEL_INPUTS = ("history", "lengths", "items", "history_clicks")


def click_loss(model: ClickLSTM, batch: dict[str, jax.Array], *, key: jax.Array) -> tuple[jax.Array, dict]:
    """Mean binary cross-entropy of the click logits (dropout on)."""
    logits = model(batch["history"], batch["lengths"], batch["items"], batch["history_clicks"], key=key)
    loss = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, batch["clicks"]))
    return loss, {}


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
    }


def scorer(graphdef: nnx.GraphDef, *, batch_size: int) -> Callable[[Any, Any, dict[str, np.ndarray]], np.ndarray]:
    """`score(params, rest, arrays) -> click probabilities` in jitted chunks of at most `batch_size`.

    Chunks are padded to a power of two, so a handful of compiled shapes serve every
    split and request size.
    """

    @jax.jit
    def probabilities(params: Any, rest: Any, chunk: dict[str, jax.Array]) -> jax.Array:
        model = merge_module(graphdef, params, rest)
        return jax.nn.sigmoid(model(chunk["history"], chunk["lengths"], chunk["items"], chunk["history_clicks"]))

    def score(params: Any, rest: Any, arrays: dict[str, np.ndarray]) -> np.ndarray:
        if len(arrays["items"]) == 0:
            return np.zeros(0, np.float32)
        inputs = {k: np.asarray(arrays[k]) for k in MODEL_INPUTS}
        return predict_in_chunks(lambda **chunk: probabilities(params, rest, chunk), inputs, batch_size, padding="power_of_two")

    return score


def predict(model: ClickLSTM, arrays: dict[str, np.ndarray], *, batch_size: int = 8192) -> np.ndarray:
    """Click probabilities of the impressions in `arrays` (a split's `arrays()` or a request)."""
    graphdef, params, rest = split_module(model)
    return scorer(graphdef, batch_size=batch_size)(params, rest, arrays)


def evaluate_split(score: Callable[[Any, Any, dict], np.ndarray], state: Any, split: ClickSplit, *, prefix: str) -> dict[str, float]:
    """`click_report` of the model in `state` on one split."""
    if len(split) == 0:
        return {}
    return click_report(split.clicks, score(state.params, state.rest, split.arrays()), split.users, prefix=prefix)


def build_task(cfg: Any, data: ClickLogData) -> TrainTask:
    """The loop's view of the LSTM click predictor on `data`."""
    if cfg.model.monitor not in MONITORS:
        raise ValueError(f"model.monitor={cfg.model.monitor!r}: expected one of {', '.join(MONITORS)}")
    tx = epoch_optimizer(cfg.optim, cfg.trainer, len(data.train))
    kwargs = module_kwargs(cfg, data)
    factory = lambda rngs: ClickLSTM(**kwargs, rngs=rngs)  # noqa: E731
    graphdef = abstract_graphdef(factory)
    step = make_train_step(graphdef, click_loss, tx, mesh=training_mesh(cfg.trainer, len(data.train)))
    epoch = compile_epoch(step, cfg.trainer.batch_size)
    train_arrays = jax.tree.map(jnp.asarray, data.train.arrays())
    score = scorer(graphdef, batch_size=cfg.trainer.eval_batch_size)
    has_val = len(data.val) > 0

    def validate(state) -> dict[str, float]:
        metrics = evaluate_split(score, state, data.val, prefix="val_")
        return {k: metrics[k] for k in ("val_roc_auc", "val_log_loss", "val_gauc") if k in metrics}

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
