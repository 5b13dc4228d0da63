"""Matrix factorization: loss, prediction and the training task."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mktlab.data.ratings import RatingsData
from mktlab.models.mf.module import MatrixFactorization
from mktlab.train.loop import TrainTask
from mktlab.train.optim import epoch_optimizer
from mktlab.train.predict import predict_in_chunks
from mktlab.train.state import abstract_graphdef, jit_init, merge_module
from mktlab.train.steps import compile_epoch, make_train_step, training_mesh


def mf_loss(model: MatrixFactorization, batch: dict[str, jax.Array], *, key: jax.Array, l2: float) -> tuple[jax.Array, dict]:
    """Mean squared error plus `l2` times the squared norm of the factors and biases each rating touches."""
    del key  # matrix factorization draws nothing at random in a step
    p, q, b_u, b_i = model.components(batch["users"], batch["items"])
    error = model.global_mean.value + b_u + b_i + jnp.sum(p * q, axis=-1) - batch["ratings"]
    mse = jnp.mean(error**2)
    penalty = jnp.mean(jnp.sum(p**2, -1) + jnp.sum(q**2, -1) + b_u**2 + b_i**2)
    return mse + l2 * penalty, {"mse": mse}


def module_kwargs(cfg: Any, data: RatingsData) -> dict[str, Any]:
    """Constructor arguments of the module (saved with its parameters)."""
    return {
        "num_users": data.num_users,
        "num_items": data.num_items,
        "dim": cfg.model.dim,
        "init_scale": cfg.model.init_scale,
        "use_bias": cfg.model.use_bias,
        "global_mean": float(np.mean(data.train.ratings)),
    }


def predict(model: MatrixFactorization, users: np.ndarray, items: np.ndarray, *, scale: tuple[float, float], batch_size: int = 65536) -> np.ndarray:
    """Predicted ratings clipped to the rating scale (compiled once per model graph and chunk shape)."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    chunk = functools.partial(clipped_predictions, graphdef, params, rest, scale=tuple(float(bound) for bound in scale))
    return predict_in_chunks(chunk, {"users": np.asarray(users), "items": np.asarray(items)}, batch_size)


@functools.partial(jax.jit, static_argnums=0, static_argnames="scale")
def clipped_predictions(graphdef: nnx.GraphDef, params: Any, rest: Any, users: jax.Array, items: jax.Array, *, scale: tuple[float, float]) -> jax.Array:
    return jnp.clip(merge_module(graphdef, params, rest)(users, items), *scale)


def build_task(cfg: Any, data: RatingsData) -> TrainTask:
    """The loop's view of matrix factorization on `data`."""
    tx = epoch_optimizer(cfg.optim, cfg.trainer, len(data.train))
    kwargs = module_kwargs(cfg, data)
    factory = lambda rngs: MatrixFactorization(**kwargs, rngs=rngs)  # noqa: E731
    graphdef = abstract_graphdef(factory)
    loss = lambda model, batch, *, key: mf_loss(model, batch, key=key, l2=cfg.model.l2)  # noqa: E731
    step = make_train_step(graphdef, loss, tx, mesh=training_mesh(cfg.trainer, len(data.train)))
    epoch = compile_epoch(step, cfg.trainer.batch_size)
    train_arrays = jax.tree.map(jnp.asarray, data.train.arrays())
    val_users, val_items, val_ratings = data.val.users, data.val.items, data.val.ratings
    scale = tuple(float(bound) for bound in data.rating_scale)

    def validate(state) -> dict[str, float]:
        if len(val_ratings) == 0:
            return {}
        error = np.asarray(clipped_predictions(graphdef, state.params, state.rest, val_users, val_items, scale=scale)) - val_ratings
        return {"val_rmse": float(np.sqrt(np.mean(error**2))), "val_mae": float(np.mean(np.abs(error)))}

    return TrainTask(
        init=jit_init(factory, tx),
        train_epoch=lambda state, key: epoch(state, train_arrays, key),
        validate=validate,
        monitor="val_rmse" if len(val_ratings) else "train_loss",
        mode="min",
        graphdef=graphdef,
    )


def build_tasks(cfg: Any, data: RatingsData, seeds: Sequence[int]) -> list[TrainTask]:
    """One task for every seed (nothing in it depends on the seed)."""
    return [build_task(cfg, data)] * len(seeds)
