"""`mktlab-rerun RUN_ID`: run a recorded run again and compare the metrics side by side."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from rich.table import Table

from mktlab.config import paths, to_container
from mktlab.config.secrets import MASK
from mktlab.models import registry
from mktlab.runner import setup_process
from mktlab.runner.app import console, exit_code, launch
from mktlab.runner.records import RunNotFound, default_tracking_uri, metric_table, read_run
from mktlab.tracking import provenance
from mktlab.tracking.store import get_client


def provenance_warnings(record) -> list[str]:
    """What differs between the run's recorded code and packages and the current ones."""
    warnings = []
    code, _ = provenance.code_state(paths.project_root())
    then, now = record.tags.get("mktlab.git.commit"), code.get("mktlab.git.commit")
    if then != now:
        warnings.append(f"code commit differs: the run used {then}, the checkout is at {now}")
    if code.get("mktlab.git.dirty") == "true" or record.tags.get("mktlab.git.dirty") == "true":
        warnings.append("uncommitted changes then or now: results may differ (the run's diff is its provenance/uncommitted.diff)")
    for name, version in provenance.package_versions().items():
        recorded = record.tags.get(f"mktlab.version.{name}")
        if recorded and recorded != version:
            warnings.append(f"{name} {recorded} then, {version} now")
    if MASK in str(record.config):
        warnings.append("the recorded config holds masked credentials: they are rerun as '****'")
    return warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mktlab-rerun", description="Run a recorded MLflow run again from its config and compare the metrics.")
    parser.add_argument("run_id", help="the run to repeat")
    parser.add_argument("--tracking-uri", default=None, help="the store holding the run (default: the project's)")
    parser.add_argument("--run-dir", default=None, help="folder for the executed notebook (default: experiments/runs/<experiment>/<time>-rerun)")
    args = parser.parse_args(argv)
    setup_process()

    uri = args.tracking_uri or default_tracking_uri()
    try:
        record = read_run(get_client({"uri": uri}), args.run_id)
    except RunNotFound as error:
        console.print(f"[red]mktlab-rerun: {error}[/red]")
        return 2
    for warning in provenance_warnings(record):
        console.print(f"[yellow]warning:[/yellow] {warning}")

    config = record.config
    config["paths"] = to_container(registry.compose())["paths"]  # this checkout's folders; the store stays the recorded one
    config["tracking"]["uri"] = uri
    try:
        registry.typed(config)
    except Exception as error:  # noqa: BLE001 - the schema changed since the run
        console.print(f"[red]mktlab-rerun: the recorded config no longer fits the schema: {error}[/red]")
        return 2
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f") + "-rerun"
    run_dir = Path(args.run_dir) if args.run_dir else Path(config["paths"]["experiments"], "runs", config["experiment_name"], stamp)
    tracker, outcome, *_ = launch(config, overrides=record.overrides, run_dir=run_dir, tags={"mktlab.rerun_of": record.run_id})
    new_metrics = tracker.client.get_run(tracker.run_id).data.metrics

    table = Table(title=f"metrics: original {record.run_id[:8]} vs rerun {tracker.run_id[:8]}")
    for column in ("metric", "original", "rerun", ""):
        table.add_column(column, justify="right" if column in ("original", "rerun") else "left")
    differing = 0
    for key, old, new, same in metric_table(record.metrics, new_metrics):
        differing += not same
        mark = "" if same else "[red]differs[/red]"
        table.add_row(key, "—" if old is None else f"{old:.6g}", "—" if new is None else f"{new:.6g}", mark)
    console.print(table)
    console.print("identical metrics" if not differing else f"[yellow]{differing} metric(s) differ[/yellow]")
    return exit_code(outcome)


def entry() -> None:
    sys.exit(main())
