"""Matrix factorization: loss, prediction and the training task.

With `model.objective=ials` (the default) the ranking head is solved by `model.ranking.sweeps`
alternating-least-squares sweeps (`mktlab.models.mf.ials`) when the state is initialized, and
each epoch is one pass of minibatch Adam over the ratings for the rating head: the epoch model
selection keeps always holds the solved ranking head. `model.objective=ratings` trains the
rating head alone and ranks items by predicted rating.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mktlab.data.ratings import RatingsData, RatingsSplit
from mktlab.evaluation.ranking import topk_metrics_traced
from mktlab.models.mf import ials
from mktlab.models.mf.module import MatrixFactorization
from mktlab.train import programs
from mktlab.train.loop import TrainTask
from mktlab.train.optim import epoch_optimizer, program_settings, with_hyperparameters
from mktlab.train.predict import predict_in_chunks
from mktlab.train.state import abstract_graphdef, jit_init, merge_module, split_module
from mktlab.train.steps import compile_epoch, make_train_step, num_batches, training_mesh


PENALTIES = ("user_l2", "item_l2", "user_bias_l2", "item_bias_l2")  # per-rating L2 strengths in a batch (`penalty_weights`)


def mf_loss(model: MatrixFactorization, batch: dict[str, jax.Array], *, key: jax.Array) -> tuple[jax.Array, dict]:
    """Mean squared error plus each rating's L2 penalties on the rows it touches: `user_l2` times the
    squared norm of its user's factors, `user_bias_l2` times the user's squared bias, and the same
    for its item (per-rating arrays in the batch, from `penalty_weights`; a missing one is 0).

    The strengths travel with the data rather than inside the compiled step, so a sweep over
    `model.l2` runs one program.
    """
    del key  # matrix factorization draws nothing at random in a step
    p, q, b_u, b_i = model.components(batch["users"], batch["items"])
    error = model.global_mean.value + b_u + b_i + jnp.sum(p * q, axis=-1) - batch["ratings"]
    mse = jnp.mean(error**2)
    squares = {"user_l2": jnp.sum(p**2, -1), "item_l2": jnp.sum(q**2, -1), "user_bias_l2": b_u**2, "item_bias_l2": b_i**2}
    penalty = sum(batch[name] * square for name, square in squares.items() if name in batch)
    return mse + jnp.mean(penalty), {"mse": mse}


def penalty_weights(split: RatingsSplit, num_users: int, num_items: int, *, l2: float, l2_bias: float | None = None,
                    exponent: float = 1.0) -> dict[str, np.ndarray]:
    """The per-rating L2 strengths of `mf_loss` (`PENALTIES`): `l2` on factors, `l2_bias` (default `l2`) on
    biases, scaled so that a row's total penalty grows as (its ratings) ** exponent.

    A rating of a row with n ratings weighs (n / mean n) ** (exponent - 1): exponent 1 is every
    rating weighing 1 (the plain loss), 0 the same penalty for every row whatever its data.
    """
    l2_bias = l2 if l2_bias is None else l2_bias
    weights = {}
    for side, index, size in (("user", split.users, num_users), ("item", split.items, num_items)):
        counts = np.bincount(index[index < size], minlength=size).astype(np.float64)
        per_rating = counts[np.minimum(index, size - 1)]
        frequency = (per_rating / per_rating.mean()) ** (exponent - 1.0)
        weights[f"{side}_l2"] = (l2 * frequency).astype(np.float32)
        weights[f"{side}_bias_l2"] = (l2_bias * frequency).astype(np.float32)
    return weights


def module_kwargs(cfg: Any, data: RatingsData) -> dict[str, Any]:
    """Constructor arguments of the module (saved with its parameters)."""
    return {
        "num_users": data.num_users,
        "num_items": data.num_items,
        "dim": cfg.model.dim,
        "init_scale": cfg.model.init_scale,
        "use_bias": cfg.model.use_bias,
        "global_mean": float(np.mean(data.train.ratings)),
        "rank_dim": cfg.model.ranking.dim if cfg.model.objective == "ials" else 0,
        "rank_init_scale": cfg.model.ranking.init_scale,
    }


def predict(model: MatrixFactorization, users: np.ndarray, items: np.ndarray, *, scale: tuple[float, float], batch_size: int = 65536) -> np.ndarray:
    """Predicted ratings clipped to the rating scale (compiled once per model graph and chunk shape)."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    chunk = functools.partial(clipped_predictions, graphdef, params, rest, scale=tuple(float(bound) for bound in scale))
    return predict_in_chunks(chunk, {"users": np.asarray(users), "items": np.asarray(items)}, batch_size)


