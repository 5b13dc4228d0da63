"""`mktlab-new NAME --dir DIR` writes a package that works as a model with no file of mktlab changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from mktlab.scaffold import LAYOUT, ScaffoldError, check_name, write_package

BIN = Path(sys.executable).parent
NAME = "churn"


def test_the_package_holds_its_files_and_bad_names_are_refused(tmp_path: Path) -> None:
    root = write_package(NAME, tmp_path)
    written = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert written == sorted([target.format(name=NAME) for target in LAYOUT.values()] + [f"src/{NAME}/{NAME}.ipynb"])
    assert f'{NAME} = "{NAME}:spec"' in (root / "pyproject.toml").read_text()
    compile((root / "src" / NAME / "training.py").read_text(), "training.py", "exec")
    with pytest.raises(ScaffoldError, match="not empty"):
        write_package(NAME, tmp_path)
    for bad in ("Churn", "2churn", "class", "mf", "json", "jax"):
        with pytest.raises(ScaffoldError):
            check_name(bad)


def run(command: list[str], cwd: Path, timeout: int = 900, site: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if site is not None:  # the package is installed there, not into the suite's shared environment
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_a_new_model_runs_sweeps_reruns_reviews_and_passes_the_contract(tmp_path: Path) -> None:
    done = run([str(BIN / "mktlab-new"), NAME, "--dir", str(tmp_path)], tmp_path)
    root = tmp_path / NAME
    assert str(root) in done.stdout
    # installed into a folder of its own on PYTHONPATH: the suite's other tests, running beside this
    # one, keep an environment with exactly the four built-in models
    site = tmp_path / "site"
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site), str(root)], tmp_path)
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    store = [f"tracking.uri={uri}", f"tracking.artifact_root={tmp_path / 'store' / 'artifacts'}", "trainer.progress=false"]
    run([str(BIN / "mktlab"), f"model={NAME}", *store, f"hydra.run.dir={tmp_path / 'full'}"], tmp_path, site=site)
    # debug=tiny as a sweep of two seeds
    run([str(BIN / "mktlab"), "-m", f"model={NAME}", "debug=tiny", "seed=0,1", *store, f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path,
        site=site)
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name(NAME).experiment_id])
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)  # the default run, a sweep's parent and two jobs
    full = next(r for r in runs if r.data.tags.get("mktlab.run_dir") == str(tmp_path / "full"))
    assert full.data.metrics["test_roc_auc"] > full.data.metrics["baseline_test_roc_auc"]  # the template model wins
    rerun = run([str(BIN / "mktlab-rerun"), full.info.run_id, "--tracking-uri", uri, "--run-dir", str(tmp_path / "rerun")], tmp_path,
                site=site)
    assert "identical metrics" in rerun.stderr
    review = run([str(BIN / "mktlab-review"), f"experiment={NAME}", f"tracking.uri={uri}"], tmp_path, site=site)
    assert "review notebook" in review.stderr + review.stdout
    # its notebook through the runner, a sweep and a rerun just ran: the contract's fast tests remain
    contract = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", str(root / "tests")], root,
                   timeout=1800, site=site)
    assert " passed" in contract.stdout and "failed" not in contract.stdout


def test_a_plugin_that_fails_to_import_leaves_the_others_working(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "broken_model-0.1.dist-info").mkdir(parents=True)
    (site / "broken_model-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-model\nVersion: 0.1\n")
    (site / "broken_model-0.1.dist-info" / "entry_points.txt").write_text("[mktlab.models]\nbroken = broken_model:spec\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = ("from mktlab.models import registry\nprint(sorted(registry.specs()))\n"
             "try:\n    registry.get('broken')\nexcept registry.UnknownModel as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "['gan', 'lstm', 'mf', 'mlp']" in done.stdout
    assert "model 'broken' is installed but broken_model:spec cannot be imported (ModuleNotFoundError" in done.stdout
    assert "model plug-in 'broken' left out" in done.stderr
