"""Targeting metrics a marketer reads: buyers reached when mailing the top-scored customers.

Customers are ranked by descending score; ties keep the customers' order (a stable sort),
so results do not depend on the sorting algorithm.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mktlab.evaluation.classification import binary_report


def ranked(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """The labels ordered by descending score (stable)."""
    order = np.argsort(-np.asarray(y_score, np.float64), kind="stable")
    return np.asarray(y_true).astype(np.int64)[order]


def top_size(n: int, fraction: float) -> int:
    """How many of `n` customers make up the top `fraction` (at least one when n > 0)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction}: expected a share in (0, 1]")
    return min(n, max(int(round(n * fraction)), 1)) if n else 0


def top_hits(y_true: np.ndarray, y_score: np.ndarray, fraction: float) -> int:
    """Buyers among the top `fraction` of customers by score (CoIL 2000: top 800 of 4000)."""
    labels = ranked(y_true, y_score)
    return int(labels[: top_size(len(labels), fraction)].sum())


def lift_at(y_true: np.ndarray, y_score: np.ndarray, fraction: float) -> float:
    """Buyer rate among the top `fraction` divided by the overall buyer rate (1 = random mailing)."""
    labels = ranked(y_true, y_score)
    k = top_size(len(labels), fraction)
    base = labels.mean() if len(labels) else 0.0
    return float(labels[:k].mean() / base) if k and base > 0 else float("nan")


def gains_curve(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative gains: (share of customers contacted, share of all buyers reached), from (0, 0)."""
    labels = ranked(y_true, y_score)
    n, total = len(labels), labels.sum()
    contacted = np.arange(n + 1) / max(n, 1)
    reached = np.r_[0, np.cumsum(labels)] / total if total else np.zeros(n + 1)
    return contacted, reached


def lift_curve(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative lift against the share of customers contacted (from the first customer on)."""
    contacted, reached = gains_curve(y_true, y_score)
    with np.errstate(divide="ignore", invalid="ignore"):
        return contacted[1:], reached[1:] / contacted[1:]


def percent(fraction: float) -> str:
    """0.2 -> "20" (metric-name suffix)."""
    return f"{fraction * 100:g}".replace(".", "_")


def response_report(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    top_fraction: float = 0.2,
    lift_fractions: Sequence[float] = (0.1, 0.2),
    prefix: str = "",
) -> dict[str, float]:
    """Classification metrics (ROC AUC, PR AUC, log loss, Brier, accuracy) plus targeting ones.

    Targeting metrics: `top<p>_hits` (buyers among the top p% by score), `top<p>_recall`
    (their share of all buyers), `lift_at_<p>` for each lift fraction, and `buyers`.
    """
    report = binary_report(y_true, y_score)
    tag = percent(top_fraction)
    buyers = int(np.asarray(y_true).sum())
    hits = top_hits(y_true, y_score, top_fraction)
    report[f"top{tag}_hits"] = hits
    report[f"top{tag}_recall"] = hits / buyers if buyers else float("nan")
    for fraction in lift_fractions:
        report[f"lift_at_{percent(fraction)}"] = lift_at(y_true, y_score, fraction)
    report["buyers"] = buyers
    return {f"{prefix}{k}": float(v) for k, v in report.items()}


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil's (1982) standard error of a ROC AUC from `positives` and `negatives` examples:
    how far a test split this size lets an AUC wander."""
    if positives < 1 or negatives < 1:
        return float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)) / (positives * negatives)
    return float(np.sqrt(max(variance, 0.0)))