@functools.partial(jax.jit, static_argnums=0, static_argnames="scale")
def clipped_predictions(graphdef: nnx.GraphDef, params: Any, rest: Any, users: jax.Array, items: jax.Array, *, scale: tuple[float, float]) -> jax.Array:
    return jnp.clip(merge_module(graphdef, params, rest)(users, items), *scale)


def dense_mask(split: RatingsSplit, num_users: int, num_items: int, *, min_rating: float = -np.inf) -> np.ndarray:
    """(num_users, num_items) bool: the known pairs of `split` rated at least `min_rating`."""
    return ials.confidence_matrix(split.users, split.items, split.ratings, num_users, num_items, min_rating=min_rating) > 0


@functools.partial(jax.jit, static_argnums=0, static_argnames="k")
def ranking_metrics(graphdef: nnx.GraphDef, params: Any, rest: Any, exclude: jax.Array, relevant: jax.Array, *, k: int) -> dict[str, jax.Array]:
    """Top-k metrics of every user's list by `ranking_scores`, excluding `exclude`, against `relevant` (dense masks)."""
    model = merge_module(graphdef, params, rest)
    return topk_metrics_traced(model.ranking_scores(jnp.arange(exclude.shape[0])), exclude, relevant, k)


def ranking_observations(cfg: Any, data: RatingsData) -> ials.Observations:
    """The ranking head's iALS problem: the training ratings of at least `model.ranking.min_rating`, weighted."""
    r = cfg.model.ranking
    pairs = ials.positive_pairs(data.train.users, data.train.items, data.train.ratings, data.num_users, data.num_items,
                                min_rating=r.min_rating, slope=r.rating_slope)
    return ials.observations(*pairs, (data.num_users, data.num_items), alpha0=r.alpha0, l2=r.l2, exponent=r.l2_exponent)


def ranking_head_solver(cfg: Any) -> Any:
    """`solve(factors, observations) -> factors`: the ranking head's (user, item) factors after
    `model.ranking.sweeps` iALS sweeps from `factors`, compiled once."""
    r = cfg.model.ranking

    def solve(factors: tuple[jax.Array, jax.Array], observations: ials.Observations) -> tuple[jax.Array, jax.Array]:
        return jax.lax.fori_loop(0, r.sweeps, lambda _, f: ials.sweep(*f, observations, alpha0=r.alpha0, cg_steps=r.cg_steps), factors)

    return jax.jit(solve)


def solved_ranking_head(graphdef: nnx.GraphDef, state: Any, observations: ials.Observations, solve: Any, settings: str) -> Any:
    """`state` with its ranking head solved from its initial factors.

    The ranking head depends on nothing the rating head learns, so it is solved when the
    state is initialized: every epoch, and so the epoch that model selection keeps (the
    lowest validation RMSE), holds the fully solved head, whenever training stops. The solved
    factors are kept for the process under a fingerprint of everything they come from (initial
    factors, observations, `settings`): a sweep over the rating head's settings in a warm kernel
    solves the ranking head once per seed, and the kept factors are the ones the solve gives,
    bit for bit.
    """
    model = merge_module(graphdef, state.params, state.rest)
    start = (model.rank_user_factors.value, model.rank_item_factors.value)
    fingerprint = hashlib.sha256(settings.encode())
    for leaf in jax.tree.leaves((start, observations)):
        leaf = np.asarray(leaf)
        fingerprint.update(f"{leaf.dtype}{leaf.shape}".encode())
        fingerprint.update(np.ascontiguousarray(leaf).tobytes())
    solved = programs.reused(("mf-ranking-head", fingerprint.hexdigest()), lambda: solve(start, observations))
    model.rank_user_factors.value, model.rank_item_factors.value = solved
    return state.replace(rest=split_module(model)[2])


