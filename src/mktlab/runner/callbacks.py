"""Hydra callbacks: a sweep (`mktlab -m ...`) as one MLflow parent run with a child run per job.

Configured in `conf/hydra/mktlab.yaml` (`hydra.callbacks.sweep`). Whatever the sweeper
(basic grid, Optuna) and launcher (basic, joblib, Ray, submitit):

- `on_multirun_start` (launcher process) opens the parent run, logs the sweep's
  definition into it and publishes a `SweepRecord` for the jobs;
- each job's run becomes a child of the parent (the runner adds `job_tags`): tag
  `mlflow.parentRunId`, `mktlab.sweep_id`, `mktlab.job_num`, named after its own overrides;
- `on_job_end` (in the job's process) records the job's outcome beside its output and turns
  a failed job into a `JobFailure` return value, so the sweeper goes on with the other jobs;
- `on_multirun_end` logs the ranked summary table and the best child's metrics on the
  parent, prints the failed jobs and their notebooks, and exits non-zero if any failed.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import functools
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from rich.console import Console

from mktlab.config import ConfigError
from mktlab.config.secrets import mask_secrets, mask_uri, scrub_text, secret_values, secrets_in_overrides
from mktlab.models import registry
from mktlab.runner import setup_sweep_process
from mktlab.runner import sweep as sw
from mktlab.runner.job_configs import JobConfigs, forget_typed, note_typed
from mktlab.runner.background import wait_for_records
from mktlab.runner.kernel import open_store_early, stop_waiting
from mktlab.runner.notebooks import notebook_path
from mktlab.runner.warm_workers import warm_up
from mktlab.tracking import Tracker, get_client, get_or_create_experiment, links, provenance
from mktlab.tracking.store import StoreError
from mktlab.tracking.sweeps import load_runs

console = Console(stderr=True, highlight=False)


def failing_the_command(what: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A callback method whose unexpected failure ends the command with one line naming `what` failed and
    why, exit status 1. Hydra turns an exception a callback raises into a warning and goes on: a sweep
    whose end could not rank and close its runs would leave its parent RUNNING and exit 0."""
    def decorate(method: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(method)
        def checked(self: Any, config: DictConfig, *args: Any, **kwargs: Any) -> None:
            try:
                method(self, config, *args, **kwargs)
            except Exception as error:  # noqa: BLE001 - every failure, said once
                reason = mask_uri(scrub_text(f"{what}: {type(error).__name__}: {error}", _secrets_of(config)))
                self.failure = reason
                console.print(f"[red]mktlab: {reason}[/red]", soft_wrap=True)
                raise SystemExit(1) from error
        return checked
    return decorate


def _secrets_of(config: DictConfig) -> set[str]:
    """The secret values of a command's config and overrides, as far as they can be read (a config that
    cannot be resolved still has its overrides' masked)."""
    secrets: set[str] = set()
    with contextlib.suppress(Exception):
        secrets |= secrets_in_overrides(list(config.hydra.overrides.task))
    with contextlib.suppress(Exception):
        secrets |= secret_values(_plain(config))
    return secrets


def _plain(node: Any) -> Any:
    """A config node as plain data, resolved where it can be."""
    if node is None:
        return None
    try:
        return OmegaConf.to_container(node, resolve=True)
    except Exception:  # an interpolation only a job can resolve (e.g. hydra.job.num)
        return OmegaConf.to_container(node, resolve=False)


def _job_config(config: DictConfig) -> dict[str, Any]:
    """The sweep's base config without the `hydra` node, resolved."""
    cfg = copy.deepcopy(config)
    with read_write(cfg), open_dict(cfg):
        del cfg["hydra"]
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


NOTE = "mlflow.note.content"  # the run's description in the MLflow UI, rendered as Markdown
COMPARED_JOBS = 50  # jobs in the description's comparison link (best first): a tag holds at most 8000 characters


def _md(text: str) -> str:
    """Text shown as it is inside Markdown (a run name such as `trainer.seeds=[0,1]` in a link's text)."""
    return "".join("\\" + c if c in "\\`*_[]<>" else c for c in str(text))


def sweep_note(sweep_id: str, experiment_id: str, swept: dict[str, str], *, jobs: list[str] | None = None,
               best: dict[str, Any] | None = None, failed: int = 0) -> str:
    """The parent run's description: what the sweep varies (the columns to compare) and links to
    its jobs, their comparison and its best job. The links are relative to the UI's address.

    Args:
        swept: `{key: expression}` of what the sweep varies.
        jobs: the jobs' run ids, best first (None while the sweep runs).
        best: the best job's `run_id`, `run_name`, main `metric`, its `mode` and `value`.
        failed: how many jobs failed.
    """
    varied = ", ".join(f"`{key}` ({_md(expression)})" for key, expression in swept.items()) or "nothing"
    keys = ", ".join(f"`{key}`" for key in swept) or "the params"
    first = f"**Sweep {sweep_id}** varies {varied}: the columns to compare."
    if best is not None:
        direction = "lower" if best["mode"] == "min" else "higher"
        first += (f" **Best job: [{_md(best['run_name'])}]({links.run_route(experiment_id, best['run_id'])})**, "
                  f"`{best['metric']}` {best['value']:.6g} ({direction} is better).")
    lines = [first, ""]
    if jobs:
        which = f"the {len(jobs)} jobs" if len(jobs) <= COMPARED_JOBS else f"the best {COMPARED_JOBS} of {len(jobs)} jobs"
        metric = f" against `{best['metric']}`" if best is not None else ""
        lines.append(f"- [Compare {which}]({links.compare_route(experiment_id, jobs[:COMPARED_JOBS])}): parallel coordinates "
                     f"and scatter plots of {keys}{metric}")
    lines.append(f"- [The sweep's runs]({links.runs_route(experiment_id, search=links.sweep_search(sweep_id))}): each job is a "
                 f"child run named after its values, nested under this one; *Columns* adds {keys}"
                 + (f" and `{best['metric']}`" if best is not None else ""))
    if failed:
        lines.append(f"- {failed} job(s) failed: their runs are FAILED, with the partial notebook attached")
    if jobs is not None:
        lines.append(f"- Every job ranked: artifact `sweep/summary.csv`; the review notebook: `mktlab-review sweep_id={sweep_id}`")
    return "\n".join(lines)


def open_sweep(config: DictConfig) -> sw.SweepRecord:
    """Open the sweep's parent run, log its definition and publish the record for the jobs."""
    hydra = config.hydra
    choices = dict(hydra.runtime.choices)
    task_overrides = list(hydra.overrides.task)
    params = _plain(OmegaConf.select(config, "hydra.sweeper.params"))
    common, swept = sw.sweep_definition(task_overrides, params)
    base = _job_config(config)
    client = get_client(base["tracking"])
    experiment_id = get_or_create_experiment(client, base["experiment_name"], base["tracking"].get("artifact_root"))
    sweep_id = sw.new_sweep_id()
    sweep_dir = os.path.abspath(str(hydra.sweep.dir))
    name = " ".join(filter(None, ["sweep", choices.get("sweep"), sweep_id]))
    tags = {
        sw.SWEEP_ID: sweep_id,
        sw.SWEEP_ROLE: "parent",
        sw.SWEPT: ",".join(swept),
        "mktlab.origin": "sweep",
        "mktlab.model": base["model"]["name"],
        "mktlab.data": base["data"]["name"],
        "mktlab.sweeper": choices.get("hydra/sweeper", ""),
        "mktlab.launcher": choices.get("hydra/launcher", ""),
        "mktlab.overrides": " ".join(task_overrides),
        "mktlab.sweep_dir": sweep_dir,
        **provenance.code_state(Path(base["paths"]["root"]))[0],
        **{k: str(v) for k, v in (base.get("tags") or {}).items()},
        NOTE: sweep_note(sweep_id, experiment_id, swept),
    }
    secrets = secret_values(base) | secrets_in_overrides(task_overrides)  # credentials never leave the process
    tags = {k: scrub_text(str(v), secrets) for k, v in tags.items()}
    run = client.create_run(experiment_id, run_name=name, tags=tags)
    tracker = Tracker(client, run.info.run_id)
    tracker.log_params(
        {
            **{f"sweep.{key}": scrub_text(expression, secrets) for key, expression in swept.items()},
            "sweep.sweeper": tags["mktlab.sweeper"],
            "sweep.launcher": tags["mktlab.launcher"],
        }
    )
    definition = {
        "sweep_id": sweep_id,
        "command": " ".join(["mktlab", "-m", *task_overrides]),
        "swept": swept,
        "common_overrides": common,
        "sweeper": _plain(hydra.sweeper),
        "launcher": _plain(hydra.launcher),
        "sweep_dir": sweep_dir,
    }
    tracker.log_text(scrub_text(yaml.safe_dump(definition, sort_keys=False), secrets), "sweep/definition.yaml")
    tracker.log_text(yaml.safe_dump(mask_secrets(base), sort_keys=False), "sweep/base_config.yaml")
    record = sw.SweepRecord(
        sweep_id=sweep_id,
        parent_run_id=run.info.run_id,
        experiment_id=experiment_id,
        tracking_uri=base["tracking"]["uri"],
        sweep_dir=sweep_dir,
        swept=tuple(swept),
        launcher_pid=os.getpid(),
    )
    record.publish()
    console.print(
        f"[bold]mktlab[/bold] sweep {sweep_id} · parent run {run.info.run_id} · experiment '{base['experiment_name']}' · "
        f"varies {', '.join(swept) or 'nothing'}",
        soft_wrap=True,
    )
    return record


def sweep_jobs(config: DictConfig) -> list[list[str]]:
    """Every job's overrides of a grid sweep (Hydra's basic expansion of the command line and
    `hydra.sweeper.params`); for a search (Optuna), the one job of the overrides all trials share."""
    task = list(config.hydra.overrides.task)
    params = _plain(OmegaConf.select(config, "hydra.sweeper.params")) or {}
    lines = [f"{key}={value}" for key, value in params.items()] + task
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    parsed = parser.parse_overrides(lines)
    if is_grid_sweep(config):
        return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    return [[o.input_line for o in parsed if not o.is_sweep_override()]]


GRID_SWEEPERS = ("GridSweeper", "BasicSweeper")


def is_grid_sweep(config: DictConfig) -> bool:
    """Whether the sweep runs every combination of its values (mktlab's or Hydra's basic sweeper), not a search."""
    return str(OmegaConf.select(config, "hydra.sweeper._target_") or "").endswith(GRID_SWEEPERS)


# Each validated job's composed config, by its overrides, until the sweep's launcher takes it (`take_composed`)
# instead of composing it again. A sweep of more jobs composes the rest again.
_composed: dict[tuple[str, ...], DictConfig] = {}
COMPOSED_KEPT = 256


def take_composed(overrides: list[str] | tuple[str, ...]) -> DictConfig | None:
    """The config `validate_jobs` composed for the job of `overrides` (once: it is the launcher's to change), or None."""
    return _composed.pop(tuple(overrides), None)


def composed_ahead(overrides: list[str] | tuple[str, ...]) -> bool:
    """Whether `validate_jobs` composed the job of `overrides` and keeps its config for the launcher."""
    return tuple(overrides) in _composed


def validate_jobs(config: DictConfig) -> int:
    """Compose and type every job's config before the sweep opens its parent run; the composed
    configs are kept for the launcher (`take_composed`).

    Raises:
        ConfigError: naming the first job whose config mktlab's schemas reject.
    """
    composer = JobConfigs(GlobalHydra.instance().config_loader(), config)
    jobs = sweep_jobs(config)
    grid = is_grid_sweep(config)
    _composed.clear()
    forget_typed()
    for number, overrides in enumerate(jobs):
        job = composer.compose(overrides)
        if grid and len(_composed) < COMPOSED_KEPT:
            _composed[tuple(overrides)] = job
        try:
            registry.typed(OmegaConf.masked_copy(job, [key for key in job if key != "hydra"]))
        except ConfigError as error:
            raise ConfigError(error.key, error.value, error.expected,
                              message=f"Error in config of job {number} ({' '.join(overrides)}): {error}; no job was run") from None
        note_typed(job)
    return len(jobs)


def job_failed(config: DictConfig, job_return: JobReturn) -> sw.JobFailure | None:
    """Record a sweep job's outcome beside its output; a failed job's return becomes a `JobFailure`.

    Hydra's sweepers stop a sweep at the first job whose return holds an exception; the
    failure is already in the job's run (FAILED, partial notebook attached), so the job is
    reported as completed with a `JobFailure` value and the sweep goes on.
    """
    output_dir = Path(str(config.hydra.runtime.output_dir))
    try:
        notebook = output_dir / notebook_path(_job_config(config)).name
    except Exception:  # a job whose config cannot name its notebook (it failed before running it)
        notebook = None
    failure = None
    if job_return.status == JobStatus.FAILED:
        error = job_return._return_value  # the property would raise it
        failure = sw.JobFailure(
            job_num=int(config.hydra.job.num),
            overrides=[scrub_text(o, secrets_in_overrides(job_return.overrides or [])) for o in job_return.overrides or []],
            error=scrub_text(f"{type(error).__name__}: {error}", secrets_in_overrides(job_return.overrides or [])),
            notebook=str(notebook) if notebook is not None and notebook.is_file() else None,
            interrupted=isinstance(error, sw.JobInterrupted),
        )
        job_return.return_value = failure
        job_return.status = JobStatus.COMPLETED
    secrets = secrets_in_overrides(job_return.overrides or [])
    sw.write_job_file(
        output_dir,
        {
            "job_num": int(config.hydra.job.num),
            "overrides": [scrub_text(o, secrets) for o in job_return.overrides or []],
            "status": "FAILED" if failure else "COMPLETED",
            "error": failure.error if failure else None,
            "notebook": failure.notebook if failure else (str(notebook) if notebook is not None and notebook.is_file() else None),
        },
    )
    return failure


def close_sweep(record: sw.SweepRecord, *, rows: int = 20) -> list[dict[str, Any]]:
    """Log the summary on the parent run, print it, end the parent; returns the failed jobs."""
    client = get_client({"uri": record.tracking_uri})
    tracker = Tracker(client, record.parent_run_id)
    failed: list[dict[str, Any]] = [job for job in sw.read_job_files(record.sweep_dir) if job.get("status") == "FAILED"]
    summarized = False
    try:
        table = load_runs(client, sweep_id=record.parent_run_id)
        # A job whose run failed but whose record is out of reach (no shared file system).
        known = {int(job["job_num"]) for job in failed}
        for row in table.frame.itertuples():
            if row.status != "FINISHED" and (row.job_num is None or int(row.job_num) not in known):
                failed.append({"job_num": row.job_num, "overrides": [row.run_name], "error": f"run {row.run_id} {row.status}", "notebook": None})
        if not table.frame.empty:
            tracker.log_table(table.frame, "sweep/summary.csv")
        best = table.best
        if best is not None:
            best_run = client.get_run(best["run_id"])
            tracker.log_metrics(best_run.data.metrics)
            tracker.set_tags({"mktlab.best_run_id": best["run_id"], "mktlab.best_run_name": best["run_name"], "mktlab.main_metric": table.metric, "mktlab.main_metric_mode": table.mode})
        swept = {key[len("sweep."):]: value for key, value in (table.parent.data.params if table.parent else {}).items()
                 if key.startswith("sweep.") and key[len("sweep."):] in record.swept}
        tracker.set_tags({NOTE: sweep_note(
            record.sweep_id, record.experiment_id, {key: swept.get(key, "") for key in record.swept}, jobs=list(table.frame["run_id"]) if not table.frame.empty else [],
            best=None if best is None else {"run_id": best["run_id"], "run_name": best["run_name"], "metric": table.metric, "mode": table.mode, "value": best[table.metric]},
            failed=len(failed))})
        optuna = Path(record.sweep_dir, "optimization_results.yaml")
        if optuna.is_file():
            tracker.log_artifact(optuna, "sweep")
        tracker.log_metrics({"sweep_jobs": len(table.frame), "sweep_failed_jobs": len(failed)})
        table.show(console, rows=rows, title=f"sweep {record.sweep_id} (parent run {record.parent_run_id})")
        if best is not None:
            console.print(f"best: {best['run_name']} ({table.metric} {best[table.metric]:.4f}) · run {best['run_id']}", soft_wrap=True)
        runs_route = links.runs_route(record.experiment_id, search=links.sweep_search(record.sweep_id))
        console.print(f"the sweep in MLflow: {links.how_to_open(record.tracking_uri, runs_route)}", soft_wrap=True)
        if best is not None:
            console.print(f"its best run: {links.url(record.tracking_uri, links.run_route(record.experiment_id, best['run_id']))}", soft_wrap=True)
        summarized = True
    except Exception as error:
        with contextlib.suppress(Exception):  # the store itself may be what failed
            reason = mask_uri(scrub_text(f"{type(error).__name__}: {error}", secret_values(record.tracking_uri)))
            tracker.set_tags({"mktlab.error": f"the sweep's summary could not be logged: {reason}"[:5000]})
        raise
    finally:
        client.set_terminated(record.parent_run_id, status="FINISHED" if summarized and not failed else "FAILED")
    if failed:
        lines = [f"{len(failed)} job(s) of sweep {record.sweep_id} failed:"]
        for job in failed:
            lines.append(f"  job {job['job_num']} ({sw.job_run_name(job.get('overrides') or [], record.swept)}): {job.get('error')}")
            lines.append(f"    notebook: {job.get('notebook') or 'none (the job failed before its notebook ran)'}")
        console.print("\n".join(lines), style="red", soft_wrap=True)  # paths stay on one line
    return failed


def write_record(folder: Path, files: dict[str, Any], secrets: set[str]) -> None:
    """Write YAML files only their owner can read, with credentials masked."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name, data in files.items():
        path = folder / name
        text = scrub_text(yaml.safe_dump(mask_secrets(data), sort_keys=False), secrets)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(path, 0o600)


class RecordCallback(Callback):
    """Hydra's record of each job (`.hydra/config.yaml`, `hydra.yaml`, `overrides.yaml` in its folder),
    written with credentials masked and readable by its owner only (Hydra's own writer is off:
    `hydra.output_subdir: null`)."""

    @failing_the_command("the job's record could not be written")
    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        overrides = list(config.hydra.overrides.task)
        secrets = secrets_in_overrides(overrides)
        task = _job_config(config)
        secrets |= secret_values(task)
        write_record(Path(str(config.hydra.runtime.output_dir)) / ".hydra",
                     {"config.yaml": task, "hydra.yaml": {"hydra": OmegaConf.to_container(config.hydra, enum_to_str=True)},
                      "overrides.yaml": overrides}, secrets)


class SweepCallback(Callback):
    """The sweep's parent run and its summary (see the module docstring).

    Args:
        rows: rows of the ranking printed at the end of a sweep.
    """

    def __init__(self, rows: int = 20) -> None:
        self.rows = rows
        self.record: sw.SweepRecord | None = None
        self._closed = False
        self.failure: str | None = None  # why the sweep could not go on, for its parent run

    @failing_the_command("the sweep could not start")
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        setup_sweep_process()
        secrets = secrets_in_overrides(config.hydra.overrides.task)
        try:
            with contextlib.suppress(Exception):  # a store the config cannot name fails the validation below, saying why
                open_store_early(str(OmegaConf.select(config, "tracking.uri")))  # in the kernel, while the jobs are validated
            count = validate_jobs(config)
            warm_up(config.hydra.launcher)  # joblib's workers start while the sweep opens
            self.record = open_sweep(config)
        except (ConfigError, StoreError) as error:
            console.print(f"[red]mktlab: {scrub_text(str(error), secrets)}[/red]", soft_wrap=True)
            raise SystemExit(1) from None
        if count:
            console.print(f"{count} job(s), each config validated", highlight=False)
        atexit.register(self._ended_early)

    @failing_the_command("the job's outcome could not be recorded")
    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        failure = job_failed(config, job_return)
        if failure is not None and failure.interrupted:
            console.print(f"[red]job {failure.job_num} interrupted[/red]; the sweep stops", soft_wrap=True)
            if self.record is not None:  # the sweep's own process (the basic launcher): stop here, before the next job
                raise KeyboardInterrupt(f"job {failure.job_num} was interrupted")
        elif failure is not None:
            console.print(f"[red]job {failure.job_num} failed[/red] ({failure.error}); the sweep goes on", soft_wrap=True)

    @failing_the_command("the sweep could not be closed")  # its parent run then ends FAILED, saying why (`_ended_early`)
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        _composed.clear()  # configs of jobs a launcher composed elsewhere (in its workers)
        forget_typed()
        record = self.record
        if record is None:  # published copies hold the store's URI masked: the config holds it whole
            published = sw.read_record(str(config.hydra.sweep.dir))
            if published is None:
                return
            record = replace(published, tracking_uri=_job_config(config)["tracking"]["uri"])
        wait_for_records()  # the runs recorded in the background are closed before they are ranked
        stop_waiting()
        failed = close_sweep(record, rows=self.rows)
        self._closed = True
        if failed:
            raise SystemExit(1)

    def _ended_early(self) -> None:
        """At exit: a sweep that never reached its end (interrupted, or a sweeper raised) leaves its parent FAILED,
        and a job whose worker was stopped before it could close its run (joblib stops its workers on Ctrl-C)
        leaves that run KILLED."""
        if self._closed or self.record is None:
            return
        client = get_client({"uri": self.record.tracking_uri})
        stranded = client.search_runs([self.record.experiment_id], max_results=10_000,
                                      filter_string=f"tags.`{sw.SWEEP_ID}` = '{self.record.sweep_id}' and attributes.status = 'RUNNING'")
        for run in stranded:
            if run.info.run_id != self.record.parent_run_id:
                client.set_tag(run.info.run_id, "mktlab.error", "interrupted: the sweep stopped while this job ran, before it could close its run")
                client.set_terminated(run.info.run_id, status="KILLED")
        if client.get_run(self.record.parent_run_id).info.status != "RUNNING":
            return
        client.set_tag(self.record.parent_run_id, "mktlab.error", self.failure or "the sweep stopped before its end (interrupted, or the sweeper raised)")
        client.set_terminated(self.record.parent_run_id, status="FAILED")
