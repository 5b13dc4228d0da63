"""Click-prediction metrics: ROC AUC, log loss, GAUC, calibration, AUC by bucket."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from mktlab.evaluation.classification import binary_report


def group_aucs(y_true: np.ndarray, y_score: np.ndarray, groups: np.ndarray) -> pd.DataFrame:
    """Per-group ROC AUC (ties count one half) and impressions, for groups with both classes.

    Rank-sum (Mann-Whitney) form computed for all groups at once: within a group,
    AUC = (sum of the positives' ranks - P(P+1)/2) / (P N), tied scores sharing their average rank.
    One sort by (group, score) and counts per group: a model's validation computes it every epoch.
    """
    groups, y_score = np.asarray(groups), np.asarray(y_score, np.float64)
    order = np.lexsort((y_score, groups))
    g, y, s = groups[order], np.asarray(y_true).astype(np.float64)[order], y_score[order]
    n = len(g)
    if n == 0:
        empty = np.zeros(0, np.int64)
        return pd.DataFrame({"impressions": empty, "positives": empty, "negatives": empty, "auc": np.zeros(0)}, index=pd.Index(g, name="g"))
    group_starts = np.r_[True, g[1:] != g[:-1]]
    tie_starts = group_starts | np.r_[True, s[1:] != s[:-1]]
    group_id, tie_id = np.cumsum(group_starts) - 1, np.cumsum(tie_starts) - 1
    rank = np.arange(n) - np.flatnonzero(group_starts)[group_id] + 1.0  # 1-based, within the group
    first = np.flatnonzero(tie_starts)
    last = np.r_[first[1:], n] - 1
    rank = ((rank[first] + rank[last]) / 2)[tie_id]  # a run of tied scores shares its average rank
    stats = pd.DataFrame(
        {"impressions": np.bincount(group_id), "positives": np.bincount(group_id, weights=y).astype(np.int64),
         "pos_rank": np.bincount(group_id, weights=rank * y)},
        index=pd.Index(g[group_starts], name="g"),
    )
    stats["negatives"] = stats["impressions"] - stats["positives"]
    stats = stats[(stats["positives"] > 0) & (stats["negatives"] > 0)]
    p, n_neg = stats["positives"].astype(np.float64), stats["negatives"].astype(np.float64)
    stats["auc"] = (stats["pos_rank"] - p * (p + 1) / 2) / (p * n_neg)
    return stats[["impressions", "positives", "negatives", "auc"]]


def gauc(y_true: np.ndarray, y_score: np.ndarray, groups: np.ndarray) -> tuple[float, int]:
    """Group AUC: per-user AUC weighted by the user's impressions, over users with both classes.

    Returns:
        (GAUC, number of users it averages over); NaN and 0 when no user has both classes.
    """
    stats = group_aucs(y_true, y_score, groups)
    if stats.empty:
        return float("nan"), 0
    return float(np.average(stats["auc"], weights=stats["impressions"])), len(stats)


def click_report(y_true: np.ndarray, y_score: np.ndarray, groups: np.ndarray, *, prefix: str = "") -> dict[str, float]:
    """`binary_report` (ROC AUC, PR AUC, log loss, Brier, accuracy) plus GAUC (and its users)
    and calibration in the large: mean predicted probability against the observed CTR."""
    if len(y_true) == 0:
        return {}
    y_score = np.clip(np.asarray(y_score, np.float64), 1e-7, 1 - 1e-7)
    group_auc, users = gauc(y_true, y_score, groups)
    report = {
        **binary_report(y_true, y_score),
        "gauc": group_auc,
        "gauc_users": users,
        "mean_predicted": float(np.mean(y_score)),
        "observed_ctr": float(np.mean(y_true)),
    }
    return {f"{prefix}{k}": v for k, v in report.items()}


def auc_by_bucket(
    y_true: np.ndarray, scores: Mapping[str, np.ndarray], buckets: np.ndarray, *, edges: list[int]
) -> pd.DataFrame:
    """ROC AUC of each scorer within buckets of an integer (e.g. history length).

    Args:
        y_true: clicks.
        scores: scorer name -> scores.
        buckets: the integer each impression is bucketed by.
        edges: bucket lower bounds, ascending; the last bucket is open-ended.

    Returns:
        One row per non-empty bucket: `bucket` (label), `impressions`, `ctr`, and one AUC column per scorer
        (NaN where the bucket holds a single class).
    """
    y_true = np.asarray(y_true).astype(np.int64)
    index = np.searchsorted(np.asarray(edges), np.asarray(buckets), side="right") - 1
    rows = []
    for b, low in enumerate(edges):
        members = index == b
        if not members.any():
            continue
        high = edges[b + 1] - 1 if b + 1 < len(edges) else None
        label = f"{low}" if high == low else (f"{low}-{high}" if high is not None else f"{low}+")
        row: dict[str, float | str] = {"bucket": label, "impressions": int(members.sum()), "ctr": float(y_true[members].mean())}
        both = len(np.unique(y_true[members])) == 2
        for name, score in scores.items():
            row[name] = float(roc_auc_score(y_true[members], np.asarray(score)[members])) if both else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- baselines


def smoothed_ctr(clicks: np.ndarray, impressions: np.ndarray, *, prior: float, strength: float) -> np.ndarray:
    """(clicks + strength * prior) / (impressions + strength): a CTR shrunk towards `prior`."""
    return (np.asarray(clicks, np.float64) + strength * prior) / (np.asarray(impressions, np.float64) + strength)


def _counts(keys: np.ndarray, clicks: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"key": keys, "clicks": clicks}).groupby("key")["clicks"].agg(["sum", "size"])


def _lookup_counts(table: pd.DataFrame, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = table.reindex(keys)
    return rows["sum"].fillna(0).to_numpy(np.float64), rows["size"].fillna(0).to_numpy(np.float64)


def click_features(
    train_users: np.ndarray, train_items: np.ndarray, train_clicks: np.ndarray, users: np.ndarray, items: np.ndarray,
    *, strength: float, clicks: np.ndarray | None = None,
) -> np.ndarray:
    """Simple user/item features of impressions, from the training impressions' counts.

    Columns: logit of the user's smoothed CTR, logit of the item's smoothed CTR, log(1 +
    user impressions), log(1 + item impressions). Pass `clicks` when scoring the
    training impressions themselves: each then leaves its own click out of the counts
    (otherwise a rare item's CTR would contain its label).
    """
    prior = float(np.mean(train_clicks))
    features = []
    for train_keys, keys in ((train_users, users), (train_items, items)):
        table = _counts(train_keys, train_clicks)
        total, seen = _lookup_counts(table, keys)
        if clicks is not None:
            total, seen = total - clicks, seen - 1
        ctr = np.clip(smoothed_ctr(total, seen, prior=prior, strength=strength), 1e-4, 1 - 1e-4)
        features.append((np.log(ctr / (1 - ctr)), np.log1p(seen)))
    (user_logit, user_log_n), (item_logit, item_log_n) = features
    return np.column_stack([user_logit, item_logit, user_log_n, item_log_n])


FEATURE_NAMES = ["user_ctr_logit", "item_ctr_logit", "log_user_impressions", "log_item_impressions"]


def popularity_scores(train_items: np.ndarray, train_clicks: np.ndarray, items: np.ndarray, *, strength: float) -> np.ndarray:
    """The item-CTR baseline: each item's smoothed training CTR (the global CTR for unseen items)."""
    total, seen = _lookup_counts(_counts(train_items, train_clicks), items)
    return smoothed_ctr(total, seen, prior=float(np.mean(train_clicks)), strength=strength)


def logistic_baseline(
    train_users: np.ndarray, train_items: np.ndarray, train_clicks: np.ndarray, *, strength: float, seed: int = 0
):
    """A standardized logistic regression on `click_features`, fitted on the training impressions.

    Returns `score(users, items) -> click probabilities` and the fitted pipeline.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = click_features(train_users, train_items, train_clicks, train_users, train_items, strength=strength, clicks=train_clicks)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    pipeline.fit(x, np.asarray(train_clicks).astype(np.int64))

    def score(users: np.ndarray, items: np.ndarray) -> np.ndarray:
        features = click_features(train_users, train_items, train_clicks, users, items, strength=strength)
        return pipeline.predict_proba(features)[:, 1]

    return score, pipeline
