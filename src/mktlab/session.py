"""The notebook side of a run: one call per step, the same for every model.

    cfg, tracker = session.start("mf", config=config, run_id=run_id, overrides=overrides)
    data = session.load(cfg, tracker)
    result = session.fit(cfg, data, tracker)
    report = session.evaluate(cfg, result, data, tracker)
    display(Markdown(session.reading(cfg, report, data)))
    session.finish(tracker)

Under the runner, a notebook receives the resolved `config` and the `run_id` in its
injected parameters and logs into that run. Opened by hand (JupyterLab), it has neither:
`start` composes the default config with the notebook's `overrides` and opens a run of
its own, which `finish` closes (a later cell that raises before `finish` marks it FAILED).
The same calls run in tests and benchmarks, with or without a tracker.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from IPython import get_ipython
from tqdm import TqdmExperimentalWarning, TqdmWarning

from mktlab.config import Config, to_container, to_plain
from mktlab.config.secrets import mask_uri, scrub_text, secret_values
from mktlab.evaluation.report import Report, aggregate
from mktlab.models import registry
from mktlab.models.contract import ModelSpec
from mktlab.tracking import Tracker, get_client, links, open_run, provenance, run_name, trials
from mktlab.tracking.reports import log_report
from mktlab.train import runtime
from mktlab.train.keys import run_keys, seed_list, several_seeds
from mktlab.train.loop import FitResult, SeedResults, fit_loop, fit_loop_vectorized

__all__ = ["start", "load", "fit", "evaluate", "reading", "log", "finish", "spec_of"]



def quiet_notebook() -> None:
    """Libraries the notebooks use reach for tqdm's widget bar, which a kernel run by Papermill cannot show."""
    warnings.filterwarnings("ignore", category=TqdmWarning)
    warnings.filterwarnings("ignore", category=TqdmExperimentalWarning)


def spec_of(cfg: Config) -> ModelSpec:
    """The spec of the config's model."""
    return registry.get(cfg.model.name)


def start(
    model: str | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    overrides: Sequence[str] = (),
    notebook: str | Path | None = None,
) -> tuple[Config, Tracker]:
    """The run's typed config and its tracker.

    Args:
        model: the notebook's model (`model=<model>` unless `overrides` names another);
            None keeps the config's default model (a notebook of one's own).
        config: the resolved config the runner injected; None composes one.
        run_id: the MLflow run the runner opened; None opens one.
        overrides: Hydra overrides applied when composing, e.g. `["trainer.epochs=5"]`.
        notebook: the notebook opening its own run (recorded with the run); by default the model's.
    """
    quiet_notebook()
    runtime.setup()
    if config is None:
        overrides = list(overrides)
        if model is not None and not any(o.split("=", 1)[0].lstrip("+~") == "model" for o in overrides):
            overrides.insert(0, f"model={model}")
        config = to_container(registry.compose(overrides))
    cfg = registry.typed(config)
    if run_id:
        return cfg, Tracker(get_client(cfg.tracking), run_id, owns_run=False)
    path = Path(notebook) if notebook is not None else _open_notebook() or spec_of(cfg).notebook_path()
    tracker = open_run(config, notebook=path, run_name=run_name(config, overrides),
                       tags={"mktlab.origin": "notebook", "mktlab.overrides": " ".join(overrides)}, owns_run=True)
    _RUN_NOTEBOOKS[tracker.run_id] = (path, secret_values(config))
    _fail_run_on_error(tracker)
    run = tracker.client.get_run(tracker.run_id)
    print(f"MLflow run {tracker.run_id} ({run.info.run_name}) in experiment '{cfg.experiment_name}' ({mask_uri(cfg.tracking.uri)})")
    print(f"open it in MLflow: {links.how_to_open(cfg.tracking.uri, links.run_route(run.info.experiment_id, tracker.run_id))}")
    return cfg, tracker


