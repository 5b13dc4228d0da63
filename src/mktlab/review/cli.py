"""Shell commands of the review: `mktlab-runs` (ranking table, CSV) and `mktlab-review` (the review notebook).

Both take Hydra-style `key=value` arguments:

    mktlab-runs experiment=mf                      # the latest sweep of experiment mf, ranked
    mktlab-runs sweep_id=20260105-141503-a3f9 csv=ranking.csv
    mktlab-runs experiment=mf sweep_id=all metric=test_rmse rows=50
    mktlab-review experiment=mf                    # run notebooks/review_runs.ipynb, log it to the parent run
    mktlab-review sweep_id=<id> tracking=server    # against the MLflow server of conf/tracking/server.yaml
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from mktlab.config import paths, to_container
from mktlab.models import registry
from mktlab.review.report import store_uri
from mktlab.runner import setup_process
from mktlab.runner.execute import describe_error, execute, export_html
from mktlab.tracking import Tracker, get_client, links
from mktlab.tracking.sweeps import SWEEP_ID, find_sweep, load_runs

console = Console(stderr=True, highlight=False)

COMMON = {
    "experiment": "MLflow experiment (default: every experiment)",
    "sweep_id": "sweep id or parent run id (default: the latest sweep)",
    "tracking": "tracking config: sqlite (the project's store) | server",
    "tracking.uri": "an MLflow tracking URI (wins over tracking=)",
}
RUNS_KEYS = {
    **COMMON,
    "sweep_id": "sweep id or parent run id (default: the latest sweep); all: every run of the experiment",
    "metric": "rank by this metric (default: best_<monitor> of the runs)",
    "mode": "min | max for metric",
    "rows": "rows shown (default 20)",
    "csv": "also write the whole ranking to this CSV file",
}
REVIEW_KEYS = {
    **COMMON,
    "top": "runs whose learning curves are overlaid (default 5)",
    "output": "executed notebook path (default: review_runs.ipynb in the sweep folder)",
    "log": "true | false: log the review into the parent run (default true)",
}


class UsageError(ValueError):
    """A command-line argument is not `key=value` with a known key."""


def parse_args(argv: Sequence[str], keys: Mapping[str, str], command: str) -> dict[str, str]:
    """`["experiment=mf", "rows=5"]` -> `{"experiment": "mf", "rows": "5"}`; unknown keys fail."""
    if any(a in ("-h", "--help") for a in argv):
        console.print(f"usage: {command} [key=value ...]\n" + "\n".join(f"  {k:<13} {v}" for k, v in keys.items()))
        raise SystemExit(0)
    values = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in keys:
            raise UsageError(f"{command}: expected key=value with key in {', '.join(keys)}; got {arg!r}")
        values[key] = value
    return values


def store_overrides(args: Mapping[str, str]) -> list[str]:
    """The Hydra overrides choosing the store: `tracking=...` and `tracking.uri=...` as given."""
    return [f"{key}={args[key]}" for key in ("tracking", "tracking.uri") if args.get(key)]


def _run(main: Any, argv: Sequence[str] | None) -> None:
    setup_process()
    try:
        code = main(list(sys.argv[1:] if argv is None else argv))
    except (UsageError, LookupError, ValueError) as error:
        console.print(f"[red]{error}[/red]")
        code = 2 if isinstance(error, UsageError) else 1
    raise SystemExit(code)


def runs(argv: list[str]) -> int:
    args = parse_args(argv, RUNS_KEYS, "mktlab-runs")
    client = get_client({"uri": store_uri(overrides=store_overrides(args))})
    table = load_runs(client, experiment=args.get("experiment"), sweep_id=args.get("sweep_id"), metric=args.get("metric"), mode=args.get("mode"))
    title = f"sweep {table.sweep_id} (parent run {table.parent.info.run_id})" if table.parent else f"runs of experiment {args.get('experiment')}"
    table.show(Console(highlight=False), rows=int(args.get("rows", 20)), title=title)
    if args.get("csv"):
        path = Path(args["csv"]).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        table.frame.to_csv(path, index=False)
        console.print(f"ranking of {len(table.frame)} runs written to {path}")
    return 0


def review(argv: list[str]) -> int:
    args = parse_args(argv, REVIEW_KEYS, "mktlab-review")
    overrides = store_overrides(args)
    config = to_container(registry.compose(overrides))
    client = get_client({"uri": store_uri(config)})
    parent = find_sweep(client, experiment=args.get("experiment"), sweep_id=args.get("sweep_id"))
    sweep_id = parent.data.tags.get(SWEEP_ID, parent.info.run_id)
    if args.get("output"):
        output = Path(args["output"]).resolve()
    else:
        sweep_dir = Path(parent.data.tags.get("mktlab.sweep_dir", ""))
        folder = sweep_dir if parent.data.tags.get("mktlab.sweep_dir") and sweep_dir.is_dir() else paths.project_root() / "experiments" / "reviews" / sweep_id
        output = folder / "review_runs.ipynb"
    output.parent.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]mktlab-review[/bold] sweep {sweep_id} · parent run {parent.info.run_id} · {output}")
    outcome = execute(
        paths.notebooks_dir() / "review_runs.ipynb",
        output,
        parameters={
            "config": config,
            "run_id": parent.info.run_id,
            "overrides": overrides,
            "top": int(args.get("top", 5)),
            "log_to_parent": args.get("log", "true").lower() != "false",
        },
        cwd=output.parent,
    )
    if args.get("log", "true").lower() != "false" and output.is_file():
        tracker = Tracker(client, parent.info.run_id)
        tracker.log_artifact(output, "review")
        html = export_html(output)
        if html is not None:
            tracker.log_artifact(html, "review")
    if not outcome.ok:
        console.print(f"[red]review {outcome.status}: {describe_error(outcome.error) if outcome.error else ''}[/red]\nnotebook: {output}")
        return 1
    uri = store_uri(config)
    if args.get("log", "true").lower() != "false":
        console.print(f"review notebook: {output} (logged to parent run {parent.info.run_id} under review/)")
        route = links.run_route(parent.info.experiment_id, parent.info.run_id, artifact="review/review_runs.html")
        console.print(f"open it in MLflow: {links.how_to_open(uri, route)}", soft_wrap=True)
    else:
        console.print(f"review notebook: {output}")
    search = links.sweep_search(sweep_id) if parent.data.tags.get(SWEEP_ID) else None
    runs_route = links.runs_route(parent.info.experiment_id, search=search)
    console.print(f"the sweep's runs in MLflow: {links.url(uri, runs_route)}", soft_wrap=True)
    return 0


def runs_main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of `mktlab-runs`."""
    _run(runs, argv)


def review_main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of `mktlab-review`."""
    _run(review, argv)
