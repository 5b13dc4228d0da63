"""The contract tests: what every mktlab model passes, the built-in ones and a researcher's own.

A model's test module imports them and names the model(s) to check:

    from mktlab.testing.contract import *  # noqa: F401,F403

    @pytest.fixture(scope="module", params=["churn"])
    def model_name(request):
        return request.param

Each test runs on the model's `spec.tiny` overrides (a run of seconds): the config composes
and validates; one training epoch keeps the state's shapes and gives finite metrics; the
monitored metric improves; the same seed gives identical metrics; seeds trained together
equal separate runs; and (marker `slow`) the real `mktlab -m` command runs the model's
notebook as three jobs in one reused kernel into FINISHED MLflow runs with identical metrics,
which `mktlab-rerun` (a fresh kernel) reproduces exactly, figures too (byte for byte).
"""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from mktlab import session
from mktlab.config.schema import Config
from mktlab.models import registry
from mktlab.models.contract import Monitor
from mktlab.train import runtime
from mktlab.train.keys import run_keys
from mktlab.train.loop import SeedResults

__all__ = [
    "tiny_config", "tiny_data", "contract_cache", "contract_store", "test_config_composes_and_validates", "test_one_epoch_keeps_shapes_and_finite_metrics",
    "test_monitored_metric_improves", "test_same_seed_gives_identical_metrics", "test_seeds_together_equal_separate_runs",
    "test_a_sweep_in_a_reused_kernel_records_full_runs_that_rerun_identically",
]

TIMING = "_seconds"  # metrics that measure time differ between identical runs
BIN = Path(sys.executable).parent


def _typed(overrides: list[str]) -> Config:
    return registry.typed(registry.compose(overrides))


def _tiny(model_name: str, *extra: str) -> Config:
    runtime.setup()
    spec = registry.get(model_name)
    return _typed([f"model={model_name}", *spec.tiny, "trainer.progress=false", *extra])


@pytest.fixture(scope="module")
def contract_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One data cache per test module (e.g. an evaluation classifier trained once)."""
    return f"paths.cache={tmp_path_factory.mktemp('contract-cache')}"


@pytest.fixture(scope="module")
def tiny_config(model_name: str, contract_cache: str) -> Config:
    """The model's tiny config (its `spec.tiny` overrides)."""
    return _tiny(model_name, contract_cache)


@pytest.fixture(scope="module")
def tiny_data(tiny_config: Config):
    return session.load(tiny_config)


@pytest.fixture
def contract_store(tmp_path: Path) -> dict[str, str]:
    root = tmp_path / "store"
    return {"uri": f"sqlite:///{root / 'mlflow.db'}", "artifacts": str(root / "mlartifacts")}


def untimed(metrics: dict[str, float]) -> dict[str, float]:
    """A run's metrics without its timings (`*_seconds`), which differ between identical runs."""
    return {k: v for k, v in metrics.items() if not k.endswith(TIMING)}


def test_config_composes_and_validates(model_name: str) -> None:
    spec = registry.get(model_name)
    cfg = _typed([f"model={model_name}"])
    assert isinstance(cfg.model, spec.schema) and cfg.model.name == model_name
    assert cfg.experiment_name == model_name
    monitor = spec.monitor(cfg)
    assert isinstance(monitor, Monitor) and monitor.metric.startswith(("val_", "train_"))
    assert spec.notebook_path().is_file(), f"{model_name}'s notebook {spec.notebook_path()} is missing"
    assert isinstance(_tiny(model_name).model, spec.schema)


def test_one_epoch_keeps_shapes_and_finite_metrics(model_name: str, tiny_config: Config, tiny_data) -> None:
    (task,) = registry.get(model_name).load().build_tasks(tiny_config, tiny_data, [tiny_config.seed])
    keys = run_keys(tiny_config.seed)
    state = task.init(keys["model_key"])
    new_state, metrics = task.train_epoch(state, jax.random.fold_in(keys["train_key"], 1))
    shapes = lambda tree: jax.tree.map(lambda leaf: (np.shape(leaf), np.asarray(leaf).dtype), tree)  # noqa: E731
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert shapes(new_state) == shapes(state)
    assert metrics and all(np.ndim(v) == 0 and math.isfinite(float(v)) for v in metrics.values()), metrics
    weights = lambda tree: [np.asarray(leaf) for leaf in jax.tree.leaves(tree) if np.size(leaf) > 1]  # noqa: E731
    changed = [not np.array_equal(a, b) for a, b in zip(weights(state), weights(new_state))]
    assert any(changed), "one epoch changed no parameter"


def test_monitored_metric_improves(model_name: str, tiny_config: Config, tiny_data) -> None:
    """Over a few more epochs than the tiny run, the kept epoch's monitored metric beats the first epoch's."""
    cfg = dataclasses.replace(tiny_config, trainer=dataclasses.replace(tiny_config.trainer, epochs=max(tiny_config.trainer.epochs, 6), patience=None))
    result = session.fit(cfg, tiny_data)
    monitored = [row[result.monitor] for row in result.history if result.monitor in row]
    assert len(monitored) >= 2, f"{result.monitor} was validated fewer than twice"
    mode = registry.get(model_name).monitor(cfg).mode if result.monitor.startswith("val_") else "min"
    better = min if mode == "min" else max
    assert better(monitored[1:]) == result.best_score and result.best_score != monitored[0]
    assert (result.best_score < monitored[0]) if mode == "min" else (result.best_score > monitored[0])


