"""Helpers of the sweep tests: a stub notebook whose jobs take a few seconds, and sweep commands.

The stub stands in for a model's notebook where a test is about the sweep machinery
(parallel writers, launchers, a tracking server, the Optuna sweeper) rather than a model:
it attaches to the runner's run like a real notebook, tags its monitor like the training
loop, and logs per-epoch and final metrics that depend on the config.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

STUB_SOURCE = """\
import math

from mktlab import session

cfg, tracker = session.start("mf", config=config, run_id=run_id, overrides=overrides)
if cfg.model.dim < 0:
    raise ValueError(f"model.dim={cfg.model.dim} must be positive")
tracker.set_tags({"mktlab.monitor": "val_rmse", "mktlab.monitor_mode": "min"})
score = abs(math.log10(cfg.optim.lr) + 2) + cfg.model.dim / 100 + cfg.seed / 1000
for epoch in range(1, cfg.trainer.epochs + 1):
    tracker.log_metrics({"train_loss": score + 2 / epoch, "val_rmse": score + 1 / epoch}, step=epoch)
tracker.log_metrics({"best_val_rmse": score + 1 / cfg.trainer.epochs, "best_epoch": cfg.trainer.epochs, "test_rmse": score + 0.5})
session.finish(tracker)
"""

# The value the stub logs as best_val_rmse.
def stub_score(lr: float, dim: int, seed: int = 0, epochs: int = 10) -> float:
    import math

    return abs(math.log10(lr) + 2) + dim / 100 + seed / 1000 + 1 / epochs


def stub_notebook(folder: Path) -> list[str]:
    """Write the stub notebook into `folder`; returns the overrides that make a job run it."""
    folder.mkdir(parents=True, exist_ok=True)
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    parameters = new_code_cell("overrides = []\nconfig = None\nrun_id = None")
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, new_code_cell(STUB_SOURCE)]
    nbformat.write(nb, folder / "sweep_stub.ipynb")
    return [f"paths.notebooks={folder}", "model.notebook=sweep_stub", "trainer.epochs=10", "trainer.progress=false"]


def sweep_runs(store, experiment: str = "mf") -> tuple[object, list]:
    """The sweep's parent run and its children (by the sweep id tag), children in job order."""
    runs = store.runs(experiment)
    parents = [r for r in runs if r.data.tags.get("mktlab.sweep_role") == "parent"]
    assert len(parents) == 1, f"expected one parent run, found {len(parents)}"
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mktlab.sweep_id") == parent.data.tags["mktlab.sweep_id"] and r is not parent]
    children = [r for r in children if r.info.run_id != parent.info.run_id]
    return parent, sorted(children, key=lambda r: int(r.data.tags["mktlab.job_num"]))


def artifact_paths(client, run_id: str, path: str | None = None) -> set[str]:
    """Every artifact file of a run, recursively."""
    found = set()
    for info in client.list_artifacts(run_id, path):
        found |= artifact_paths(client, run_id, info.path) if info.is_dir else {info.path}
    return found
