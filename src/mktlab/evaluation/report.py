"""`Report`: what an evaluation produced (final metrics, figures, tables, files, the model to save).

A Report is plain data; `mktlab.tracking.log_report` puts all of it into a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


@dataclass
class Report:
    """What an evaluation produced.

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