def load(cfg: Config, tracker: Tracker | None = None) -> Any:
    """The config's data set, split and encoded; its size is tagged on the run."""
    data = registry.load_data(cfg)
    if tracker is not None:
        tracker.set_tags({f"mktlab.data.stats.{name}": value for name, value in data.summary().items()})
    return data


def fit(cfg: Config, data: Any, tracker: Tracker | None = None) -> FitResult | SeedResults:
    """Train the config's model on `data`; per-epoch metrics go to `tracker`.

    With `trainer.seeds` (or `trainer.num_seeds` > 1) every seed trains at once with one
    compiled epoch and logs into a child run of its own; the result is a `SeedResults`.
    """
    spec = spec_of(cfg)
    seeds = seed_list(cfg)
    tasks = spec.load().build_tasks(cfg, data, seeds)
    if tracker is not None:
        tracker.set_tags(provenance.jax_tags(cfg.seed))
        provenance.log_data(tracker, data, name=cfg.data.name)
    if not several_seeds(cfg):
        keys = run_keys(cfg.seed)
        result = fit_loop(tasks[0], cfg.trainer, model_key=keys["model_key"], train_key=keys["train_key"],
                          on_epoch=_epoch_logger(tracker, tasks[0], trial=cfg.trainer.trial), desc=spec.name)
        _log_best(tracker, result)
        return result
    children = [_child_run(cfg, data, seed, tracker) for seed in seeds] if tracker is not None else [None] * len(seeds)
    keys = [run_keys(seed) for seed in seeds]
    results = fit_loop_vectorized(
        tasks, cfg.trainer, model_keys=[k["model_key"] for k in keys], train_keys=[k["train_key"] for k in keys],
        callbacks=[_epoch_logger(child, task) for child, task in zip(children, tasks)], desc=f"{spec.name} ×{len(seeds)} seeds",
    )
    for child, result in zip(children, results):
        _log_best(child, result)
    if tracker is not None:  # the run itself ranks by its seeds' mean, of the metric their training watched
        scores = np.array([result.best_score for result in results], np.float64)
        watched = f"best_{tasks[0].monitor}"
        tracker.set_tags({"mktlab.monitor": tasks[0].monitor, "mktlab.monitor_mode": tasks[0].mode})
        if np.isfinite(scores).all():
            tracker.log_metrics({watched: float(scores.mean()), f"{watched}_std": float(scores.std(ddof=1))})
    return SeedResults(seeds, results, children)


def evaluate(cfg: Config, result: FitResult | SeedResults, data: Any, tracker: Tracker | None = None) -> Report:
    """The model's test evaluation of `result`, logged into the run.

    With several seeds, each seed's report goes to its child run (which is then closed),
    and the returned report, logged on the run itself, holds the mean and spread over
    seeds and the first seed's figures, files and model.
    """
    implementation = spec_of(cfg).load()
    evaluate_one = implementation.evaluate
    if not isinstance(result, SeedResults):
        return log_report(tracker, evaluate_one(cfg, result, data))
    reports = []
    for seed, fitted, child in zip(result.seeds, result.results, result.trackers):
        report = evaluate_one(dataclasses.replace(cfg, seed=seed), fitted, data)
        if child is not None:
            log_report(child, report)
            child.finish()
        if reports:
            report.close_figures()
        reports.append(report)
    combined = aggregate(reports)
    if implementation.evaluate_seeds is not None:  # what the seeds give together, e.g. their ensemble
        together = implementation.evaluate_seeds(cfg, result, data)
        combined = Report(metrics={**combined.metrics, **together.metrics}, figures={**combined.figures, **together.figures},
                          tables={**combined.tables, **together.tables}, model=combined.model, files={**combined.files, **together.files})
    return log_report(tracker, combined)


def reading(cfg: Config, report: Report, data: Any) -> str:
    """The result in plain words (Markdown): what the model reached, against its baselines."""
    return spec_of(cfg).load().reading(cfg, report, data)


