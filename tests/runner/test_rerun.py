"""Re-running a recorded run gives identical metrics; diff names exactly what changed (slow)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
TINY = {
    "mf": ["model=mf", "debug=tiny", "data.subsample=3000", "model.recommend_users=3"],
    "mlp": ["model=mlp", "data.subsample=1500", "trainer.epochs=2", "model.hidden=[8]", "trainer.progress=false"],
    "lstm": ["model=lstm", "trainer.epochs=1", "data.subsample=2000", "data.max_len=8", "model.embed_dim=8", "model.hidden=8",
             "model.dense=8", "trainer.batch_size=256", "trainer.progress=false"],
}


def only_run(store, experiment: str, **tag_filter):
    runs = [r for r in store.runs(experiment) if all(r.data.tags.get(k) == v for k, v in tag_filter.items())]
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0]


@pytest.mark.parametrize("model", sorted(TINY))
def test_rerun_reproduces_the_metrics(model: str, store, mktlab_cli, rerun_reproduces) -> None:
    """The GAN's rerun is checked on the run of tests/test_gan_notebook.py."""
    done = mktlab_cli([*TINY[model], *store.overrides])
    assert done.returncode == 0, done.stderr[-3000:]
    rerun_reproduces(only_run(store, model))


def test_diff_names_exactly_the_changed_keys(store) -> None:
    from mktlab.config import compose, to_container
    from mktlab.runner.diff import differences
    from mktlab.runner.records import read_run
    from mktlab.tracking import open_run

    a = open_run(to_container(compose([*store.overrides, "model.dim=8"])))
    b = open_run(to_container(compose([*store.overrides, "model.dim=16", "optim.lr=0.5"])))
    a.log_metrics({"test_rmse": 0.9, "fit_seconds": 1.0})
    b.log_metrics({"test_rmse": 0.8, "fit_seconds": 2.0})
    found = differences(read_run(store.client, a.run_id), read_run(store.client, b.run_id))
    assert [row[0] for row in found["config"]] == ["model.dim", "optim.lr"]
    assert found["config"][0][1:] == ("8", "16")
    assert [row[0] for row in found["metrics"]] == ["test_rmse"]
    assert found["code"] == found["package versions"] == found["data"] == []
    shown = subprocess.run([BIN / "mktlab-diff", a.run_id, b.run_id, "--tracking-uri", store.uri], capture_output=True, text=True)
    assert shown.returncode == 0 and "model.dim" in shown.stdout and "optim.lr" in shown.stdout and "package versions: same" in shown.stdout
