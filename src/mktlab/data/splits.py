"""Splits shared by every data set: seeded random, stratified, and per-user temporal.

Each returns index arrays (train, val, test) into the records it was given.
"""

from __future__ import annotations

import numpy as np

Split = tuple[np.ndarray, np.ndarray, np.ndarray]


def random_split(n: int, *, val_frac: float, test_frac: float, seed: int) -> Split:
    """Seeded random partition of `n` records."""
    _check_fractions(val_frac, test_frac)
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_val = int(round(n * test_frac)), int(round(n * val_frac))
    return np.sort(order[n_test + n_val :]), np.sort(order[n_test : n_test + n_val]), np.sort(order[:n_test])


def stratified_split(labels: np.ndarray, *, val_frac: float, test_frac: float, seed: int) -> Split:
    """Seeded random partition keeping each label's share in every part."""
    _check_fractions(val_frac, test_frac)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for value in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == value))
        n_test, n_val = int(round(len(members) * test_frac)), int(round(len(members) * val_frac))
        parts[0].append(members[n_test + n_val :])
        parts[1].append(members[n_test : n_test + n_val])
        parts[2].append(members[:n_test])
    return tuple(np.sort(np.concatenate(p)) for p in parts)  # type: ignore[return-value]


def temporal_split_per_user(users: np.ndarray, timestamps: np.ndarray, *, val_per_user: int, test_per_user: int) -> Split:
    """Each user's last `test_per_user` records are test, the `val_per_user` before them validation.

    Users with no more than `val_per_user + test_per_user` records keep them all in
    training, so every held-out record belongs to a user seen in training. Ties in time
    keep the records' order.
    """
    if val_per_user < 0 or test_per_user < 0:
        raise ValueError("val_per_user and test_per_user must be >= 0")
    order = np.lexsort((np.arange(len(users)), timestamps, users))  # by user, then time, then position
    sorted_users = users[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_users)) + 1]
    counts = np.diff(np.r_[starts, len(users)])
    rank_from_end = np.arange(len(users)) - np.repeat(starts + counts, counts)  # -1 for each user's last record
    eligible = np.repeat(counts > val_per_user + test_per_user, counts)
    is_test = eligible & (rank_from_end >= -test_per_user)
    is_val = eligible & ~is_test & (rank_from_end >= -(test_per_user + val_per_user))
    role = np.zeros(len(users), dtype=np.int8)
    role[order[is_val]] = 1
    role[order[is_test]] = 2
    return np.flatnonzero(role == 0), np.flatnonzero(role == 1), np.flatnonzero(role == 2)


def subsample(n: int, size: int | None, *, seed: int) -> np.ndarray:
    """Sorted indices of a seeded sample of `size` of `n` records (all when size is None or >= n)."""
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def _check_fractions(val_frac: float, test_frac: float) -> None:
    if not (0 <= val_frac < 1 and 0 <= test_frac < 1 and val_frac + test_frac < 1):
        raise ValueError(f"split fractions val={val_frac}, test={test_frac} must be in [0, 1) and sum below 1")


def time_cutoff_split(timestamps: np.ndarray, *, val_frac: float, test_frac: float) -> Split:
    """A global time cut-off: the latest `test_frac` of records are test, the `val_frac` before them validation.

    The cut-offs are timestamps (quantiles of the records' times), so records at the
    same instant always fall on the same side and nothing in training happens after
    anything held out.
    """
    _check_fractions(val_frac, test_frac)
    n = len(timestamps)
    ordered = np.sort(timestamps)
    role = np.zeros(n, dtype=np.int8)
    if n and test_frac > 0:
        role[timestamps >= ordered[min(int(n * (1 - test_frac)), n - 1)]] = 2
    if n and val_frac > 0:
        val_cut = ordered[min(int(n * (1 - test_frac - val_frac)), n - 1)]
        role[(timestamps >= val_cut) & (role == 0)] = 1
    return np.flatnonzero(role == 0), np.flatnonzero(role == 1), np.flatnonzero(role == 2)
