"""Item feature columns of a click log: what the training impressions say about each target item.

Within one user, a click model ranks candidates mostly by what it knows of each item. Two
columns per impression, both from the training split and smoothed towards the training CTR
so that a handful of impressions says little:

- `item_ctr_logit`: logit((clicks + strength * prior) / (impressions + strength));
- `log_item_impressions`: log(1 + impressions).

A held-out impression (and a served request) sees all training impressions, as the item-CTR
and logistic baselines do. A training impression sees those of the users outside its own
fold (`ITEM_FOLDS` folds of users, counts rescaled to the whole split), so neither its own
click nor any other click of its user enters its item's columns. Columns are standardized as
on the training impressions (log counts reach 6-7 and would swamp the rest of the input).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

ITEM_FEATURES = ("item_ctr_logit", "log_item_impressions")
ITEM_FOLDS = 5  # training impressions take their items' counts from the other folds of users


def smoothed_logit(clicks: np.ndarray, impressions: np.ndarray, *, prior: float, strength: float) -> np.ndarray:
    """logit((clicks + strength * prior) / (impressions + strength)), clipped away from 0 and 1."""
    ctr = (np.asarray(clicks, np.float64) + strength * prior) / (np.asarray(impressions, np.float64) + strength)
    ctr = np.clip(ctr, 1e-4, 1 - 1e-4)
    return np.log(ctr / (1 - ctr))


def lookup(ids: np.ndarray, columns: tuple[np.ndarray, ...], keys: np.ndarray) -> tuple[np.ndarray, ...]:
    """The rows of `columns` (aligned with the sorted `ids`) for each key; zeros for keys not among the ids."""
    keys = np.asarray(keys, np.int64)
    where = np.searchsorted(ids, keys)
    found = where < len(ids)
    found[found] = ids[where[found]] == keys[found]
    where = np.where(found, where, len(ids))  # unknown keys read a trailing zero
    return tuple(np.r_[np.asarray(column, np.float64), 0.0][where] for column in columns)


def item_counts(known_items: np.ndarray, known_clicks: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(clicks, impressions) of each queried item among the known records."""
    ids, position = np.unique(np.asarray(known_items, np.int64), return_inverse=True)
    clicks = np.bincount(position, weights=np.asarray(known_clicks, np.float64), minlength=len(ids))
    return lookup(ids, (clicks, np.bincount(position, minlength=len(ids))), items)


def user_folds(users: np.ndarray, folds: int = ITEM_FOLDS) -> np.ndarray:
    """Each user's fold, `0..folds-1`: the rank of the user id modulo `folds` (no randomness)."""
    return (np.unique(np.asarray(users), return_inverse=True)[1] % folds).astype(np.int32)


def columns(clicks: np.ndarray, impressions: np.ndarray, *, prior: float, strength: float) -> np.ndarray:
    """(n, 2) raw columns: smoothed CTR logit and log(1 + impressions)."""
    return np.column_stack([
        smoothed_logit(clicks, impressions, prior=prior, strength=strength), np.log1p(np.asarray(impressions, np.float64)),
    ])


def out_of_fold_columns(train_users: np.ndarray, train_items: np.ndarray, train_clicks: np.ndarray, *, prior: float,
                        strength: float, query_users: np.ndarray | None = None, query_items: np.ndarray | None = None) -> np.ndarray:
    """(n, 2) raw columns of the training impressions themselves (or of queries made by training users, `query_users`
    and `query_items`), each from the training impressions of the other folds of users."""
    if query_users is None:
        query_users, query_items = train_users, train_items
    ids = np.unique(np.asarray(train_users))
    fold = user_folds(train_users)
    query_fold = (np.searchsorted(ids, np.asarray(query_users)) % ITEM_FOLDS).astype(np.int32)  # the same rank modulo folds
    clicks, impressions = np.zeros(len(query_items)), np.zeros(len(query_items))
    scale = ITEM_FOLDS / (ITEM_FOLDS - 1)
    for f in range(ITEM_FOLDS):
        mine, others = query_fold == f, fold != f
        c, n = item_counts(train_items[others], train_clicks[others], np.asarray(query_items)[mine])
        clicks[mine], impressions[mine] = c * scale, n * scale
    return columns(clicks, impressions, prior=prior, strength=strength)


@dataclass(frozen=True)
class ItemFeatures:
    """The fitted item columns: each training item's counts and the columns' standardization (saved with a served model)."""

    prior: float  # the training CTR every smoothed rate shrinks towards
    strength: float  # prior impressions behind each smoothed rate
    item_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # training items (sorted original ids)
    item_clicks: np.ndarray = field(default_factory=lambda: np.zeros(0))
    item_impressions: np.ndarray = field(default_factory=lambda: np.zeros(0))
    center: np.ndarray = field(default_factory=lambda: np.zeros(len(ITEM_FEATURES)))
    scale: np.ndarray = field(default_factory=lambda: np.ones(len(ITEM_FEATURES)))

    @classmethod
    def fit(cls, train_users: np.ndarray, train_items: np.ndarray, train_clicks: np.ndarray, *, strength: float) -> ItemFeatures:
        """Counts of the training impressions; standardization of their own (out-of-fold) columns."""
        ids, position = np.unique(np.asarray(train_items, np.int64), return_inverse=True)
        clicks = np.bincount(position, weights=np.asarray(train_clicks, np.float64), minlength=len(ids))
        prior = float(np.mean(train_clicks)) if len(train_clicks) else 0.5
        spec = cls(prior=prior, strength=strength, item_ids=ids, item_clicks=clicks,
                   item_impressions=np.bincount(position, minlength=len(ids)).astype(np.float64))
        if len(train_items) < 2:
            return spec
        raw = out_of_fold_columns(train_users, train_items, train_clicks, prior=prior, strength=strength)
        return replace(spec, center=raw.mean(axis=0), scale=np.maximum(raw.std(axis=0), 1e-6))

    def standardize(self, raw: np.ndarray) -> np.ndarray:
        return ((raw - self.center) / self.scale).astype(np.float32)

    def __call__(self, items: np.ndarray) -> np.ndarray:
        """(n, 2) float32 standardized columns of held-out impressions or requests (original item ids)."""
        clicks, impressions = lookup(self.item_ids, (self.item_clicks, self.item_impressions), items)
        return self.standardize(columns(clicks, impressions, prior=self.prior, strength=self.strength))

    def training(self, train_users: np.ndarray, train_items: np.ndarray, train_clicks: np.ndarray, *,
                 query_users: np.ndarray | None = None, query_items: np.ndarray | None = None) -> np.ndarray:
        """(n, 2) float32 standardized columns of the training impressions (or of `query_items` shown to the training
        users `query_users`, e.g. sampled negatives), each from the other folds of users."""
        return self.standardize(out_of_fold_columns(train_users, train_items, train_clicks, prior=self.prior, strength=self.strength,
                                                    query_users=query_users, query_items=query_items))

    def to_json(self) -> dict:
        return {"prior": self.prior, "strength": self.strength, "item_ids": self.item_ids.tolist(),
                "item_clicks": self.item_clicks.tolist(), "item_impressions": self.item_impressions.tolist(),
                "center": self.center.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_json(cls, spec: dict) -> ItemFeatures:
        return cls(prior=float(spec["prior"]), strength=float(spec["strength"]), item_ids=np.asarray(spec["item_ids"], np.int64),
                   item_clicks=np.asarray(spec["item_clicks"], np.float64), item_impressions=np.asarray(spec["item_impressions"], np.float64),
                   center=np.asarray(spec["center"], np.float64), scale=np.asarray(spec["scale"], np.float64))
