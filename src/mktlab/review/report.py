"""`review_sweep`: a sweep's ranking, parameter effects, learning curves and seed spread.

`notebooks/review_runs.ipynb` calls it and shows the result; `log()` puts the figures
and tables into the sweep's parent run (under `figures/review/` and `review/`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mktlab.evaluation.report import Report
from mktlab.models import registry
from mktlab.session import quiet_notebook
from mktlab.review import plots
from mktlab.tracking.sweeps import RunTable, load_runs, metric_histories
from mktlab.tracking import Tracker, get_client
from mktlab.tracking.reports import log_report


@dataclass
class SweepReview:
    """What the review found; `log()` records it on the sweep's parent run.

    Attributes:
        table: the ranked runs.
        figures: `metric_vs_params`, `parallel_coordinates`, `top_learning_curves`, `seed_spread`
            (those the sweep has data for).
        tables: `ranking.csv` and `seed_spread.csv`.
        tracker: logs into the parent run (None for a list of runs without a sweep).
    """

    table: RunTable
    figures: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    tracker: Tracker | None = None

    @property
    def ranking(self) -> pd.DataFrame:
        """The ranking's display columns (the full frame is `table.frame`)."""
        return self.table.frame[self.table.display_columns()]

    def summary(self) -> str:
        """A Markdown paragraph: what was swept, how many runs finished, which run is best."""
        t = self.table
        frame = t.frame
        failed = int((frame["status"] != "FINISHED").sum()) if not frame.empty else 0
        text = f"**{len(frame)} runs**" + (f" ({failed} not finished)" if failed else "")
        if t.parent is not None:
            text = f"Sweep `{t.sweep_id}` (parent run `{t.parent.info.run_id}`): " + text
        text += f", varying {', '.join(f'`{p}`' for p in t.params)}." if t.params else "."
        best = t.best
        if best is None:
            return text + " No run finished with a main metric."
        direction = "lowest" if t.mode == "min" else "highest"
        text += f" The {direction} `{t.metric}` is **{best[t.metric]:.4f}**, by run `{best['run_name']}` (`{best['run_id']}`)."
        spread = self.tables.get("seed_spread.csv")
        if spread is not None and len(spread) > 1 and "seed" in t.params:
            first, second = spread.iloc[0], spread.iloc[1]
            gap = abs(first[f"{t.metric}_mean"] - second[f"{t.metric}_mean"])
            noise = max(first[f"{t.metric}_std"], second[f"{t.metric}_std"])
            verdict = "larger than" if gap > noise else "within"
            text += (
                f" Over seeds, the best setting's mean is {first[f'{t.metric}_mean']:.4f} ± {first[f'{t.metric}_std']:.4f}; "
                f"its lead over the runner-up ({gap:.4f}) is {verdict} the seed-to-seed spread ({noise:.4f})."
            )
        return text

    def log(self) -> "SweepReview":
        """Log the figures and tables into the parent run."""
        if self.tracker is not None:
            log_report(self.tracker, Report(
                figures={f"review/{name}": figure for name, figure in self.figures.items()},
                tables={f"review/{name}": frame for name, frame in self.tables.items()},
            ))
        return self

    def close_figures(self) -> None:
        Report(figures=self.figures).close_figures()


def store_uri(config: Mapping[str, Any] | None = None, overrides: Sequence[str] = ()) -> str:
    """The tracking URI of a resolved config, else of the project's config composed with `overrides`."""
    if config is None:
        return str(registry.compose(list(overrides)).tracking.uri)
    return str(config["tracking"]["uri"])


def review_sweep(
    *,
    config: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    experiment: str | None = None,
    sweep_id: str | None = None,
    top: int = 5,
    metric: str | None = None,
    mode: str | None = None,
) -> SweepReview:
    """Read a sweep from MLflow and build its review (its figures closed: a notebook shows each once, where it displays it).

    Args:
        config: a resolved config whose `tracking` names the store; None composes the
            project's config with `overrides` (e.g. `["tracking=server"]`).
        overrides: Hydra overrides for that composition.
        experiment: the experiment to look in (None: every experiment).
        sweep_id: a sweep id or parent run id; None: the latest sweep; `"all"`: every run of `experiment`.
        top: runs whose learning curves are overlaid.
        metric, mode: rank by another metric than the runs' `best_<monitor>`.
    """
    quiet_notebook()
    tracking_uri = store_uri(config, overrides)
    client = get_client({"uri": tracking_uri})
    table = load_runs(client, experiment=experiment, sweep_id=sweep_id, metric=metric, mode=mode)
    review = SweepReview(table=table, tracker=Tracker(client, table.parent.info.run_id) if table.parent is not None else None)
    review.tables["ranking.csv"] = table.frame
    if table.metric is None or table.best is None:
        return review
    done = table.finished.dropna(subset=[table.metric])
    if table.params:
        review.figures["metric_vs_params"] = plots.metric_vs_params(done, table.params, table.metric, table.mode)
        review.figures["parallel_coordinates"] = plots.parallel_coordinates(done, table.params, table.metric, table.mode)
    curve = table.metric.removeprefix("best_")
    leaders = done.head(top)
    histories = metric_histories(client, list(leaders["run_id"]), curve)
    names = dict(zip(leaders["run_id"], leaders["run_name"]))
    review.figures["top_learning_curves"] = plots.overlaid_curves(
        {f"#{rank} {names[run_id]}": history for rank, (run_id, history) in enumerate(histories.items(), start=1)},
        curve,
        title=f"{curve} of the top {len(histories)} runs",
    )
    spread = table.seed_spread()
    if not spread.empty:
        review.tables["seed_spread.csv"] = spread
        review.figures["seed_spread"] = plots.seed_spread(spread, done, table.params, table.metric, table.mode)
    review.close_figures()  # shown where the notebook displays them, not again by the inline backend
    return review
