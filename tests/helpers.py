"""Helpers shared by the tests: typed configs from the project's YAML, a throwaway MLflow store,
running `mktlab`, artifact listings, a stub notebook for sweep tests, and small test inputs.

Importable from any test module (`from helpers import ...`): `tests/` is on pytest's
`pythonpath`. The config schemas hold no defaults, so a test never constructs a config
dataclass itself: it takes one composed from `conf/` and changes what it needs with
`dataclasses.replace` (the dataclasses are frozen).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
from mlflow.tracking import MlflowClient
from nbformat.v4 import new_code_cell, new_notebook

from mktlab.config import Config
from mktlab.config.schema import OptimConfig, TrainerConfig
from mktlab.models import registry
from mktlab.testing.contract import untimed  # noqa: F401  (re-exported for the tests)
from mktlab.tracking import get_client

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MKTLAB = str(BIN / "mktlab")


# --------------------------------------------------------------------------- configs


@functools.cache
def composed(*overrides: str) -> Config:
    """The typed config of `conf/` with Hydra `overrides`, as a notebook gets it (cached: it is frozen)."""
    return registry.typed(registry.compose(list(overrides)))


def trainer_config(**changes: Any) -> TrainerConfig:
    """`conf/trainer/default.yaml` with `changes`."""
    return dataclasses.replace(composed("trainer=default").trainer, **changes)


def optim_config(**changes: Any) -> OptimConfig:
    """`conf/optim/adam.yaml` with `changes`."""
    return dataclasses.replace(composed("optim=adam").optim, **changes)


def data_config(option: str, **changes: Any) -> Any:
    """The `data` node of `conf/data/<option>.yaml` with `changes` (not re-validated: a test of a
    loader's own errors may hand it values the schema would refuse)."""
    download = composed(f"data={option}", "data.download=true").data  # valid on its own: no folder needed
    return dataclasses.replace(download, **{"download": False, **changes})


def replace_in(cfg: Any, path: str, **changes: Any) -> Any:
    """`replace_in(cfg, "model.eval", cv_folds=0)`: a copy of the frozen `cfg` with `changes` at `path`."""
    if not path:
        return dataclasses.replace(cfg, **changes)
    head, _, rest = path.partition(".")
    return dataclasses.replace(cfg, **{head: replace_in(getattr(cfg, head), rest, **changes)})


# --------------------------------------------------------------------------- the store and the command


class Store:
    """A temporary MLflow store and the overrides that point a run at it."""

    def __init__(self, root: Path, *, template: Path | None = None) -> None:
        """`template`: an empty store's SQLite file to start from (a copy), so the commands under test
        open a store whose tables exist instead of each creating them (about 2 s of MLflow migrations)."""
        self.root = root
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.artifacts = root / "mlartifacts"
        if template is not None:
            root.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(template, root / "mlflow.db")

    @staticmethod
    def empty(folder: Path) -> Path:
        """A new store's SQLite file in `folder`, its tables created as mktlab opens a store (see `template`)."""
        database = folder / "mlflow.db"
        get_client({"uri": f"sqlite:///{database}"})
        return database

    @property
    def overrides(self) -> list[str]:
        return [f"tracking.uri={self.uri}", f"tracking.artifact_root={self.artifacts}"]

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.uri)

    def runs(self, experiment: str) -> list:
        exp = self.client.get_experiment_by_name(experiment)
        return [] if exp is None else self.client.search_runs([exp.experiment_id])


def run_mktlab(args: list[str], tmp_path: Path, *, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the `mktlab` command (a real Hydra app + Papermill kernel) with run folders under tmp_path."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [MKTLAB, *args, f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'multirun'}"]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


