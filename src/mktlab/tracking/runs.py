"""Opening a run: experiment lookup, run creation, flattened params and the config artifact.

The runner and a notebook opened by hand open runs the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from mktlab.config import flatten
from mktlab.tracking import provenance
from mktlab.config.secrets import mask_secrets, mask_uri, scrub_text, secret_values
from mktlab.tracking.store import StoreError, describe_cause, get_client, get_or_create_experiment
from mktlab.tracking.tracker import Tracker


# Overrides a run's name leaves out: the store, Hydra's and the runner's settings, the progress bar, what the name says already.
UNNAMED_OVERRIDES = ("model=", "notebook=", "tracking", "hydra", "paths.", "runner.", "trainer.progress=")
NAME_LENGTH = 80


def run_name(config: Mapping[str, Any], overrides: Sequence[str], *, now: datetime | None = None) -> str:
    """A name a person tells apart from the experiment's other runs: what ran, the overrides that
    made it differ from the default, and when it started.

    `mf 14:05:31` (the default job), `mf optim.lr=0.003,trainer.epochs=20 14:05:31`,
    `analysis params.alpha=0.5 14:05:31` (a notebook of one's own).
    """
    label = Path(str(config["notebook"])).stem if config.get("notebook") else config["model"]["name"]
    shown = ",".join(o for o in overrides if not o.lstrip("+~").startswith(UNNAMED_OVERRIDES))
    if len(shown) > NAME_LENGTH:
        shown = shown[: NAME_LENGTH - 1] + "…"
    return " ".join(filter(None, [label, shown, (now or datetime.now()).strftime("%H:%M:%S")]))


def run_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """The params a run records: its config flattened, without folders and the store. A run of a
    notebook of one's own (`notebook=...`) records its `params.*`, its seed and its notebook: the
    model's config beside it is not what it ran."""
    flat = flatten(config)
    if config.get("notebook"):
        return {k: v for k, v in flat.items() if k.startswith("params.") or k in ("seed", "notebook")}
    return {k: v for k, v in flat.items() if not k.startswith(("paths.", "tracking.", "params.", "runner."))}


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

    Raises:
        StoreError: the store cannot be opened or written; a run already created is marked
            FAILED with the cause in its `mktlab.error` tag.
    """
    client = get_client(config["tracking"])
    store = mask_uri(config["tracking"]["uri"])
    try:
        experiment_id = get_or_create_experiment(client, config["experiment_name"], config["tracking"].get("artifact_root"))
    except Exception as error:
        raise StoreError(f"cannot create experiment {config['experiment_name']!r} in the tracking store {store}: {describe_cause(error)}") from error
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
    secrets = secret_values(config)
    job_name = all_tags.pop("mlflow.runName", None)  # a sweep names its jobs by tag
    name = config.get("run_name") or job_name or run_name
    try:
        run = client.create_run(
            experiment_id,
            run_name=scrub_text(name, secrets) if name else None,
            tags={k: scrub_text(str(v), secrets) for k, v in all_tags.items()},
        )
    except Exception as error:
        raise StoreError(f"cannot create a run in the tracking store {store}: {describe_cause(error)}") from error
    tracker = Tracker(client, run.info.run_id, owns_run=owns_run)
    public = mask_secrets(config)
    try:
        tracker.log_params(run_params(public))
        tracker.log_text(yaml.safe_dump(public, sort_keys=False), "config.yaml")
        if diff:
            tracker.log_text(scrub_text(diff, secrets), "provenance/uncommitted.diff")
        tracker.log_text(provenance.frozen_requirements(), "provenance/requirements.txt")
    except Exception as error:
        where = run.info.artifact_uri if isinstance(error, OSError) else store
        message = f"cannot record run {run.info.run_id} in {mask_uri(where)}: {describe_cause(error)}"
        fail_run(client, run.info.run_id, message)
        raise StoreError(message) from error
    return tracker


def fail_run(client: Any, run_id: str, message: str) -> None:
    """Mark a run FAILED with `message` in its `mktlab.error` tag, as far as the store still lets it."""
    try:
        client.set_tag(run_id, "mktlab.error", message[:5000])
    except Exception:  # the store that just failed may refuse the tag too; the status matters more
        pass
    try:
        client.set_terminated(run_id, status="FAILED")
    except Exception:  # an unreachable store: nothing more can be recorded
        pass