def build_task(cfg: Any, data: RatingsData) -> TrainTask:
    """The loop's view of matrix factorization on `data`."""
    kwargs = module_kwargs(cfg, data)
    factory = lambda rngs: MatrixFactorization(**kwargs, rngs=rngs)  # noqa: E731
    graphdef = abstract_graphdef(factory)
    ranking_head = kwargs["rank_dim"] > 0

    def compile_programs() -> tuple[Any, Any, Any]:
        """The epoch, the initial state and the ranking head's solve: what they capture is in the key below."""
        tx = epoch_optimizer(cfg.optim, cfg.trainer, len(data.train))
        step = make_train_step(graphdef, mf_loss, tx, mesh=training_mesh(cfg.trainer, len(data.train)))
        solve = ranking_head_solver(cfg) if ranking_head else None
        return compile_epoch(step, cfg.trainer.batch_size), jit_init(factory, tx), solve

    # the initial state holds the constructor's arguments (the global mean among them) as constants; the
    # learning rate and L2 strengths reach the programs in the optimizer's state and the data
    trainer = cfg.trainer
    rating_epoch, initial_state, solve = programs.reused(
        ("mf", graphdef, repr(sorted(kwargs.items())), repr(dataclasses.replace(cfg.model, l2=0.0, l2_bias=None, l2_exponent=1.0)),
         repr(program_settings(cfg.optim)), (trainer.epochs, trainer.batch_size, trainer.data_parallel), len(data.train)),
        compile_programs)
    train_arrays = data.train.arrays()
    train_arrays.update(penalty_weights(data.train, data.num_users, data.num_items, l2=cfg.model.l2, l2_bias=cfg.model.l2_bias,
                                        exponent=cfg.model.l2_exponent))
    train_arrays = jax.tree.map(jnp.asarray, train_arrays)
    steps_per_epoch = num_batches(len(data.train), min(cfg.trainer.batch_size, len(data.train)))
    observations = ranking_observations(cfg, data) if ranking_head else None

    def init(key: jax.Array) -> Any:
        state = initial_state(key)
        state = state.replace(opt_state=with_hyperparameters(state.opt_state, cfg.optim))
        if not ranking_head:
            return state
        return solved_ranking_head(graphdef, state, observations, solve, repr(cfg.model.ranking))
    val_users, val_items, val_ratings = data.val.users, data.val.items, data.val.ratings
    scale = tuple(float(bound) for bound in data.rating_scale)
    k = cfg.model.eval.top_k
    seen = jnp.asarray(dense_mask(data.train, data.num_users, data.num_items))
    val_relevant = jnp.asarray(dense_mask(data.val, data.num_users, data.num_items, min_rating=cfg.model.eval.relevance_threshold))

    def validate(state) -> dict[str, float]:
        if len(val_ratings) == 0:
            return {}
        error = np.asarray(clipped_predictions(graphdef, state.params, state.rest, val_users, val_items, scale=scale)) - val_ratings
        metrics = {"val_rmse": float(np.sqrt(np.mean(error**2))), "val_mae": float(np.mean(np.abs(error)))}
        # lists by the rating head change every epoch; the ranking head's, solved at the start, do not
        if not ranking_head or int(state.step) <= steps_per_epoch:
            ranking = ranking_metrics(graphdef, state.params, state.rest, seen, val_relevant, k=k)
            metrics.update({f"val_{name}": float(value) for name, value in ranking.items()})
        return metrics

    return TrainTask(
        init=init,
        train_epoch=lambda state, key: rating_epoch(state, train_arrays, key),
        validate=validate,
        monitor="val_rmse" if len(val_ratings) else "train_loss",
        mode="min",
        graphdef=graphdef,
    )


def build_tasks(cfg: Any, data: RatingsData, seeds: Sequence[int]) -> list[TrainTask]:
    """One task for every seed (nothing in it depends on the seed)."""
    return [build_task(cfg, data)] * len(seeds)
