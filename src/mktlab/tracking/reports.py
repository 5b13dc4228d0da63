"""Logging a `Report` into a run: metrics, figures, tables, files and the saved module."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from mktlab.evaluation.report import Report
from mktlab.tracking.figure_handoff import hand_off
from mktlab.train.checkpoint import save_module


def log_report(tracker: Any, report: Report) -> Report:
    """Put everything `report` holds into the tracker's run; returns the report. A figure is drawn and
    logged here, or handed to the runner to draw and log after the notebook (`figure_handoff`)."""
    if tracker is None:
        return report
    tracker.log_metrics(report.metrics)
    for name, figure in report.figures.items():
        artifact_file = f"figures/{name}.png"
        key = hand_off(tracker, figure, artifact_file)
        if key is None:
            report.images[name] = tracker.log_figure(figure, artifact_file)
        else:
            report.handed_off[name] = key
    for name, frame in report.tables.items():
        tracker.log_table(frame, name)
    if report.model is not None:
        module, kwargs = report.model
        with tempfile.TemporaryDirectory() as tmp:
            tracker.log_artifacts(save_module(module, tmp, kwargs=kwargs), "model")
    if report.files:
        with tempfile.TemporaryDirectory() as tmp:
            for name, content in report.files.items():
                local = Path(tmp, name)
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(content)
            tracker.log_artifacts(tmp)
    return report
