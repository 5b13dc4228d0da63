"""Optimizers from `conf/optim/`, built with `optax.chain`."""

from __future__ import annotations

import optax

from mktlab.config.schema import OptimConfig, TrainerConfig
from mktlab.train.steps import num_batches


def learning_rate(cfg: OptimConfig, total_steps: int, steps_per_epoch: int) -> optax.Schedule | float:
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "cosine":
        return optax.cosine_decay_schedule(cfg.lr, decay_steps=max(total_steps, 1))
    if cfg.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, cfg.lr, warmup_steps=cfg.warmup_epochs * steps_per_epoch, decay_steps=max(total_steps, 1)
        )
    raise ValueError(f"optim.schedule={cfg.schedule!r}: expected constant, cosine or warmup_cosine")


def build_optimizer(cfg: OptimConfig, *, total_steps: int = 1, steps_per_epoch: int = 1) -> optax.GradientTransformation:
    """The optimizer named by `cfg.name`, with clipping and schedule.

    Args:
        cfg: the `optim` config group.
        total_steps: optimizer steps of the whole fit (for decaying schedules).
        steps_per_epoch: optimizer steps per epoch (for warmup).
    """
    lr = learning_rate(cfg, total_steps, steps_per_epoch)
    parts: list[optax.GradientTransformation] = []
    if cfg.grad_clip is not None:
        parts.append(optax.clip_by_global_norm(cfg.grad_clip))
    if cfg.name == "adam":
        if cfg.weight_decay:
            parts.append(optax.add_decayed_weights(cfg.weight_decay))
        parts.append(optax.adam(lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps))
    elif cfg.name == "adamw":
        parts.append(optax.adamw(lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay))
    elif cfg.name == "sgd":
        if cfg.weight_decay:
            parts.append(optax.add_decayed_weights(cfg.weight_decay))
        parts.append(optax.sgd(lr, momentum=cfg.momentum or None, nesterov=cfg.nesterov))
    else:
        raise ValueError(f"optim.name={cfg.name!r}: expected adam, adamw or sgd")
    return optax.chain(*parts)


def epoch_optimizer(cfg: OptimConfig, trainer: TrainerConfig, num_examples: int) -> optax.GradientTransformation:
    """`build_optimizer` with its schedule sized for `trainer.epochs` epochs of full minibatches of `num_examples`."""
    steps_per_epoch = num_batches(num_examples, trainer.batch_size)
    return build_optimizer(cfg, total_steps=steps_per_epoch * trainer.epochs, steps_per_epoch=steps_per_epoch)
