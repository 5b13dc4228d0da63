"""Opening a run: experiment lookup, run creation, flattened params and the config artifact.

The runner and a notebook opened by hand open runs the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from mktlab.config import flatten
from mktlab.tracking.store import get_client, get_or_create_experiment
from mktlab.tracking.tracker import Tracker


def run_name_from_overrides(overrides: Sequence[str]) -> str | None:
    """`["model=mf", "optim.lr=0.003"]` -> `"model=mf,optim.lr=0.003"` (None when empty)."""
    return ",".join(overrides) or None


def open_run(
    config: Mapping[str, Any],
    *,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    parent_run_id: str | None = None,
    owns_run: bool = False,
) -> Tracker:
    """Create an MLflow run for a resolved config and log the config into it.

    Args:
        config: the resolved config as a plain dict.
        run_name: the run's name; `config["run_name"]` wins when set.
        tags: extra tags (`config["tags"]` is added too).
        parent_run_id: makes the run a child (sweeps).
        owns_run: whether `Tracker.finish` ends the run.
    """
    client = get_client(config["tracking"])
    experiment_id = get_or_create_experiment(
        client, config["experiment_name"], config["tracking"].get("artifact_root")
    )
    all_tags = {
        "mktlab.model": config["model"]["name"],
        "mktlab.data": config["data"]["name"],
        **dict(config.get("tags") or {}),
        **dict(tags or {}),
    }
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(
        experiment_id, run_name=config.get("run_name") or run_name, tags={k: str(v) for k, v in all_tags.items()}
    )
    tracker = Tracker(client, run.info.run_id, owns_run=owns_run)
    tracker.log_params({k: v for k, v in flatten(config).items() if not k.startswith(("paths.", "tracking."))})
    tracker.log_text(yaml.safe_dump(dict(config), sort_keys=False), "config.yaml")
    return tracker
