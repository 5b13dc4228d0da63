"""`Report`: what an evaluation produced (final metrics, figures, tables, files, the model to save).

A Report is plain data; `mktlab.tracking.log_report` puts all of it into a run.
"""

from __future__ import annotations

import base64
import io
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

# How a report's figures are rendered, once: the PNG logged to the run is the one the notebook shows.
PNG_DPI = 120


def render_png(figure: Any) -> bytes:
    """A matplotlib figure as PNG bytes, as mktlab logs it (`PNG_DPI`). A figure with a layout engine
    (mktlab's own set "tight") is drawn once, at its size; any other is cropped to what is drawn,
    which takes a second drawing."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=PNG_DPI, bbox_inches=None if figure.get_layout_engine() else "tight")
    return buffer.getvalue()


def alt_text(name: str, figure: Any) -> str:
    """A figure's text alternative: its name and its panels' titles (screen readers, the HTML export)."""
    titles = [axes.get_title() for axes in figure.get_axes() if axes.get_title()]
    return "; ".join([name.replace("_", " "), *titles])


# The output a figure the runner draws later shows until then (`Report.show`, `mktlab.tracking.figure_handoff`).
PENDING_FIGURE_MIME = "application/vnd.mktlab.pending-figure+json"


def png_output(png: bytes, figure_dpi: float, alt: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A rendered figure as a notebook output's data and metadata: the PNG, shown at the size the figure
    itself would have (`figure_dpi`), with its text alternative."""
    width = struct.unpack(">I", png[16:20])[0]  # the PNG header's pixel width
    data = {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": f"[figure: {alt}]"}
    return data, {"image/png": {"width": round(width * figure_dpi / PNG_DPI), "alt": alt}}


def pending_output(key: str, alt: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The output of a figure handed to the runner (`key`), which the runner replaces by `png_output`."""
    return {PENDING_FIGURE_MIME: {"key": key}, "text/plain": f"[figure: {alt}; drawn as the run is recorded]"}, {
        PENDING_FIGURE_MIME: {"alt": alt}}


@dataclass
class Report:
    """What an evaluation produced.

    Attributes:
        metrics: final scalar metrics, e.g. `test_rmse`, `baseline_test_auc`.
        figures: name -> matplotlib Figure, logged as `figures/<name>.png`.
        tables: file name -> DataFrame, logged as CSV.
        model: optional `(module, constructor kwargs)` saved under the artifact path `model/`.
        files: artifact path -> file content (bytes), e.g. `samples/final.png`.
        images: figure name -> the PNG logged for it (`mktlab.tracking.log_report` fills it), which
            `show` displays instead of drawing the figure again.
        handed_off: figure name -> its key, for a figure the runner draws and logs after the notebook
            (`mktlab.tracking.figure_handoff`); `show` leaves a place the runner fills with its PNG.
    """

    metrics: dict[str, float] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    model: tuple[Any, dict[str, Any]] | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    images: dict[str, bytes] = field(default_factory=dict)
    handed_off: dict[str, str] = field(default_factory=dict)

    def show(self, *names: str) -> None:
        """Display the named figures in the notebook: the PNG logged to the run where there is one (the
        figure is drawn once per run, not twice), shown at the size the figure itself would have; a figure
        the runner draws gets its place, which the runner fills with that same PNG."""
        from IPython.display import display

        for name in names:
            figure, png, key = self.figures[name], self.images.get(name), self.handed_off.get(name)
            if png is None and key is None:
                display(figure)
                continue
            alt = alt_text(name, figure)
            data, metadata = png_output(png, figure.dpi, alt) if png is not None else pending_output(key, alt)
            display(data, raw=True, metadata=metadata)

    def close_figures(self) -> None:
        import matplotlib.pyplot as plt  # here: the runner logs reports and never draws

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
