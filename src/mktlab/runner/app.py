"""`mktlab`: the Hydra app that runs a model's notebook as a tracked MLflow run.

    mktlab model=mf optim.lr=0.003 trainer.epochs=20
    mktlab -m model=mf model.dim=16,32 seed=0,1
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any, NamedTuple

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from mktlab.config import ConfigError, paths, to_container
from mktlab.config.secrets import scrub_text, secret_values, secrets_in_overrides
from mktlab.models import registry
from mktlab.models.registry import UnknownModel
from mktlab.runner import setup_process
from mktlab.runner.execute import Outcome, describe_error, execute, export_html
from mktlab.runner.job_configs import typed_already
from mktlab.runner.kernel import kernel_for
from mktlab.runner.notebooks import notebook_path
from mktlab.runner.background import record_later, record_while_running
from mktlab.runner.sweep import JobInterrupted, job_tags, read_record
from mktlab.tracking import Tracker, figure_handoff, links, open_run, run_name
from mktlab.tracking.store import StoreError, describe_cause

registry.register()
console = Console(stderr=True, highlight=False)

# The final metrics a run's summary shows (the contract's names): the model's test metrics, its
# baselines' and references', cross-validation, and the monitored metric's best value and epoch.
SUMMARY_PREFIXES = ("test_", "baseline_", "reference_", "cv_", "best_")


class RunFailed(RuntimeError):
    """A job failed (its notebook raised or was interrupted, its config or store was bad); the message says why."""


TRACEBACK_ENV = "MKTLAB_TRACEBACK"  # 1: print the full traceback of a failure too (as does hydra.verbose=true)


def full_traceback_wanted() -> bool:
    if os.environ.get(TRACEBACK_ENV, "").lower() in ("1", "true", "yes"):
        return True
    return HydraConfig.initialized() and bool(HydraConfig.get().verbose)


def in_sweep() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def in_sweep_process(hydra_cfg: Any) -> bool:
    """Whether this sweep job runs in the process that ends the sweep (Hydra's basic launcher)."""
    record = read_record(hydra_cfg.sweep.dir) if hydra_cfg.mode == RunMode.MULTIRUN else None
    return record is not None and record.launcher_pid == os.getpid()


def stop(message: str, *, secrets: set[str] = frozenset(), code: int = 1) -> None:
    """End a single run with one line saying what is wrong (the traceback on request); raise `RunFailed` in a sweep."""
    message = scrub_text(message, secrets)
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise RunFailed(message)
    if full_traceback_wanted():
        console.print_exception()
    console.print(f"[red]mktlab: {message}[/red]", soft_wrap=True)
    if not full_traceback_wanted():
        console.print(f"[dim](set {TRACEBACK_ENV}=1 for the full traceback)[/dim]")
    sys.exit(code)


def scrub(path: Path, secrets: set[str]) -> None:
    """Replace every secret value in a text file (the executed notebook) by the mask."""
    if path.is_file():
        path.write_text(scrub_text(path.read_text(encoding="utf-8"), secrets), encoding="utf-8")


def figure_logger(tracker: Any) -> figure_handoff.Log:
    """How a figure handed over is logged: into the run it names, through `tracker`'s store."""
    def log(run_id: str, png: bytes, artifact_file: str) -> None:
        Tracker(tracker.client, run_id).log_bytes(png, artifact_file)

    return log


def draw_figures(tracker: Any, output: Path, figures: figure_handoff.Drawer) -> None:
    """Draw and log the figures the job handed over and `figures` has not drawn yet (`figure_handoff`), and
    put them all in their places in the executed notebook."""
    drawn = figures.finish(figure_logger(tracker))
    if drawn and output.is_file():
        import nbformat

        book = nbformat.read(output, as_version=4)
        figure_handoff.fill_in(book, drawn)
        nbformat.write(book, output)


def finalize(tracker: Any, output: Path, outcome: Outcome, secrets: set[str] = frozenset(),
             figures: figure_handoff.Drawer | None = None) -> None:
    """Draw the figures the job handed over (`figures`, its folder then removed), log the executed notebook
    (ipynb + HTML, secrets masked) and set the run's final status.

    A figure that cannot be drawn or a notebook that cannot be logged (an artifact store gone
    read-only, say) fails the run with the cause in `mktlab.error`; the run is closed whatever happens.
    """
    status, error = outcome.status, describe_error(outcome.error) if outcome.error is not None else None
    try:
        if figures is not None:
            try:
                draw_figures(tracker, output, figures)
            except Exception as failure:
                status = "FAILED" if status == "FINISHED" else status
                error = f"{error + '; ' if error else ''}a figure the notebook made could not be drawn or logged: {describe_cause(failure)}"
            finally:
                figure_handoff.remove(figures.source)
        scrub(output, secrets)
        if output.is_file():
            tracker.log_artifact(output, "notebook")
            html = export_html(output)
            if html is not None:
                tracker.log_artifact(html, "notebook")
    except Exception as failure:  # the store refused the notebook: the run cannot count as finished
        status = "FAILED" if status == "FINISHED" else status
        error = f"{error + '; ' if error else ''}the executed notebook could not be logged: {describe_cause(failure)}"
    finally:
        if error is not None:
            fail_tag = {"mktlab.error": scrub_text(error, secrets)[:5000]}
            try:
                tracker.set_tags(fail_tag)
            except Exception:  # the store is gone: the status below is the last try
                pass
        tracker.client.set_terminated(tracker.run_id, status=status)
    if status != outcome.status:
        raise StoreError(scrub_text(error or "", secrets))


def _finalize_reporting(tracker: Any, output: Path, outcome: Outcome, secrets: set[str], figures: figure_handoff.Drawer | None) -> None:
    try:
        finalize(tracker, output, outcome, secrets, figures)
    except Exception as error:  # the run is closed FAILED by then; the sweep's summary counts it
        console.print(f"[red]mktlab: run {tracker.run_id}: {scrub_text(str(error), secrets)}[/red]", soft_wrap=True)


def print_summary(run: Any, config: dict[str, Any], output: Path) -> None:
    table = Table(title=f"run {run.info.run_id} ({run.info.run_name})", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(run.data.metrics):
        if key.startswith(SUMMARY_PREFIXES):
            table.add_row(key, f"{run.data.metrics[key]:.4f}")
    console.print(table)
    console.print(f"executed notebook: {output}")
    route = links.run_route(run.info.experiment_id, run.info.run_id)
    console.print(f"open it in MLflow: {links.how_to_open(config['tracking']['uri'], route)}", soft_wrap=True)


class Launched(NamedTuple):
    """What `launch` leaves: the run's tracker, how its notebook ended, the executed notebook, and the
    metrics the run logged (those of a finished run; empty otherwise)."""

    tracker: Any
    outcome: Outcome
    output: Path
    metrics: dict[str, float]


def launch(
    config: dict[str, Any], *, overrides: list[str], run_dir: Path, tags: dict[str, str] | None = None,
    record_in_background: bool = False,
) -> Launched:
    """Open the run, execute the model's notebook into `run_dir`, log it, set the status.

    Used by the Hydra app and by `mktlab-rerun` (which launches a recorded config). With
    `record_in_background` (a sweep's jobs in the sweep's own process), a finished run's
    notebook is logged and the run closed on a background thread while the next job runs.
    """
    notebook = notebook_path(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    secrets = secret_values(config) | secrets_in_overrides(overrides)
    reuse = in_sweep() and config["runner"]["reuse_kernel"]
    # a run recorded while the next job runs has its figures drawn there too, on this process's thread
    figures = figure_handoff.Drawer(figure_handoff.new_folder()) if record_in_background else None
    environment = {figure_handoff.FOLDER_ENV: str(figures.source)} if figures is not None else None
    # imports JAX, opens the store, ... while the run is opened
    kernel = kernel_for(notebook, run_dir, config["tracking"], environment)
    try:
        tracker = open_run(
            config,
            notebook=notebook,
            run_name=run_name(config, overrides),
            tags={"mktlab.origin": "runner", "mktlab.overrides": " ".join(overrides), "mktlab.run_dir": str(run_dir), **(tags or {})},
        )
    except BaseException:
        if kernel is not None:
            kernel.shutdown()
        if figures is not None:
            figure_handoff.remove(figures.source)
        raise
    output = run_dir / notebook.name
    console.print(f"[bold]mktlab[/bold] run {tracker.run_id} · experiment '{config['experiment_name']}' · notebook {notebook.name}")
    job_ended, drawing = threading.Event(), None
    try:
        if figures is not None:  # drawn as the job hands them over, once the runs before are recorded: a sweep's
            # last job has its figures drawn before it ends, not after
            drawing = record_while_running(lambda: figures.draw_while(lambda: not job_ended.is_set(), figure_logger(tracker)))
        outcome = execute(
            notebook,
            output,
            # a notebook of one's own also gets each of `params` as a parameter of its own (params.alpha=0.5 -> alpha)
            parameters={**(config.get("params") or {}), "config": config, "run_id": tracker.run_id, "overrides": overrides},
            cwd=run_dir,
            progress=config["trainer"]["progress"],
            kernel=kernel,
            reuse=reuse,
            park=not in_sweep(),  # a sweep's last kernel is parked when the sweep ends
        )
    finally:
        job_ended.set()
    if outcome.ok and record_in_background:
        record_later(lambda: _finalize_reporting(tracker, output, outcome, secrets, figures))
    else:
        if drawing is not None and not drawing.cancel():
            drawing.result()  # the figures are finished on this thread: the drawing stops first
        finalize(tracker, output, outcome, secrets, figures)
    metrics: dict[str, float] = {}
    if outcome.ok:
        run = tracker.client.get_run(tracker.run_id)
        metrics = dict(run.data.metrics)
        print_summary(run, config, output)
    else:
        message = (
            f"run {tracker.run_id} {outcome.status}: {describe_error(outcome.error) if outcome.status == 'FAILED' else 'interrupted'}\n"
            f"partial notebook: {output}"
        )
        console.print(f"[red]mktlab: {notebook.stem} {scrub_text(message, secrets)}[/red]", soft_wrap=True)
    return Launched(tracker, outcome, output, metrics)


def exit_code(outcome: Outcome) -> int:
    return 0 if outcome.ok else 130 if outcome.status == "KILLED" else 1


def run_job(cfg: DictConfig) -> dict[str, float]:
    """One Hydra job: validate, launch, and report.

    Returns the run's final metrics. Raises `RunFailed` (in a sweep, so the other jobs
    go on) or exits non-zero (a single run) when the notebook raised or was interrupted.
    """
    setup_process()  # sweep jobs run in launcher workers too
    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    secrets = secrets_in_overrides(overrides)
    try:
        config = to_container(cfg)
        if config.get("notebook"):  # the kernel runs elsewhere: a notebook of one's own is named by its absolute path
            config["notebook"] = str(Path(config["notebook"]).expanduser().resolve())
        if not (in_sweep() and typed_already(hydra_cfg)):  # the sweep's start typed it already
            registry.typed(config)  # the same validation the notebook applies, before any run exists
    except (ConfigError, UnknownModel) as error:
        stop(f"Error in config: {error}", secrets=secrets)
    secrets |= secret_values(config)
    try:
        # a sweep job's run is a child of the sweep's parent run (job_tags)
        tracker, outcome, output, metrics = launch(config, overrides=overrides, run_dir=Path(hydra_cfg.runtime.output_dir), tags=job_tags(hydra_cfg),
                                          record_in_background=in_sweep_process(hydra_cfg) and config["runner"]["reuse_kernel"])
    except (StoreError, FileNotFoundError) as error:
        stop(str(error), secrets=secrets)
    if outcome.ok:
        return metrics
    if hydra_cfg.mode == RunMode.MULTIRUN:
        if outcome.status == "KILLED":  # Ctrl-C: the sweep stops (`SweepCallback.on_job_end`, the sweepers)
            raise JobInterrupted(f"run {tracker.run_id} KILLED: interrupted\npartial notebook: {output}")
        raise RunFailed(f"run {tracker.run_id} {outcome.status}: {describe_error(outcome.error)}\npartial notebook: {output}")
    sys.exit(exit_code(outcome))


@hydra.main(config_path=str(paths.conf_dir()), config_name="config", version_base="1.3")
def _app(cfg: DictConfig) -> dict[str, float]:
    return run_job(cfg)


def main() -> None:
    """Console entry point of `mktlab` (via `mktlab.runner.cli`, which may have started the kernel already)."""
    _app()


if __name__ == "__main__":
    main()
