"""`Tracker`: the one object a run logs through (params, metrics, figures, files)."""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from mktlab.evaluation.report import render_png

MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value
PARAMS_PER_BATCH = 100


class Tracker:
    """Logs into one existing MLflow run through `MlflowClient` (no global state).

    Args:
        client: a client on the run's tracking store.
        run_id: the run to log into.
        owns_run: whether closing this tracker should end the run (notebooks opened by
            hand own their run; under the runner the runner owns it).
    """

    def __init__(self, client: MlflowClient, run_id: str, *, owns_run: bool = False) -> None:
        self.client = client
        self.run_id = run_id
        self.owns_run = owns_run
        self.finished = False  # whether `finish` ended the run: an ended run is never changed again

    # ------------------------------------------------------------------ values
    def log_params(self, params: Mapping[str, Any]) -> None:
        items = [Param(k, _param_value(v)) for k, v in params.items()]
        for i in range(0, len(items), PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + PARAMS_PER_BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log finite scalar metrics; non-finite values are skipped (MLflow rejects NaN in some stores)."""
        now = int(time.time() * 1000)
        rows = [
            Metric(k, float(v), now, step or 0)
            for k, v in metrics.items()
            if v is not None and math.isfinite(float(v))
        ]
        if rows:
            self.client.log_batch(self.run_id, metrics=rows)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if tags:
            self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    # ------------------------------------------------------------------ files
    def log_figure(self, figure: Any, artifact_file: str) -> bytes:
        """A matplotlib figure as a PNG, e.g. `figures/learning_curve.png`; returns the PNG's bytes."""
        png = render_png(figure)
        self.log_bytes(png, artifact_file)
        return png

    def log_bytes(self, content: bytes, artifact_file: str) -> None:
        """A file's content under the artifact path `artifact_file`, e.g. `samples/final.png`."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, Path(artifact_file).name)
            path.write_bytes(content)
            self.log_artifact(path, str(Path(artifact_file).parent) if "/" in artifact_file else None)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        self.client.log_dict(self.run_id, dict(data), artifact_file)

    def log_table(self, frame: Any, artifact_file: str) -> None:
        """A pandas DataFrame as a CSV file."""
        self.log_bytes(frame.to_csv(index=False).encode("utf-8"), artifact_file)

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(local_path), artifact_path)

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    # ------------------------------------------------------------------ status
    def finish(self, status: str = "FINISHED") -> None:
        """End the run if this tracker owns it (once: a later call changes nothing)."""
        if self.owns_run and not self.finished:
            self.client.set_terminated(self.run_id, status=status)
            self.finished = True

    @property
    def artifact_uri(self) -> str:
        return self.client.get_run(self.run_id).info.artifact_uri

    def __repr__(self) -> str:
        return f"Tracker(run_id={self.run_id!r}, uri={self.client.tracking_uri!r})"


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."
