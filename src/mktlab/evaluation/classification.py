"""Binary-classification metrics (scores are probabilities of the positive class)."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def binary_report(y_true: np.ndarray, y_score: np.ndarray, *, prefix: str = "") -> dict[str, float]:
    """ROC AUC, PR AUC (average precision), log loss, Brier score, accuracy at 0.5."""
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
