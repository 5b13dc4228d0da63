"""The notebook side of a run.

Under the runner, a notebook receives the resolved `config` and the `run_id` in its
injected parameters and logs into that run. Opened by hand (JupyterLab), it has neither:
`start` then composes the default config with the notebook's `overrides` and opens a
run of its own, which `finish` closes (or an error in a later cell marks FAILED).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from tqdm import TqdmExperimentalWarning, TqdmWarning

# Libraries imported below reach for tqdm's widget bar, which a kernel run by Papermill cannot show.
warnings.filterwarnings("ignore", category=TqdmWarning)
warnings.filterwarnings("ignore", category=TqdmExperimentalWarning)

from mktlab.config import Config, compose, to_container, to_dataclasses
from mktlab.tracking import Tracker, get_client, open_run, run_name_from_overrides


def start(
    model: str,
    *,
    config: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    overrides: Sequence[str] = (),
) -> tuple[Config, Tracker]:
    """The run's typed config and its tracker.

    Args:
        model: the notebook's model (`model=<model>` unless `overrides` names another).
        config: the resolved config the runner injected; None composes one.
        run_id: the MLflow run the runner opened; None opens one.
        overrides: Hydra overrides applied when composing, e.g. `["trainer.epochs=5"]`.
    """
    if config is None:
        overrides = list(overrides)
        if not any(o.split("=", 1)[0].lstrip("+~") == "model" for o in overrides):
            overrides.insert(0, f"model={model}")
        config = to_container(compose(overrides))
    cfg = to_dataclasses(config)
    if run_id:
        return cfg, Tracker(get_client(cfg.tracking), run_id, owns_run=False)
    tracker = open_run(config, run_name=run_name_from_overrides(overrides), tags={"mktlab.origin": "notebook"}, owns_run=True)
    _fail_run_on_error(tracker)
    print(f"MLflow run {tracker.run_id} in experiment '{cfg.experiment_name}' ({cfg.tracking.uri})")
    return cfg, tracker


def finish(tracker: Tracker) -> None:
    """Close a run the notebook opened itself (the runner closes its own)."""
    tracker.finish("FINISHED")


def _fail_run_on_error(tracker: Tracker) -> None:
    """In IPython, mark the notebook's own run FAILED when a later cell raises."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def on_cell(result: Any) -> None:
        if result.error_in_exec is not None and tracker.owns_run:
            tracker.finish("FAILED")
            shell.events.unregister("post_run_cell", on_cell)

    shell.events.register("post_run_cell", on_cell)
