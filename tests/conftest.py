"""Shared fixtures: a throwaway MLflow store, config composition, and running `mktlab`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import mktlab.train  # noqa: F401  (before any JAX computation: one CPU device per core)
from mktlab.config import compose, to_dataclasses

ROOT = Path(__file__).resolve().parents[1]
MKTLAB = str(Path(sys.executable).with_name("mktlab"))


class Store:
    """A temporary MLflow store and the overrides that point a run at it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.artifacts = root / "mlartifacts"

    @property
    def overrides(self) -> list[str]:
        return [f"tracking.uri={self.uri}", f"tracking.artifact_root={self.artifacts}"]

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.uri)

    def runs(self, experiment: str) -> list:
        exp = self.client.get_experiment_by_name(experiment)
        return [] if exp is None else self.client.search_runs([exp.experiment_id])


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


@pytest.fixture
def cfg_for():
    """`cfg_for(["model=mf", ...])` -> typed config, as a notebook would get it."""
    return lambda overrides=(): to_dataclasses(compose(list(overrides)))


def run_mktlab(args: list[str], tmp_path: Path, *, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the `mktlab` command (a real Hydra app + Papermill kernel) with run folders under tmp_path."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [MKTLAB, *args, f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'multirun'}"]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def mktlab_cli(tmp_path: Path):
    return lambda args, **kw: run_mktlab(args, tmp_path, **kw)


def assert_rerun_reproduces(store: Store, run: object, tmp_path: Path) -> object:
    """`mktlab-rerun` of `run` says "identical metrics", and the new run's params and metrics (timings aside) equal the original's."""
    done = subprocess.run([str(Path(MKTLAB).with_name("mktlab-rerun")), run.info.run_id, "--tracking-uri", store.uri,
                           "--run-dir", str(tmp_path / "rerun")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "identical metrics" in done.stderr
    experiment = store.client.get_experiment(run.info.experiment_id).name
    (repeated,) = [r for r in store.runs(experiment) if r.data.tags.get("mktlab.rerun_of") == run.info.run_id]
    timing = {k for k in run.data.metrics if k.endswith("_seconds")}
    assert {k: v for k, v in repeated.data.metrics.items() if k not in timing} == {k: v for k, v in run.data.metrics.items() if k not in timing}
    assert repeated.data.params == run.data.params
    return repeated


@pytest.fixture
def rerun_reproduces(store: Store, tmp_path: Path):
    """`rerun_reproduces(run)`: see `assert_rerun_reproduces`."""
    return lambda run: assert_rerun_reproduces(store, run, tmp_path)
