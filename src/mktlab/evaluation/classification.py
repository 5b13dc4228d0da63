"""Binary-classification metrics (scores are probabilities of the positive class)."""

from __future__ import annotations

from typing import Any

import numpy as np


def binary_report(y_true: np.ndarray, y_score: np.ndarray, *, prefix: str = "") -> dict[str, float]:
    """ROC AUC, PR AUC (average precision), log loss, Brier score, accuracy at 0.5."""
    from sklearn import metrics as skm  # here, not at import: a kernel of a model without classes starts 0.8 s sooner

    y_true = np.asarray(y_true).astype(int)
    y_score = np.clip(np.asarray(y_score, np.float64), 1e-7, 1 - 1e-7)
    both = len(np.unique(y_true)) == 2
    report = {
        "roc_auc": float(skm.roc_auc_score(y_true, y_score)) if both else float("nan"),
        "pr_auc": float(skm.average_precision_score(y_true, y_score)) if both else float("nan"),
        "log_loss": float(skm.log_loss(y_true, y_score, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y_true, y_score)),
        "accuracy": float(skm.accuracy_score(y_true, y_score >= 0.5)),
    }
    return {f"{prefix}{k}": v for k, v in report.items()}


def calibration_table(y_true: np.ndarray, y_score: np.ndarray, *, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(mean predicted, observed rate) per quantile bin of the score."""
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(np.asarray(y_true).astype(int), np.asarray(y_score), n_bins=bins, strategy="quantile")
    return predicted, observed


def binary_metrics_traced(y_true: Any, y_score: Any) -> dict[str, Any]:
    """`binary_report`'s ROC AUC, PR AUC, log loss and Brier score as JAX operations.

    The validation of a training epoch calls this inside its jitted program, so the
    metrics come back as four scalars with no scikit-learn input checks per epoch (those
    cost more than the MLP's epoch itself); it also works under `jax.vmap`. Counts are
    float32 sums, exact up to 2**24 rows.

    The definitions are scikit-learn's: scores clipped to [1e-7, 1 - 1e-7] as in
    `binary_report`; tied scores count one half in the ROC AUC (Mann-Whitney) and form
    one threshold of the precision-recall curve; both AUCs are NaN without both classes.
    Results match `binary_report` to float32 precision (tests hold them to it).
    """
    import jax.numpy as jnp

    raw = jnp.asarray(y_score, jnp.float32)
    y_score = jnp.clip(raw, 1e-7, 1 - 1e-7)
    y = jnp.asarray(y_true).astype(jnp.float32)
    n = y.shape[-1]
    order = jnp.argsort(y_score)
    scores, labels = y_score[order], y[order]
    below = jnp.searchsorted(scores, scores, side="left")  # rows scored strictly lower than each row
    at_most = jnp.searchsorted(scores, scores, side="right")  # rows scored lower or tied
    zero = jnp.zeros(1, jnp.float32)
    negatives_before = jnp.concatenate([zero, jnp.cumsum(1 - labels)])  # [k]: negatives among the k lowest
    positives_before = jnp.concatenate([zero, jnp.cumsum(labels)])
    positives = positives_before[-1]
    negatives = n - positives
    # each positive beats the negatives scored lower and ties half of those scored the same
    wins = negatives_before[below] + 0.5 * (negatives_before[at_most] - negatives_before[below])
    both = (positives > 0) & (negatives > 0)
    roc_auc = jnp.where(both, jnp.sum(labels * wins) / jnp.maximum(positives * negatives, 1), jnp.nan)
    # each positive adds 1/P recall at the threshold of its score, where precision counts every row scored at least as high
    precision = (positives - positives_before[below]) / (n - below)
    pr_auc = jnp.where(both, jnp.sum(labels * precision) / jnp.maximum(positives, 1), jnp.nan)
    # 1 - 1e-7 is no float32 number, so the negatives' side clips 1 - score rather than the score
    log_loss = -jnp.mean(y * jnp.log(y_score) + (1 - y) * jnp.log(jnp.clip(1 - raw, 1e-7, 1 - 1e-7)))
    brier = jnp.mean((y_score - y) ** 2)
    return {"roc_auc": roc_auc, "pr_auc": pr_auc, "log_loss": log_loss, "brier": brier}
