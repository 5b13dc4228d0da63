"""Figures every model shares. Each function returns a matplotlib Figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from mktlab.evaluation.classification import calibration_table
from mktlab.evaluation.marketing import gains_curve, lift_curve


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
    fig.set_layout_engine("tight")  # laid out when drawn, once: a figure nobody renders costs no layout
    return fig


def histogram(values: np.ndarray, *, xlabel: str, title: str, bins: int = 50):
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.hist(values, bins=bins, color="#4C72B0", alpha=0.85)
    ax.axvline(0, color="black", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title)
    fig.set_layout_engine("tight")
    return fig


def roc_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, title: str = "ROC curve"):
    """`{label: (y_true, y_score)}` -> ROC curves with their AUC in the legend."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    for label, (y_true, y_score) in curves.items():
        fpr, tpr, _ = roc_curve(y_true, y_score)
        ax.plot(fpr, tpr, label=f"{label} (AUC {roc_auc_score(y_true, y_score):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="random")
    return _finish(fig, ax, xlabel="false positive rate", ylabel="true positive rate", title=title)


def calibration_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, bins: int = 10, title: str = "Calibration"):
    """`{label: (y_true, y_score)}` -> observed rate against mean predicted probability."""
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    top = 0.0
    for label, (y_true, y_score) in curves.items():
        predicted, observed = calibration_table(y_true, y_score, bins=bins)
        ax.plot(predicted, observed, marker="o", ms=4, label=label)
        top = max(top, float(np.max(predicted)), float(np.max(observed)))
    ax.plot([0, top], [0, top], color="grey", ls="--", lw=1, label="perfectly calibrated")
    return _finish(fig, ax, xlabel="mean predicted probability", ylabel="observed rate", title=title)


CONTACTED = "share of customers contacted (best scores first)"


def _finish(fig, ax, *, xlabel: str, ylabel: str, title: str, mark: float | None = None):
    """Label a single-panel chart, mark a share on its x axis (e.g. the 20% a campaign mails), tighten it."""
    if mark:
        ax.axvline(mark, color="black", ls=":", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.set_layout_engine("tight")
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
    return _finish(fig, ax, xlabel="recall", ylabel="precision", title=title)


def gains_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, mark: float | None = None, title: str = "Cumulative gains"):
    """`{label: (y_true, y_score)}` -> share of positives reached against the share contacted, best first.

    `mark` draws a vertical line at that share (e.g. the 20% a campaign can mail).
    """
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    for label, (y_true, y_score) in curves.items():
        contacted, reached = gains_curve(y_true, y_score)
        at = f", {np.interp(mark, contacted, reached):.0%} at {mark:.0%}" if mark else ""
        ax.plot(contacted, reached, label=f"{label}{at}")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="random")
    return _finish(fig, ax, xlabel=CONTACTED, ylabel="share of buyers reached", title=title, mark=mark)


def lift_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, mark: float | None = None, title: str = "Lift"):
    """`{label: (y_true, y_score)}` -> cumulative lift (positive rate over the base rate) against the share contacted."""
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    for label, (y_true, y_score) in curves.items():
        contacted, lift = lift_curve(y_true, y_score)
        start = max(int(0.02 * len(contacted)), 1) - 1  # the first few customers give a jumpy, meaningless lift
        ax.plot(contacted[start:], lift[start:], label=label)
    ax.axhline(1.0, color="grey", ls="--", lw=1, label="random")
    return _finish(fig, ax, xlabel=CONTACTED, ylabel="cumulative lift", title=title, mark=mark)


def metric_by_bucket(
    frame, *, x: str, series: Sequence[str], count: str | None = None, xlabel: str, ylabel: str, title: str,
    flat: Mapping[str, float] | None = None, ax=None,
):
    """One line per column of `series` over the buckets in column `x` (kept in order).

    `count` adds the bucket sizes as grey bars on a second axis; `flat` draws reference
    values as dotted horizontal lines (e.g. a model that ignores the bucketed quantity).
    Draws into `ax` when given (to compose panels), else into a new figure.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
    else:
        fig = ax.figure
    positions = np.arange(len(frame))
    if count is not None:
        bars = ax.twinx()
        bars.bar(positions, frame[count], color="grey", alpha=0.2, width=0.6)
        bars.set_ylabel(count, color="grey")
        ax.set_zorder(bars.get_zorder() + 1)
        ax.patch.set_visible(False)
    for name in series:
        ax.plot(positions, frame[name], marker="o", ms=4, label=name)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, value) in enumerate((flat or {}).items(), start=len(series)):
        ax.axhline(value, ls=":", lw=1.2, color=colors[i % len(colors)], label=name)
    ax.set_xticks(positions, [str(v) for v in frame[x]])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.set_layout_engine("tight")
    return fig


def recommendation_popularity(popularity_by_label: Mapping[str, np.ndarray], coverage_by_label: Mapping[str, float], *,
                              title: str = "What gets recommended"):
    """Left: how popular the recommended items are (the training ratings of every recommended slot, log
    scale), one curve per recommender; right: the share of the catalogue each recommender ever shows."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1.6, 1]})
    largest = max((float(np.max(v)) for v in popularity_by_label.values() if len(v)), default=1.0)
    # log-spaced edges between whole numbers: every count falls in one bin, and no bin is narrower than one count
    bins = np.r_[0.5, np.unique(np.round(np.logspace(0, np.log10(largest + 1) + 0.05, 30))) + 0.5]
    for label, values in popularity_by_label.items():
        left.hist(np.asarray(values) + 1, bins=bins, histtype="step", lw=2, label=f"{label} (median {np.median(values):.0f})")
    left.set_xscale("log")
    left.set_xlabel("training ratings of the recommended item + 1")
    left.set_ylabel("recommended slots")
    left.set_title("popularity of recommended items")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    labels = list(coverage_by_label)
    percent = [100 * coverage_by_label[label] for label in labels]
    right.barh(labels, percent, color="#4C72B0")
    for y, value in enumerate(percent):
        right.text(value, y, f" {value:.1f}%", va="center", fontsize=8)
    right.set_xlabel("catalogue coverage (% of items in any list)")
    right.set_title("coverage")
    right.invert_yaxis()
    right.set_xlim(0, max(max(percent, default=0.0) * 1.3, 1.0))
    fig.suptitle(title)
    fig.set_layout_engine("tight")
    return fig
