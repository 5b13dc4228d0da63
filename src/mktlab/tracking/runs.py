"""Opening a run: experiment lookup, run creation, flattened params and the config artifact.

The runner and a notebook opened by hand open runs the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from mktlab.config import flatten
from mktlab.tracking import provenance
from mktlab.tracking.store import get_client, get_or_create_experiment
from mktlab.tracking.tracker import Tracker


def run_name_from_overrides(overrides: Sequence[str]) -> str | None:
    """`["model=mf", "optim.lr=0.003"]` -> `"model=mf,optim.lr=0.003"` (None when empty)."""
    return ",".join(overrides) or None


def run_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """The params a run records: its config flattened, without folders and the store. A run of a
    notebook of one's own (`notebook=...`) records its `params.*`, its seed and its notebook: the
    model's config beside it is not what it ran."""
    flat = flatten(config)
    if config.get("notebook"):
        return {k: v for k, v in flat.items() if k.startswith("params.") or k in ("seed", "notebook")}
    return {k: v for k, v in flat.items() if not k.startswith(("paths.", "tracking.", "params."))}


def open_run(
    config: Mapping[str, Any],
    *,
    notebook: Path | None,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    parent_run_id: str | None = None,
    owns_run: bool = False,
) -> Tracker:
    """Create an MLflow run for a resolved config and log the config and its provenance into it.

    Recorded: the config (credentials masked) as flattened params and `config.yaml`; git
    commit, branch, dirty flag and the uncommitted diff; the notebook's content hash;
    Python and package versions, platform, CPU and the installed distributions.

    Args:
        config: the resolved config as a plain dict.
        notebook: the notebook the run executes (its content hash is recorded), if any.
        run_name: the run's name; `config["run_name"]` wins when set.
        tags: extra tags (`config["tags"]` is added too).
        parent_run_id: makes the run a child (sweeps).
        owns_run: whether `Tracker.finish` ends the run.
    """
    client = get_client(config["tracking"])
    experiment_id = get_or_create_experiment(
        client, config["experiment_name"], config["tracking"].get("artifact_root")
    )
    root = Path(config["paths"]["root"])
    code_tags, diff = provenance.code_state(root)
    all_tags = {
        **({} if config.get("notebook") else {"mktlab.model": config["model"]["name"], "mktlab.data": config["data"]["name"]}),
        **({"mktlab.notebook": str(notebook), "mktlab.notebook_sha256": provenance.file_sha256(notebook)} if notebook else {}),
        **code_tags,
        **provenance.environment_tags(),
        **dict(config.get("tags") or {}),
        **dict(tags or {}),
    }
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    secrets = provenance.secret_values(config)
    name = config.get("run_name") or all_tags.pop("mlflow.runName", None) or run_name  # a sweep names its jobs by tag
    run = client.create_run(
        experiment_id,
        run_name=provenance.scrub_text(name, secrets) if name else None,
        tags={k: provenance.scrub_text(str(v), secrets) for k, v in all_tags.items()},
    )
    tracker = Tracker(client, run.info.run_id, owns_run=owns_run)
    public = provenance.mask_secrets(config)
    tracker.log_params(run_params(public))
    tracker.log_text(yaml.safe_dump(public, sort_keys=False), "config.yaml")
    if diff:
        tracker.log_text(diff, "provenance/uncommitted.diff")
    tracker.log_text(provenance.frozen_requirements(), "provenance/requirements.txt")
    return tracker