def test_same_seed_gives_identical_metrics(tiny_config: Config, tiny_data) -> None:
    reports = []
    for _ in range(2):
        result = session.fit(tiny_config, tiny_data)
        report = session.evaluate(tiny_config, result, tiny_data)
        report.close_figures()
        reports.append((result.history, untimed(report.metrics)))
    assert reports[0] == reports[1]
    other = dataclasses.replace(tiny_config, seed=tiny_config.seed + 1)
    assert session.fit(other, tiny_data).history != reports[0][0]


def test_seeds_together_equal_separate_runs(tiny_config: Config, tiny_data) -> None:
    cfg = dataclasses.replace(tiny_config, trainer=dataclasses.replace(tiny_config.trainer, seeds=[3, 5]))
    together = session.fit(cfg, tiny_data)
    assert isinstance(together, SeedResults) and together.seeds == [3, 5]
    for seed, result in zip(together.seeds, together.results):
        alone = session.fit(dataclasses.replace(tiny_config, seed=seed), tiny_data)
        assert [row["epoch"] for row in result.history] == [row["epoch"] for row in alone.history]
        for a, b in zip(result.history, alone.history):
            assert a.keys() == b.keys()
            for key in a:
                assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-6), key
        assert result.best_epoch == alone.best_epoch
    assert together.results[0].history != together.results[1].history


def _mktlab(command: str, args: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([str(BIN / command), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_a_sweep_in_a_reused_kernel_records_full_runs_that_rerun_identically(model_name: str, contract_store: dict[str, str],
                                                                             contract_cache: str, tmp_path: Path) -> None:
    """The real `mktlab -m` runs the model's notebook as three jobs of one sweep with the same config (only
    their run names differ): the first in a fresh kernel, the others in the same kernel after it, reset
    between jobs. All three are FINISHED with their notebook and identical metrics, and `mktlab-rerun`
    of the last one (a fresh kernel) reproduces them exactly."""
    spec = registry.get(model_name)
    store = [f"tracking.uri={contract_store['uri']}", f"tracking.artifact_root={contract_store['artifacts']}"]
    done = _mktlab("mktlab", ["-m", f"model={model_name}", *spec.tiny, "trainer.progress=false", contract_cache, *store,
                              "run_name=first,second,third", f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    client = MlflowClient(tracking_uri=contract_store["uri"])
    experiment = client.get_experiment_by_name(model_name).experiment_id
    runs = sorted((r for r in client.search_runs([experiment]) if r.data.tags.get("mktlab.sweep_role") != "parent"),
                  key=lambda r: int(r.data.tags["mktlab.job_num"]))
    assert [r.info.run_name for r in runs] == ["first", "second", "third"]
    assert all(r.info.status == "FINISHED" for r in runs)
    monitor = spec.monitor(_tiny(model_name))
    for run in runs:
        assert run.data.tags["mktlab.monitor"] in (monitor.metric, "train_loss")
        assert any(k.startswith("test_") for k in run.data.metrics) and f"best_{run.data.tags['mktlab.monitor']}" in run.data.metrics
        logged = {a.path for a in client.list_artifacts(run.info.run_id, "notebook")}
        assert {f"notebook/{spec.notebook_path().name}", f"notebook/{spec.notebook_path().with_suffix('.html').name}"} <= logged
    metrics = [untimed(r.data.metrics) for r in runs]
    assert metrics[0] and metrics[1] == metrics[0] and metrics[2] == metrics[0]
    last = runs[-1]
    again = _mktlab("mktlab-rerun", [last.info.run_id, "--tracking-uri", contract_store["uri"], "--run-dir", str(tmp_path / "rerun")],
                    tmp_path)
    assert again.returncode == 0, again.stderr[-4000:]
    assert "identical metrics" in again.stderr, again.stderr[-4000:]
    (repeated,) = [r for r in client.search_runs([experiment]) if r.data.tags.get("mktlab.rerun_of") == last.info.run_id]
    assert untimed(repeated.data.metrics) == metrics[0]
    assert repeated.data.params == last.data.params
    # figures: the sweep's runner drew the jobs' figures (the kernel handed them over), the rerun's kernel drew its own
    drawn_by_runner, drawn_in_kernel = _figures(client, last.info.run_id, tmp_path / "job"), _figures(client, repeated.info.run_id, tmp_path / "rerun")
    assert drawn_by_runner == drawn_in_kernel
    notebook = spec.notebook_path().name
    shown = [shown_images(client.download_artifacts(run.info.run_id, f"notebook/{notebook}", str(tmp_path / folder)))
             for run, folder in ((last, "job"), (repeated, "rerun"))]
    assert shown[0] == shown[1], "the job's notebook shows other images than the rerun's"


def _figures(client: MlflowClient, run_id: str, folder: Path) -> dict[str, bytes]:
    """A run's logged figures (`figures/*.png`), by name."""
    listed = [a.path for a in client.list_artifacts(run_id, "figures") if a.path.endswith(".png")]
    return {path: Path(client.download_artifacts(run_id, path, str(folder))).read_bytes() for path in listed}


def shown_images(notebook: str | Path) -> list[bytes]:
    """The PNGs an executed notebook (its file) shows, in order; asserts that no place a figure handed to the
    runner was to fill is left empty."""
    import base64
    import json

    from mktlab.evaluation.report import PENDING_FIGURE_MIME

    outputs = [output for cell in json.loads(Path(notebook).read_text())["cells"] for output in cell.get("outputs", ())]
    assert not any(PENDING_FIGURE_MIME in output.get("data", {}) for output in outputs)
    return [base64.b64decode(output["data"]["image/png"]) for output in outputs if "image/png" in output.get("data", {})]
