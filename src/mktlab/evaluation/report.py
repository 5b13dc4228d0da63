"""`Report`: a run's final metrics, figures, tables and saved model, logged in one call."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import Any

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
    """

    metrics: dict[str, float] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    model: tuple[Any, dict[str, Any]] | None = None

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
        return self

    def close_figures(self) -> None:
        for figure in self.figures.values():
            plt.close(figure)

    def metrics_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"metric": list(self.metrics), "value": list(self.metrics.values())})
