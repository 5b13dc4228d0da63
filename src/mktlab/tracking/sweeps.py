"""A sweep's runs (or an experiment's) read from MLflow into one ranked table.

The main metric of a run is `best_<monitor>`, where `mktlab.monitor` and
`mktlab.monitor_mode` are the tags a run's training sets from the model's monitor
(e.g. `best_val_rmse`, lower is better, for matrix factorization). The sweep callback,
`mktlab-runs` and the review notebook all rank with `load_runs`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from mktlab.tracking.trials import PRUNED_AT_EPOCH

# Tags of sweep runs (the parent holds the definition, each child its place in the sweep).
SWEEP_ID = "mktlab.sweep_id"
SWEEP_ROLE = "mktlab.sweep_role"  # "parent" on the sweep's own run
JOB_NUM = "mktlab.job_num"
SWEPT = "mktlab.swept"  # comma-separated config keys the sweep varies
PARENT = "mlflow.parentRunId"  # MLflow's own tag: the UI nests children under the parent
MONITOR, MONITOR_MODE = "mktlab.monitor", "mktlab.monitor_mode"
# Params that differ between runs without being chosen by anyone.
INCIDENTAL = ("data.stats.", "paths.", "tracking.", "tags.", "run_name", "experiment_name", "trainer.trial")
RUN_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class RunTable:
    """Runs ranked by their main metric, best first.

    Attributes:
        frame: one row per run: `rank`, `run_name`, `status`, `job_num`, the swept
            parameters, the main metric, every other final metric, `run_id`.
        params: the columns of `frame` holding swept parameters (in sweep order).
        metric: the main metric (`best_<monitor>`), None when no run reached training.
        mode: `"min"` or `"max"`: which direction of `metric` is better.
        parent: the sweep's parent run (None for a plain list of runs).
    """

    frame: pd.DataFrame
    params: list[str] = field(default_factory=list)
    metric: str | None = None
    mode: str = "min"
    parent: Run | None = None

    @property
    def sweep_id(self) -> str | None:
        return None if self.parent is None else self.parent.data.tags.get(SWEEP_ID)

    @property
    def finished(self) -> pd.DataFrame:
        return self.frame[self.frame["status"] == "FINISHED"]

    @property
    def best(self) -> pd.Series | None:
        """The best finished run's row (None when none finished with the main metric)."""
        done = self.finished
        if self.metric is None or done.empty or done[self.metric].isna().all():
            return None
        return done.dropna(subset=[self.metric]).iloc[0]

    def display_columns(self, max_metrics: int = 3) -> list[str]:
        """Rank, status, the swept parameters (else the run name), the main metric, where an Optuna pruner
        stopped a run, and a few test metrics."""
        metrics = [self.metric] if self.metric else []
        metrics += [PRUNED_AT_EPOCH] if PRUNED_AT_EPOCH in self.frame else []
        metrics += [c for c in self.frame.columns if c.startswith("test_") and c not in metrics][:max_metrics]
        return [c for c in ["rank", "status", *(self.params or ["run_name"]), *metrics] if c in self.frame]

    def to_rich(self, *, rows: int = 20, title: str | None = None) -> Any:
        """The ranking as a `rich` table (the display columns, the top `rows` runs)."""
        from rich.table import Table

        direction = "lower" if self.mode == "min" else "higher"
        caption = f"ranked by {self.metric} ({direction} is better)" if self.metric else "no run reached training"
        table = Table(title=title, caption=caption)
        columns = self.display_columns()
        for column in columns:
            text = column == "run_name"
            table.add_column(column, justify="left" if text else "right", overflow="fold" if text else "ellipsis", style="bold" if column == self.metric else None)
        for _, row in self.frame.head(rows).iterrows():
            table.add_row(*(_cell(row.get(c)) for c in columns), style=None if row["status"] == "FINISHED" else "red")
        if len(self.frame) > rows:
            table.caption += f"; {len(self.frame) - rows} more run(s) not shown"
        return table

    def show(self, console: Any, *, rows: int = 20, title: str | None = None) -> None:
        """Print the ranking on a rich console (160 columns when it is not a terminal, e.g. a log file)."""
        if not console.is_terminal:
            from rich.console import Console

            console = Console(file=console.file, width=160, highlight=False)
        console.print(self.to_rich(rows=rows, title=title))

    def seed_spread(self) -> pd.DataFrame:
        """Mean, standard deviation and count over seeds of the main and test metrics per setting.

        A setting is one combination of the swept parameters other than `seed`; settings are
        ordered by the mean of the main metric, best first.
        """
        done = self.finished
        if self.metric is None or done.empty:
            return pd.DataFrame()
        keys = [p for p in self.params if p != "seed"]
        metrics = [self.metric] + [c for c in done.columns if c.startswith("test_") and c != self.metric]
        grouped = done.groupby(keys, dropna=False)[metrics] if keys else done.assign(_all="all").groupby("_all")[metrics]
        table = grouped.agg(["mean", "std", "count"])
        table.columns = [f"{metric}_{stat}" for metric, stat in table.columns]
        table = table.sort_values(f"{self.metric}_mean", ascending=self.mode == "min").reset_index()
        return table.drop(columns=["_all"], errors="ignore")


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _paged(search: Any) -> list[Run]:
    runs, token = [], None
    while True:
        page = search(token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _experiment_id(client: MlflowClient, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        known = ", ".join(sorted(e.name for e in client.search_experiments())) or "none"
        raise LookupError(f"no MLflow experiment named {name!r} in {client.tracking_uri} (experiments: {known})")
    return experiment.experiment_id


def search(client: MlflowClient, experiment_ids: Sequence[str], filter_string: str = "") -> list[Run]:
    """Every run matching `filter_string`, all pages."""
    return _paged(
        lambda token: client.search_runs(
            list(experiment_ids), filter_string=filter_string, max_results=1000, order_by=["attributes.start_time ASC"], page_token=token
        )
    )


def find_sweep(client: MlflowClient, *, experiment: str | None = None, sweep_id: str | None = None) -> Run:
    """A sweep's parent run.

    Args:
        client: a client on the tracking store.
        experiment: the experiment to look in; None searches every experiment.
        sweep_id: a sweep id (tag `mktlab.sweep_id`) or the parent's run id; None (or
            `"latest"`) takes the most recently started sweep.

    Raises:
        LookupError: no such sweep.
    """
    if sweep_id and RUN_ID_PATTERN.match(sweep_id):
        return client.get_run(sweep_id)
    ids = [_experiment_id(client, experiment)] if experiment else [e.experiment_id for e in client.search_experiments()]
    condition = f"tags.`{SWEEP_ROLE}` = 'parent'"
    if sweep_id and sweep_id != "latest":
        condition += f" and tags.`{SWEEP_ID}` = '{sweep_id}'"
    found = client.search_runs(ids, filter_string=condition, order_by=["attributes.start_time DESC"], max_results=1) if ids else []
    if not found:
        where = f"experiment {experiment!r}" if experiment else client.tracking_uri
        what = f"sweep {sweep_id!r}" if sweep_id and sweep_id != "latest" else "any sweep"
        raise LookupError(f"no parent run of {what} in {where}; run one with `mktlab -m ...`")
    return found[0]


def sweep_children(client: MlflowClient, parent: Run) -> list[Run]:
    """The jobs' runs of the sweep whose parent run is `parent` (in the parent's experiment)."""
    sweep_id = parent.data.tags.get(SWEEP_ID)
    condition = f"tags.`{SWEEP_ID}` = '{sweep_id}'" if sweep_id else f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    return [r for r in search(client, [parent.info.experiment_id], condition) if r.info.run_id != parent.info.run_id]


def main_metric(runs: Iterable[Run]) -> tuple[str | None, str]:
    """`(best_<monitor>, mode)` from the runs' monitor tags (the most common one wins)."""
    tagged = Counter((r.data.tags[MONITOR], r.data.tags.get(MONITOR_MODE, "min")) for r in runs if MONITOR in r.data.tags)
    if not tagged:
        return None, "min"
    (monitor, mode), _ = tagged.most_common(1)[0]
    return f"best_{monitor}", mode


def _swept_columns(runs: Sequence[Run], swept: Sequence[str]) -> list[str]:
    """Param names for the swept config keys; a config group (`optim`) maps to its `.name` param."""
    params = set().union(*(r.data.params for r in runs)) if runs else set()
    columns = []
    for key in swept:
        name = key.lstrip("+~").split("@", 1)[0]
        for candidate in (name, f"{name}.name"):
            if candidate in params and candidate not in columns:
                columns.append(candidate)
                break
    if columns:
        return columns
    varying = [p for p in sorted(params) if not p.startswith(INCIDENTAL) and len({r.data.params.get(p) for r in runs}) > 1]
    return varying


def _numeric(series: pd.Series) -> pd.Series:
    converted = pd.to_numeric(series, errors="coerce")
    return converted if converted.notna().sum() == series.notna().sum() else series


def runs_frame(runs: Sequence[Run], params: Sequence[str]) -> pd.DataFrame:
    rows = []
    for run in runs:
        job = run.data.tags.get(JOB_NUM)
        row: dict[str, Any] = {
            "run_name": run.info.run_name,
            "status": run.info.status,
            "job_num": int(job) if job is not None else None,
        }
        row.update({p: run.data.params.get(p) for p in params})
        row.update(run.data.metrics)
        row["run_id"] = run.info.run_id
        rows.append(row)
    frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["run_name", "status", "job_num", *params, "run_id"])
    for p in params:
        if p in frame:
            frame[p] = _numeric(frame[p])
    return frame


def rank(frame: pd.DataFrame, metric: str | None, mode: str) -> pd.DataFrame:
    """Best first: finished runs by `metric`, then runs without it, then unfinished ones."""
    if frame.empty:
        return frame.assign(rank=[])[["rank", *frame.columns]]
    frame = frame.copy()
    if metric is not None and metric not in frame:
        frame[metric] = math.nan
    order = pd.DataFrame({"unfinished": frame["status"] != "FINISHED"})
    order["missing"] = frame[metric].isna() if metric else True
    order["score"] = (frame[metric] if mode == "min" else -frame[metric]) if metric else 0.0
    order["job"] = frame["job_num"]
    frame = frame.loc[order.sort_values(["unfinished", "missing", "score", "job"]).index].reset_index(drop=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    if metric is not None:  # the main metric right after the parameters
        columns = [c for c in frame.columns if c != metric]
        columns.insert(columns.index("run_id") if "run_id" in columns else len(columns), metric)
        first = [c for c in columns if c not in ("run_id", metric) and not c.startswith(("train_", "val_", "test_", "best_"))]
        frame = frame[first + [metric] + [c for c in columns if c not in first and c != metric]]
    return frame


def load_runs(
    client: MlflowClient,
    *,
    experiment: str | None = None,
    sweep_id: str | None = None,
    metric: str | None = None,
    mode: str | None = None,
) -> RunTable:
    """The ranked runs of a sweep, or of a whole experiment when `sweep_id="all"`.

    Args:
        client: a client on the tracking store.
        experiment: the experiment (required for `sweep_id="all"`).
        sweep_id: a sweep id or parent run id; None takes the latest sweep.
        metric: rank by this metric instead of the runs' `best_<monitor>`.
        mode: `"min"` or `"max"` for `metric` (default: the monitor's mode, else min).
    """
    if sweep_id == "all":
        if not experiment:
            raise ValueError("sweep_id=all lists an experiment's runs: name the experiment")
        parent = None
        runs = [r for r in search(client, [_experiment_id(client, experiment)]) if r.data.tags.get(SWEEP_ROLE) != "parent"]
        swept: list[str] = []
    else:
        parent = find_sweep(client, experiment=experiment, sweep_id=sweep_id)
        runs = sweep_children(client, parent)
        swept = [k for k in parent.data.tags.get(SWEPT, "").split(",") if k]
    tagged_metric, tagged_mode = main_metric(runs)
    metric = metric or tagged_metric
    mode = mode or (tagged_mode if metric == tagged_metric else "min")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be min or max, got {mode!r}")
    params = _swept_columns(runs, swept)
    return RunTable(frame=rank(runs_frame(runs, params), metric, mode), params=params, metric=metric, mode=mode, parent=parent)


def metric_histories(client: MlflowClient, run_ids: Sequence[str], key: str) -> dict[str, pd.DataFrame]:
    """`{run_id: DataFrame(step, value)}` of metric `key` (runs without it are left out)."""
    histories = {}
    for run_id in run_ids:
        points = client.get_metric_history(run_id, key)
        if points:
            histories[run_id] = pd.DataFrame({"step": [p.step for p in points], "value": [p.value for p in points]}).sort_values("step")
    return histories