def assert_rerun_reproduces(store: Store, run: Any, tmp_path: Path) -> Any:
    """`mktlab-rerun` of `run` says "identical metrics", and the new run's params and metrics (timings aside) equal the original's."""
    done = subprocess.run([str(BIN / "mktlab-rerun"), run.info.run_id, "--tracking-uri", store.uri,
                           "--run-dir", str(tmp_path / "rerun")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "identical metrics" in done.stderr
    experiment = store.client.get_experiment(run.info.experiment_id).name
    (repeated,) = [r for r in store.runs(experiment) if r.data.tags.get("mktlab.rerun_of") == run.info.run_id]
    timing = {k for k in run.data.metrics if k.endswith("_seconds")}
    assert {k: v for k, v in repeated.data.metrics.items() if k not in timing} == {k: v for k, v in run.data.metrics.items() if k not in timing}
    assert repeated.data.params == run.data.params
    return repeated


def artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    """Every artifact file of a run, recursively."""
    found = set()
    for info in client.list_artifacts(run_id, path or None):
        found |= artifact_paths(client, run_id, info.path) if info.is_dir else {info.path}
    return found


def open_store_at_once(uri: str, barrier, results) -> None:
    """A spawned process of tests/tracking/test_store.py (a module the child can import by name)."""
    from mktlab.tracking.store import get_client

    barrier.wait()  # every process has imported MLflow: they open the store at the same moment
    try:
        client = get_client({"uri": uri})
        results.put(("ok", len(client.search_experiments())))
    except Exception as error:  # reported to the test, which names it
        results.put(("error", repr(error)))


# --------------------------------------------------------------------------- sweeps
#
# The stub stands in for a model's notebook where a test is about the sweep machinery
# (parallel writers, launchers, a tracking server, the Optuna sweeper) rather than a model.
# It runs as a notebook of one's own (`notebook=...`): its runs land in the experiment
# `sweep_stub` and record `params.*`, `seed` and `notebook` as their params. It attaches to
# the runner's run like a real notebook, tags its monitor like the session, and logs
# per-epoch and final metrics that depend on `params.lr`, `params.dim` and `seed`; a
# negative `params.dim` makes it raise (every job's config is valid: the failure is the
# notebook's).

STUB_EXPERIMENT = "sweep_stub"

STUB_SOURCE = """\
import math
import time

from mktlab import session

cfg, tracker = session.start("mf", config=config, run_id=run_id, overrides=overrides)
lr, dim = cfg.params.get("lr", 0.01), cfg.params.get("dim", 1)
if dim < 0:
    raise ValueError(f"params.dim={dim} must be positive")
tracker.set_tags({"mktlab.monitor": "val_rmse", "mktlab.monitor_mode": "min"})
if cfg.params.get("first_job_sleeps") and tracker.client.get_run(tracker.run_id).data.tags.get("mktlab.job_num") == "0":
    time.sleep(cfg.params["first_job_sleeps"])  # a slow first job of a sweep
score = abs(math.log10(lr) + 2) + dim / 100 + cfg.seed / 1000
for epoch in range(1, cfg.trainer.epochs + 1):
    tracker.log_metrics({"train_loss": score + 2 / epoch, "val_rmse": score + 1 / epoch}, step=epoch)
tracker.log_metrics({"best_val_rmse": score + 1 / cfg.trainer.epochs, "best_epoch": cfg.trainer.epochs, "test_rmse": score + 0.5})
session.finish(tracker)
"""


def stub_score(lr: float = 0.01, dim: int = 1, seed: int = 0, epochs: int = 10) -> float:
    """The value the stub logs as best_val_rmse (`params.lr`, `params.dim` and `seed` of its job)."""
    return abs(math.log10(lr) + 2) + dim / 100 + seed / 1000 + 1 / epochs


def stub_notebook(folder: Path) -> list[str]:
    """Write the stub notebook into `folder`; returns the overrides that make a job run it (sweep
    `params.dim`, `params.lr` and `seed` on top)."""
    folder.mkdir(parents=True, exist_ok=True)
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    parameters = new_code_cell("overrides = []\nconfig = None\nrun_id = None")
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, new_code_cell(STUB_SOURCE)]
    nbformat.write(nb, folder / f"{STUB_EXPERIMENT}.ipynb")
    return [f"notebook={folder / f'{STUB_EXPERIMENT}.ipynb'}", "trainer.epochs=10", "trainer.progress=false"]


def sweep_runs(store: Store, experiment: str = STUB_EXPERIMENT) -> tuple[Any, list]:
    """The sweep's parent run and its children (by the sweep id tag), children in job order."""
    runs = store.runs(experiment)
    parents = [r for r in runs if r.data.tags.get("mktlab.sweep_role") == "parent"]
    assert len(parents) == 1, f"expected one parent run, found {len(parents)}"
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mktlab.sweep_id") == parent.data.tags["mktlab.sweep_id"]]
    children = [r for r in children if r.info.run_id != parent.info.run_id]
    return parent, sorted(children, key=lambda r: int(r.data.tags["mktlab.job_num"]))


# --------------------------------------------------------------------------- small inputs

VOCAB = 30  # item ids of `click_batch`: 1..VOCAB-1, 0 is the padding


def click_batch(seed: int = 0, n: int = 6, max_len: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A batch of click histories of lengths 0, 1, 2, 3, 5, 4 (padded with PAD): history, clicks, lengths, items."""
    from mktlab.data.clicklog import PAD

    rng = np.random.default_rng(seed)
    lengths = np.array([0, 1, 2, 3, 5, 4][:n], np.int32)
    slots = np.arange(max_len)[None, :] < lengths[:, None]
    history = np.where(slots, rng.integers(1, VOCAB, (n, max_len)), PAD).astype(np.int32)
    clicks = np.where(slots, rng.integers(0, 2, (n, max_len)), 0).astype(np.float32)
    return history, clicks, lengths, rng.integers(1, VOCAB, n).astype(np.int32)


def coil_rows(n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` customers with the 85 attributes of the CoIL 2000 files in plausible ranges."""
    from mktlab.data.tabular import CATEGORICAL, FEATURES

    rows = rng.integers(0, 10, size=(n, len(FEATURES)))
    rows[:, FEATURES.index("MOSTYPE")] = rng.integers(1, CATEGORICAL["MOSTYPE"] + 1, n)
    rows[:, FEATURES.index("MOSHOOFD")] = rng.integers(1, CATEGORICAL["MOSHOOFD"] + 1, n)
    return rows


def write_lines(path: Path, rows) -> None:
    path.write_text("".join("\t".join(str(v) for v in row) + "\n" for row in rows))


def write_coil(folder: Path, *, n_train: int = 120, n_eval: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Small challenge files in the original format; returns the training and evaluation targets."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    train_y = (np.arange(n_train) % 5 == 0).astype(int)
    eval_y = (np.arange(n_eval) % 4 == 0).astype(int)
    write_lines(folder / "ticdata2000.txt", np.column_stack([coil_rows(n_train, rng), train_y]))
    write_lines(folder / "ticeval2000.txt", coil_rows(n_eval, rng))
    write_lines(folder / "tictgts2000.txt", eval_y[:, None])
    return train_y, eval_y


def noisy_response_data(n: int = 1200, *, seed: int = 0, noise_columns: int = 4) -> Any:
    """A small response table, split and encoded as the MLP gets it: buyers (about 10%) depend on
    `x0`, on whether `x1` is 6 or 7 and on the code 3, with label noise, so that networks trained
    from different seeds disagree; `noise_columns` columns carry no signal."""
    import pandas as pd

    from mktlab.data.tabular import TabularTable, prepare

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x0": rng.integers(0, 10, n), "x1": rng.integers(0, 10, n)})
    for j in range(noise_columns):
        frame[f"z{j}"] = rng.integers(0, 10, n)
    frame["code"] = rng.integers(1, 4, n)
    logit = -3.6 + 0.25 * frame["x0"] + 1.6 * frame["x1"].isin([6, 7]) + 1.0 * (frame["code"] == 3)
    labels = (rng.random(n) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(np.int8)
    table = TabularTable(frame, labels, np.arange(1, n + 1), {"code": 3}, "noisy")
    order = rng.permutation(n)
    return prepare(table, np.sort(order[: n // 2]), np.sort(order[n // 2 : 3 * n // 4]), np.sort(order[3 * n // 4 :]))


def stop_what_waits_in(temp: Path) -> None:
    """Kill the kernels and standby runners that `mktlab` commands run with `TMPDIR=temp` left waiting, including a
    standby still importing (its arguments name its folder under `temp`; a command starts it before it ends)."""
    import psutil

    for process in psutil.process_iter(["cmdline"]):
        if str(temp) in " ".join(process.info["cmdline"] or []):
            try:
                process.kill()
            except psutil.Error:
                pass


def gone_within(pid: int, seconds: float) -> bool:
    """Whether process `pid` ends (or is a zombie) within `seconds`."""
    import time

    import psutil

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.2)
    return False


def children_named(pid: int, pattern: str) -> list:
    """The live descendants of process `pid` whose command line holds `pattern` (none if `pid` is gone)."""
    import psutil

    def command_line(process: psutil.Process) -> str:
        try:
            return " ".join(process.cmdline())
        except psutil.Error:  # ended meanwhile
            return ""

    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if pattern in command_line(p)]
    except psutil.Error:
        return []


def wait_for_training(store: Store, process: subprocess.Popen, timeout: float = 300, job: str | None = None) -> None:
    """Until the first epoch of an MF run of `store` (of sweep job `job`, if given) is logged (its fit cell runs)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        try:
            for run in store.runs("mf"):
                if "train_loss" in run.data.metrics and job in (None, run.data.tags.get("mktlab.job_num")):
                    return
        except Exception:  # the store is being created
            pass
        time.sleep(0.5)
    raise AssertionError("training never started")
