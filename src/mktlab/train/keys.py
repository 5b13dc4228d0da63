"""A run's random keys and seeds: every random draw of a run flows from `cfg.seed`."""

from __future__ import annotations

from typing import Any

import jax


def run_keys(seed: int) -> dict[str, jax.Array]:
    """The run's keys, split once from the seed: data order, parameter init, training."""
    data_key, model_key, train_key = jax.random.split(jax.random.key(seed), 3)
    return {"data_key": data_key, "model_key": model_key, "train_key": train_key}


def seed_list(cfg: Any) -> list[int]:
    """The seeds to train: `trainer.seeds`, or `trainer.num_seeds` counted from `seed` (one: `[seed]`)."""
    if cfg.trainer.seeds:
        return list(cfg.trainer.seeds)
    return list(range(cfg.seed, cfg.seed + cfg.trainer.num_seeds))


def several_seeds(cfg: Any) -> bool:
    """Whether the config trains several seeds at once (a child run each)."""
    return bool(cfg.trainer.seeds) or cfg.trainer.num_seeds > 1
