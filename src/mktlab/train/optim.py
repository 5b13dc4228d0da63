"""Optimizers from `conf/optim/`, built with `optax.chain`.

The learning rate and the weight decay live in the optimizer's state
(`optax.inject_hyperparams`), where each step reads them, not in the compiled step: a
program compiled for one learning rate runs any other, so a sweep over `optim.lr` or
`optim.weight_decay` reuses one program (`program_settings`, `with_hyperparameters`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import optax

from mktlab.config.schema import OptimConfig, TrainerConfig
from mktlab.train.steps import num_batches

HYPERPARAMETERS = ("lr", "weight_decay")  # the config fields the optimizer keeps in its state, under the same names


def learning_rate(cfg: OptimConfig, total_steps: int, steps_per_epoch: int, peak: Any = None) -> optax.Schedule | Any:
    """The learning rate (a schedule for decaying ones) peaking at `peak`, by default `cfg.lr`."""
    peak = cfg.lr if peak is None else peak
    if cfg.schedule == "constant":
        return peak
    if cfg.schedule == "cosine":
        return optax.cosine_decay_schedule(peak, decay_steps=max(total_steps, 1))
    if cfg.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, peak, warmup_steps=cfg.warmup_epochs * steps_per_epoch, decay_steps=max(total_steps, 1)
        )
    raise ValueError(f"optim.schedule={cfg.schedule!r}: expected constant, cosine or warmup_cosine")


def build_optimizer(cfg: OptimConfig, *, total_steps: int = 1, steps_per_epoch: int = 1) -> optax.GradientTransformation:
    """The optimizer named by `cfg.name`, with clipping and schedule; its learning rate and weight
    decay kept in its state.

    Args:
        cfg: the `optim` config group.
        total_steps: optimizer steps of the whole fit (for decaying schedules).
        steps_per_epoch: optimizer steps per epoch (for warmup).
    """
    if cfg.name not in ("adam", "adamw", "sgd"):
        raise ValueError(f"optim.name={cfg.name!r}: expected adam, adamw or sgd")
    learning_rate(cfg, total_steps, steps_per_epoch)  # an unknown schedule fails here, not inside a trace
    decays = cfg.weight_decay > 0  # whether a decay step exists is part of the program; its strength is not

    def chain(lr: Any, weight_decay: Any) -> optax.GradientTransformation:
        lr = learning_rate(cfg, total_steps, steps_per_epoch, peak=lr)
        parts: list[optax.GradientTransformation] = []
        if cfg.grad_clip is not None:
            parts.append(optax.clip_by_global_norm(cfg.grad_clip))
        if cfg.name == "adamw":
            parts.append(optax.adamw(lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=weight_decay))
            return optax.chain(*parts)
        if decays:
            parts.append(optax.add_decayed_weights(weight_decay))
        if cfg.name == "adam":
            parts.append(optax.adam(lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps))
        else:
            parts.append(optax.sgd(lr, momentum=cfg.momentum or None, nesterov=cfg.nesterov))
        return optax.chain(*parts)

    return optax.inject_hyperparams(chain)(lr=float(cfg.lr), weight_decay=float(cfg.weight_decay))


def epoch_optimizer(cfg: OptimConfig, trainer: TrainerConfig, num_examples: int) -> optax.GradientTransformation:
    """`build_optimizer` with its schedule sized for `trainer.epochs` epochs of full minibatches of `num_examples`."""
    steps_per_epoch = num_batches(num_examples, trainer.batch_size)
    return build_optimizer(cfg, total_steps=steps_per_epoch * trainer.epochs, steps_per_epoch=steps_per_epoch)


def program_settings(cfg: OptimConfig) -> OptimConfig:
    """`cfg` without the values a compiled step reads from the optimizer's state: two configs with the
    same settings here run the same programs (with adam and sgd, whether weight decay is on still counts)."""
    return dataclasses.replace(cfg, lr=0.0, weight_decay=float(cfg.weight_decay > 0 and cfg.name != "adamw"))


def with_hyperparameters(opt_state: Any, cfg: OptimConfig) -> Any:
    """`opt_state` of `build_optimizer` holding `cfg`'s learning rate and weight decay (a state made by a
    program compiled for other values)."""
    held = opt_state.hyperparams
    values = {name: jnp.asarray(getattr(cfg, name), held[name].dtype) for name in HYPERPARAMETERS}
    return opt_state._replace(hyperparams={**held, **values})
