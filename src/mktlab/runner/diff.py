"""`mktlab-diff RUN_A RUN_B`: what differs between two runs."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

from mktlab.tracking.store import get_client
from mktlab.runner.records import RunNotFound, RunRecord, default_tracking_uri, metric_table, read_run

SECTIONS = {
    "code": ("mktlab.git.", "mktlab.notebook_sha256"),
    "package versions": ("mktlab.version.",),
    "data": ("mktlab.data.",),
    "environment": ("mktlab.platform", "mktlab.cpu", "mktlab.jax.", "mktlab.prng_impl"),
}


def differences(a: RunRecord, b: RunRecord) -> dict[str, list[tuple[str, str, str]]]:
    """Section -> rows (key, value in A, value in B) of what differs."""

    def rows(left: dict, right: dict) -> list[tuple[str, str, str]]:
        return [(k, str(left.get(k, "—")), str(right.get(k, "—"))) for k in sorted(set(left) | set(right)) if left.get(k) != right.get(k)]

    out = {"config": rows(a.params, b.params)}
    for section, prefixes in SECTIONS.items():
        pick = lambda tags: {k: v for k, v in tags.items() if k.startswith(prefixes)}  # noqa: E731
        out[section] = rows(pick(a.tags), pick(b.tags))
    out["metrics"] = [(k, str(va), str(vb)) for k, va, vb, same in metric_table(a.metrics, b.metrics) if not same]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mktlab-diff", description="Print what differs between two MLflow runs.")
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    parser.add_argument("--tracking-uri", default=None, help="the store holding the runs (default: the project's)")
    args = parser.parse_args(argv)

    console = Console()
    client = get_client({"uri": args.tracking_uri or default_tracking_uri()})
    try:
        a, b = read_run(client, args.run_a), read_run(client, args.run_b)
    except RunNotFound as error:
        console.print(f"[red]mktlab-diff: {error}[/red]")
        return 2
    for section, rows in differences(a, b).items():
        if not rows:
            console.print(f"[green]{section}: same[/green]")
            continue
        table = Table(title=section)
        table.add_column("key")
        table.add_column(f"A {a.run_id[:8]}")
        table.add_column(f"B {b.run_id[:8]}")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    return 0


def entry() -> None:
    sys.exit(main())
