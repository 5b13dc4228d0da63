"""Explicit ratings ready for training: split, encoded to contiguous ids, with titles."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mktlab.data.schemas import RatingsDataConfig
from mktlab.data.errors import DataError
from mktlab.data.movielens import RatingsTable, load_ratings_table
from mktlab.data.splits import random_split, subsample, temporal_split_per_user


@dataclass(frozen=True)
class RatingsSplit:
    """One split as encoded arrays. A user or item unseen in training has the index
    `num_users` / `num_items` (the out-of-vocabulary id)."""

    users: np.ndarray  # int32
    items: np.ndarray  # int32
    ratings: np.ndarray  # float32
    timestamps: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.ratings)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"users": self.users, "items": self.items, "ratings": self.ratings}


@dataclass(frozen=True)
class RatingsData:
    train: RatingsSplit
    val: RatingsSplit
    test: RatingsSplit
    user_ids: np.ndarray  # encoded user index -> original user id
    item_ids: np.ndarray  # encoded item index -> original item id
    titles: pd.Series  # original item id -> title
    rating_scale: tuple[float, float]
    source: str
    unseen: dict[str, int] = field(default_factory=dict)  # val/test records with a user or item unseen in training

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def summary(self) -> dict[str, float]:
        return {
            "num_users": self.num_users,
            "num_items": self.num_items,
            "num_train": len(self.train),
            "num_val": len(self.val),
            "num_test": len(self.test),
            **{f"unseen_{k}": v for k, v in self.unseen.items()},
        }


def split_ratings(table: RatingsTable, cfg: RatingsDataConfig, *, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train, validation and test frames by `cfg.split`."""
    if cfg.split == "fold":
        if not table.folds or cfg.fold not in table.folds:
            raise DataError(f"data.split=fold needs the ml-100k files u{cfg.fold}.base and u{cfg.fold}.test in {table.source}")
        base, test = table.folds[cfg.fold]
        base = base.iloc[subsample(len(base), cfg.subsample, seed=seed)]
        train_idx, val_idx, _ = random_split(len(base), val_frac=cfg.val_frac, test_frac=0.0, seed=seed)
        return base.iloc[train_idx], base.iloc[val_idx], test
    ratings = table.ratings.iloc[subsample(len(table.ratings), cfg.subsample, seed=seed)]
    if cfg.split == "random":
        idx = random_split(len(ratings), val_frac=cfg.val_frac, test_frac=cfg.test_frac, seed=seed)
    elif cfg.split == "temporal":
        idx = temporal_split_per_user(
            ratings["user_id"].to_numpy(), ratings["timestamp"].to_numpy(),
            val_per_user=cfg.val_per_user, test_per_user=cfg.test_per_user,
        )
    else:
        raise DataError(f"data.split={cfg.split!r}: expected random, fold or temporal")
    return tuple(ratings.iloc[i] for i in idx)  # type: ignore[return-value]


def encode(train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame) -> tuple[RatingsSplit, RatingsSplit, RatingsSplit, np.ndarray, np.ndarray, dict[str, int]]:
    """Contiguous user and item indices learnt from the training split."""
    user_ids = np.sort(train["user_id"].unique())
    item_ids = np.sort(train["item_id"].unique())

    def to_split(frame: pd.DataFrame) -> RatingsSplit:
        users = index_in_vocabulary(user_ids, frame["user_id"].to_numpy())
        items = index_in_vocabulary(item_ids, frame["item_id"].to_numpy())
        return RatingsSplit(users, items, frame["rating"].to_numpy(np.float32), frame["timestamp"].to_numpy(np.int64))

    splits = to_split(train), to_split(val), to_split(test)
    unseen = {}
    for name, split in zip(("val", "test"), splits[1:]):
        unseen[f"{name}_users"] = int((split.users == len(user_ids)).sum())
        unseen[f"{name}_items"] = int((split.items == len(item_ids)).sum())
    return (*splits, user_ids, item_ids, unseen)


def index_in_vocabulary(vocabulary: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of each value in the sorted `vocabulary`; `len(vocabulary)` when absent."""
    pos = np.searchsorted(vocabulary, values)
    pos_clipped = np.minimum(pos, len(vocabulary) - 1)
    found = (pos < len(vocabulary)) & (vocabulary[pos_clipped] == values)
    return np.where(found, pos, len(vocabulary)).astype(np.int32)


def load_ratings(cfg: RatingsDataConfig, *, seed: int, cache_dir: str) -> RatingsData:
    """Read, split and encode ratings as `cfg` says."""
    table = load_ratings_table(cfg.source, path=cfg.path, download=cfg.download, cache_dir=cache_dir)
    if table.ratings.empty:
        raise DataError(f"no ratings in {table.source}")
    train, val, test = split_ratings(table, cfg, seed=seed)
    if train.empty:
        raise DataError(f"the {cfg.split} split of {table.source} left no training ratings")
    train_split, val_split, test_split, user_ids, item_ids, unseen = encode(train, val, test)
    scale = (float(table.ratings["rating"].min()), float(table.ratings["rating"].max()))
    return RatingsData(train_split, val_split, test_split, user_ids, item_ids, table.titles, scale, table.source, unseen)
