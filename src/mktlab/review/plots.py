"""Figures of a sweep review. Each function returns a matplotlib Figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _log_scale(values: pd.Series) -> bool:
    """Positive numbers spanning at least a factor of 20 (learning rates, penalties) read better on a log axis."""
    values = values.dropna()
    return _is_numeric(values) and len(values) > 0 and values.min() > 0 and values.max() / values.min() >= 20


def _text(value: object) -> str:
    """`16.0` -> `16` (a row of mixed columns turns integers into floats)."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _better(mode: str) -> str:
    return "lower is better" if mode == "min" else "higher is better"


def metric_vs_params(frame: pd.DataFrame, params: Sequence[str], metric: str, mode: str):
    """The main metric against each swept parameter: every run as a dot, the mean per value as a line."""
    shown = [p for p in params if p != "seed"] or list(params)
    fig, axes = plt.subplots(1, max(len(shown), 1), figsize=(4.2 * max(len(shown), 1), 3.6), squeeze=False, sharey=True)
    for ax, param in zip(axes[0], shown):
        data = frame[[param, metric]].dropna()
        if _is_numeric(data[param]):
            x = data[param].astype(float)
            means = data.groupby(param)[metric].mean()
            ax.plot(means.index.astype(float), means.values, color="#4C72B0", lw=1.5, label="mean")
            if _log_scale(data[param]):
                ax.set_xscale("log")
        else:
            categories = sorted(data[param].astype(str).unique())
            x = data[param].astype(str).map({c: i for i, c in enumerate(categories)}).astype(float)
            means = data.assign(_x=x).groupby("_x")[metric].mean()
            ax.plot(means.index, means.values, color="#4C72B0", lw=1.5, label="mean")
            ax.set_xticks(range(len(categories)), categories)
        ax.scatter(x, data[metric], color="#DD8452", s=22, alpha=0.8, label="run", zorder=3)
        ax.set_xlabel(param)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(metric)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{metric} against each swept parameter ({_better(mode)})")
    fig.set_layout_engine("tight")
    return fig


def parallel_coordinates(frame: pd.DataFrame, params: Sequence[str], metric: str, mode: str):
    """One line per run across the swept parameters and the main metric, coloured by the metric."""
    data = frame[[*params, metric]].dropna(subset=[metric])
    columns = [*params, metric]
    fig, ax = plt.subplots(figsize=(1.9 * len(columns) + 2, 4.2))
    scaled = pd.DataFrame(index=data.index)
    for i, column in enumerate(columns):
        values = data[column]
        if _is_numeric(values):
            v = np.log10(values.astype(float)) if _log_scale(values) else values.astype(float)
            low, high = float(v.min()), float(v.max())
            scaled[column] = (v - low) / (high - low) if high > low else 0.5
            ax.text(i, -0.06, f"{values.min():.4g}", ha="center", va="top", fontsize=8)
            ax.text(i, 1.06, f"{values.max():.4g}", ha="center", va="bottom", fontsize=8)
        else:
            categories = sorted(values.astype(str).unique())
            position = {c: (k / (len(categories) - 1) if len(categories) > 1 else 0.5) for k, c in enumerate(categories)}
            scaled[column] = values.astype(str).map(position)
            for c, y in position.items():
                ax.text(i + 0.04, y, c, ha="left", va="center", fontsize=8)
    scores = data[metric].astype(float)
    # The best run gets the strongest colour whichever direction is better.
    quality = (scores.max() - scores) if mode == "min" else (scores - scores.min())
    quality = quality / quality.max() if quality.max() > 0 else quality * 0 + 1.0
    cmap = plt.get_cmap("viridis")
    for index in quality.sort_values().index:  # the best drawn last, on top
        ax.plot(range(len(columns)), scaled.loc[index, columns].values, color=cmap(quality[index]), alpha=0.85, lw=1.4)
    for i in range(len(columns)):
        ax.axvline(i, color="black", lw=0.8)
    ax.set_xticks(range(len(columns)), columns)
    ax.set_yticks([])
    ax.set_ylim(-0.15, 1.15)
    ax.set_xlim(-0.2, len(columns) - 0.6)
    fig.colorbar(plt.cm.ScalarMappable(cmap=cmap), ax=ax, ticks=[0, 1], label=f"{metric}").ax.set_yticklabels(
        [f"{scores.max() if mode == 'min' else scores.min():.4g}", f"{scores.min() if mode == 'min' else scores.max():.4g}"]
    )
    ax.set_title(f"Parallel coordinates: swept parameters and {metric} ({_better(mode)})")
    fig.set_layout_engine("tight")
    return fig


def overlaid_curves(histories: Mapping[str, pd.DataFrame], metric: str, *, title: str):
    """`{label: DataFrame(step, value)}` -> one line per run on the same axes."""
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    for label, history in histories.items():
        ax.plot(history["step"], history["value"], marker="o", ms=3, lw=1.4, label=label)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if histories:
        ax.legend(fontsize=7)
    fig.set_layout_engine("tight")
    return fig


def seed_spread(spread: pd.DataFrame, frame: pd.DataFrame, params: Sequence[str], metric: str, mode: str):
    """Mean ± standard deviation of the metric over seeds per setting, best first, seeds as dots."""
    keys = [p for p in params if p != "seed"]
    labels = [", ".join(f"{k}={_text(row[k])}" for k in keys) or "all runs" for _, row in spread.iterrows()]
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(labels) + 1.6))
    y = np.arange(len(labels))[::-1]
    ax.errorbar(spread[f"{metric}_mean"], y, xerr=spread[f"{metric}_std"].fillna(0), fmt="o", color="#4C72B0", capsize=4, label="mean ± std")
    for position, (_, row) in zip(y, spread.iterrows()):
        match = np.ones(len(frame), dtype=bool)
        for k in keys:
            match &= (frame[k] == row[k]).to_numpy()
        ax.scatter(frame.loc[match, metric], np.full(match.sum(), position), color="#DD8452", s=14, alpha=0.8, zorder=3)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel(metric)
    ax.set_title(f"{metric} over seeds ({_better(mode)}; dots: single seeds)")
    ax.grid(alpha=0.3, axis="x")
    fig.set_layout_engine("tight")
    return fig