def log(report: Report, tracker: Tracker | None) -> Report:
    """Log a report of one's own (metrics, figures, tables, files) into the run."""
    return log_report(tracker, report)


def finish(tracker: Tracker) -> None:
    """Close a run the notebook opened itself, with the notebook as last saved (the runner closes its own runs
    and logs the executed notebook itself)."""
    if tracker.owns_run and not tracker.finished and tracker.run_id in _RUN_NOTEBOOKS:
        path, secrets = _RUN_NOTEBOOKS.pop(tracker.run_id)
        if path.is_file():
            with tempfile.TemporaryDirectory() as tmp:
                saved = Path(tmp, path.name)
                saved.write_text(scrub_text(path.read_text(encoding="utf-8"), secrets), encoding="utf-8")
                tracker.log_artifact(saved, "notebook")
    tracker.finish("FINISHED")


# run id -> (its notebook, the config's secrets), for runs a notebook opened by hand
_RUN_NOTEBOOKS: dict[str, tuple[Path, set[str]]] = {}


def forget_runs() -> None:
    """Drop the bookkeeping of runs opened by hand (a reused kernel starting another job)."""
    _RUN_NOTEBOOKS.clear()


def _open_notebook() -> Path | None:
    """The notebook this kernel serves, as JupyterLab names it to the kernel (`JPY_SESSION_NAME`), if any."""
    name = os.environ.get("JPY_SESSION_NAME", "")
    path = Path(name) if name.endswith(".ipynb") else None
    return path if path is not None and path.is_file() else None


def _epoch_logger(tracker: Tracker | None, task: Any, *, trial: str | None = None):
    """`on_epoch(epoch, metrics) -> stop`: each epoch's metrics logged to `tracker`, and with `trial` (an Optuna
    trial's reference) the monitored metric reported to its study, whose pruner may stop the training."""
    if tracker is None and trial is None:
        return None
    if tracker is not None:
        tracker.set_tags({"mktlab.monitor": task.monitor, "mktlab.monitor_mode": task.mode})  # sweeps rank runs by it
    report = trials.epoch_reporter(trial, task.monitor) if trial is not None else None

    def on_epoch(epoch: int, metrics: dict[str, float]) -> bool:
        if tracker is not None:
            tracker.log_metrics(metrics, step=epoch)
        return report is not None and report(epoch, metrics)

    return on_epoch


def _log_best(tracker: Tracker | None, result: FitResult) -> None:
    if tracker is not None and math.isfinite(result.best_score):
        tracker.log_metrics({f"best_{result.monitor}": result.best_score, "best_epoch": result.best_epoch})
    if tracker is not None and result.pruned:  # the Optuna sweeper counts the trial as pruned
        tracker.log_metrics({trials.PRUNED_AT_EPOCH: result.epochs_run})


def _child_run(cfg: Config, data: Any, seed: int, parent: Tracker) -> Tracker:
    """A child run of `parent` for one seed, recording the config with that seed."""
    config = to_plain(dataclasses.replace(cfg, seed=seed, trainer=dataclasses.replace(cfg.trainer, seeds=None, num_seeds=1)))
    child = open_run(config, notebook=None, run_name=f"seed={seed}", tags={"mktlab.seeds_parent": parent.run_id},
                     parent_run_id=parent.run_id, owns_run=True)
    child.set_tags(provenance.jax_tags(seed))
    provenance.log_data(child, data, name=cfg.data.name)
    return child


def _fail_run_on_error(tracker: Tracker) -> None:
    """In IPython, mark the notebook's own run FAILED when a later cell raises before `finish`."""
    shell = get_ipython()
    if shell is None:
        return

    def on_cell(result: Any) -> None:
        if tracker.finished:
            shell.events.unregister("post_run_cell", on_cell)
        elif result.error_in_exec is not None:
            tracker.finish("FAILED")
            shell.events.unregister("post_run_cell", on_cell)

    shell.events.register("post_run_cell", on_cell)
