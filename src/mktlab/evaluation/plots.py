"""Figures every model shares. Each function returns a matplotlib Figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np


def learning_curves(history: Sequence[Mapping[str, float]], *, best_epoch: int | None = None, title: str = "Learning curves"):
    """Training loss and every validation metric against the epoch, one panel each."""
    epochs = [row["epoch"] for row in history]
    keys = [k for k in history[0] if k != "epoch"] if history else []
    train_keys = [k for k in keys if k.startswith("train_")]
    val_keys = [k for k in keys if k.startswith("val_")]
    panels = [("training", train_keys), ("validation", val_keys)]
    panels = [(name, ks) for name, ks in panels if ks]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5.5 * max(len(panels), 1), 3.8), squeeze=False)
    for ax, (name, ks) in zip(axes[0], panels):
        for k in ks:
            ax.plot(epochs, [row.get(k, np.nan) for row in history], marker="o", ms=3, label=k)
        if best_epoch:
            ax.axvline(best_epoch, color="grey", ls="--", lw=1, label=f"best epoch ({best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def histogram(values: np.ndarray, *, xlabel: str, title: str, bins: int = 50):
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.hist(values, bins=bins, color="#4C72B0", alpha=0.85)
    ax.axvline(0, color="black", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def roc_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, title: str = "ROC curve"):
    """`{label: (y_true, y_score)}` -> ROC curves with their AUC in the legend."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    for label, (y_true, y_score) in curves.items():
        fpr, tpr, _ = roc_curve(y_true, y_score)
        ax.plot(fpr, tpr, label=f"{label} (AUC {roc_auc_score(y_true, y_score):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="random")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def calibration_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, bins: int = 10, title: str = "Calibration"):
    """`{label: (y_true, y_score)}` -> observed rate against mean predicted probability."""
    from mktlab.evaluation.classification import calibration_table

    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    top = 0.0
    for label, (y_true, y_score) in curves.items():
        predicted, observed = calibration_table(y_true, y_score, bins=bins)
        ax.plot(predicted, observed, marker="o", ms=4, label=label)
        top = max(top, float(np.max(predicted)), float(np.max(observed)))
    ax.plot([0, top], [0, top], color="grey", ls="--", lw=1, label="perfectly calibrated")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def pr_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, title: str = "Precision-recall curve"):
    """`{label: (y_true, y_score)}` -> precision against recall, average precision in the legend."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    base = None
    for label, (y_true, y_score) in curves.items():
        precision, recall, _ = precision_recall_curve(y_true, y_score)
        ax.plot(recall, precision, label=f"{label} (AP {average_precision_score(y_true, y_score):.3f})")
        base = float(np.mean(y_true))
    if base is not None:
        ax.axhline(base, color="grey", ls="--", lw=1, label=f"random ({base:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def gains_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, mark: float | None = None, title: str = "Cumulative gains"):
    """`{label: (y_true, y_score)}` -> share of positives reached against the share contacted, best first.

    `mark` draws a vertical line at that share (e.g. the 20% a campaign can mail).
    """
    from mktlab.evaluation.marketing import gains_curve

    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    for label, (y_true, y_score) in curves.items():
        contacted, reached = gains_curve(y_true, y_score)
        at = f", {np.interp(mark, contacted, reached):.0%} at {mark:.0%}" if mark else ""
        ax.plot(contacted, reached, label=f"{label}{at}")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="random")
    if mark:
        ax.axvline(mark, color="black", ls=":", lw=1)
    ax.set_xlabel("share of customers contacted (best scores first)")
    ax.set_ylabel("share of buyers reached")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def lift_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, mark: float | None = None, title: str = "Lift"):
    """`{label: (y_true, y_score)}` -> cumulative lift (positive rate over the base rate) against the share contacted."""
    from mktlab.evaluation.marketing import lift_curve

    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    for label, (y_true, y_score) in curves.items():
        contacted, lift = lift_curve(y_true, y_score)
        start = max(int(0.02 * len(contacted)), 1) - 1  # the first few customers give a jumpy, meaningless lift
        ax.plot(contacted[start:], lift[start:], label=label)
    ax.axhline(1.0, color="grey", ls="--", lw=1, label="random")
    if mark:
        ax.axvline(mark, color="black", ls=":", lw=1)
    ax.set_xlabel("share of customers contacted (best scores first)")
    ax.set_ylabel("cumulative lift")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
