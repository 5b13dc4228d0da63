"""`Report`: a run's final metrics, figures, tables and saved model, logged in one call."""

from __future__ import annotations

import dataclasses
import functools
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import matplotlib.pyplot as plt
import pandas as pd


@dataclass
class Report:
    """What an evaluation produced; `log(tracker)` puts all of it into the run.

    Attributes:
        metrics: final scalar metrics, e.g. `test_rmse`, `baseline_test_auc`.
        figures: name -> matplotlib Figure, logged as `figures/<name>.png`.
        tables: file name -> DataFrame, logged as CSV.
        model: optional `(module, constructor kwargs)` saved under the artifact path `model/`.
        files: artifact path -> file content (bytes), e.g. `samples/final.png`.
    """

    metrics: dict[str, float] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    model: tuple[Any, dict[str, Any]] | None = None
    files: dict[str, bytes] = field(default_factory=dict)

    def log(self, tracker: Any) -> "Report":
        if tracker is None:
            return self
        tracker.log_metrics(self.metrics)
        for name, figure in self.figures.items():
            tracker.log_figure(figure, f"figures/{name}.png")
        for name, frame in self.tables.items():
            tracker.log_table(frame, name)
        if self.model is not None:
            from mktlab.train.checkpoint import save_module

            module, kwargs = self.model
            with tempfile.TemporaryDirectory() as tmp:
                tracker.log_artifacts(save_module(module, tmp, kwargs=kwargs), "model")
        if self.files:
            from pathlib import Path

            with tempfile.TemporaryDirectory() as tmp:
                for name, content in self.files.items():
                    local = Path(tmp, name)
                    local.parent.mkdir(parents=True, exist_ok=True)
                    local.write_bytes(content)
                tracker.log_artifacts(tmp)
        return self

    def close_figures(self) -> None:
        for figure in self.figures.values():
            plt.close(figure)

    def metrics_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"metric": list(self.metrics), "value": list(self.metrics.values())})


def aggregate(reports: list[Report]) -> Report:
    """Mean and spread of each metric over seeds (`<metric>` and `<metric>_std`); the first seed's
    figures, tables, files and model (so the parent run, too, holds a loadable `model/`)."""
    keys = [k for k in reports[0].metrics if all(k in r.metrics for r in reports)]
    metrics: dict[str, float] = {}
    for key in keys:
        values = np.array([r.metrics[key] for r in reports], dtype=np.float64)
        metrics[key] = float(values.mean())
        metrics[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    metrics["num_seeds"] = len(reports)
    first = reports[0]
    return Report(metrics=metrics, figures=first.figures, tables=first.tables, model=first.model, files=first.files)


def per_seed(evaluate: Callable[..., Report]) -> Callable[..., Report]:
    """Let a model's `evaluate(cfg, result, data, ...)` accept a `SeedResults`.

    Each seed is evaluated and its report logged into its child run (which is then
    closed); the returned report holds the mean and spread over seeds, for the parent.
    """

    @functools.wraps(evaluate)
    def wrapper(cfg: Any, result: Any, data: Any, *args: Any, **kwargs: Any) -> Report:
        from mktlab.train.loop import SeedResults

        if not isinstance(result, SeedResults):
            return evaluate(cfg, result, data, *args, **kwargs)
        reports = []
        for seed, fitted, child in zip(result.seeds, result.results, result.trackers):
            report = evaluate(dataclasses.replace(cfg, seed=seed), fitted, data, *args, **kwargs)
            if child is not None:
                report.log(child)
                child.finish()
            if reports:
                report.close_figures()
            reports.append(report)
        return aggregate(reports)

    return wrapper
