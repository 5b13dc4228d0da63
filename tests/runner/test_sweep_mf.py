"""A sweep of 4 tiny matrix factorization jobs: one parent run, 4 children, the review on top."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import artifact_paths, sweep_runs

from mktlab.testing.contract import shown_images

TINY = ["debug=tiny", "trainer.epochs=2", "data.subsample=2000", "trainer.progress=false"]
BIN = Path(sys.executable).parent
FIGURES = ("learning_curve", "error_histogram", "recommendation_popularity")


def assert_figures_shown_as_logged(client, run_id: str, folder: Path) -> None:
    """The run's notebook shows each of its figures as the PNG logged to the run (the runner drew them
    after the notebook, as the run was recorded while the next job ran), no place left empty."""
    shown = shown_images(client.download_artifacts(run_id, "notebook/mf.ipynb", str(folder)))
    logged = [Path(client.download_artifacts(run_id, f"figures/{name}.png", str(folder))).read_bytes() for name in FIGURES]
    assert shown == logged


@pytest.mark.slow
def test_mf_sweep_parent_children_review(store, mktlab_cli, tmp_path):
    result = mktlab_cli(["-m", *TINY, *store.overrides, "model.dim=4,8", "seed=0,1",
                         "+tags.api_token=s3cret-value"])
    assert result.returncode == 0, result.stderr[-3000:]

    parent, children = sweep_runs(store, "mf")
    client = store.client
    sweep_id = parent.data.tags["mktlab.sweep_id"]
    # The parent holds the sweep's definition, then its summary and the best child's metrics.
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == f"sweep {sweep_id}"
    assert parent.data.tags["mktlab.swept"] == "model.dim,seed"
    assert parent.data.tags["mktlab.launcher"] == "basic"
    assert parent.data.params["sweep.model.dim"] == "4,8" and parent.data.params["sweep.seed"] == "0,1"
    assert {"sweep/definition.yaml", "sweep/base_config.yaml", "sweep/summary.csv"} <= artifact_paths(client, parent.info.run_id)
    definition = (Path(client.download_artifacts(parent.info.run_id, "sweep", str(tmp_path / "sweep"))) / "definition.yaml").read_text()
    assert "model.dim=4,8" in definition
    recorded = [definition, *parent.data.tags.values(), *parent.data.params.values(),
                (tmp_path / "sweep" / "sweep" / "base_config.yaml").read_text()]
    assert not any("s3cret-value" in text for text in recorded)  # credentials are masked on the parent too

    # Four children, named after their own overrides, with the right params, tags and metrics.
    assert [r.info.run_name for r in children] == ["model.dim=4,seed=0", "model.dim=4,seed=1", "model.dim=8,seed=0", "model.dim=8,seed=1"]
    for job, run in enumerate(children):
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["mktlab.job_num"] == str(job)
        assert run.data.tags["mktlab.monitor"] == "val_rmse" and run.data.tags["mktlab.monitor_mode"] == "min"
        assert (run.data.params["model.dim"], run.data.params["seed"]) == (str([4, 4, 8, 8][job]), str(job % 2))
        assert run.data.params["data.subsample"] == "2000"
        assert {"best_val_rmse", "test_rmse", "val_rmse", "train_loss"} <= set(run.data.metrics)
        assert len(client.get_metric_history(run.info.run_id, "val_rmse")) == 2
        assert any(p.startswith("notebook/") and p.endswith(".ipynb") for p in artifact_paths(client, run.info.run_id))
        assert_figures_shown_as_logged(client, run.info.run_id, tmp_path / f"job{job}")
    best = min(children, key=lambda r: r.data.metrics["best_val_rmse"])
    assert parent.data.tags["mktlab.best_run_id"] == best.info.run_id
    assert parent.data.metrics["best_val_rmse"] == best.data.metrics["best_val_rmse"]
    assert parent.data.metrics["test_rmse"] == best.data.metrics["test_rmse"]
    summary = pd.read_csv(client.download_artifacts(parent.info.run_id, "sweep/summary.csv", str(tmp_path)))
    assert list(summary["best_val_rmse"]) == sorted(r.data.metrics["best_val_rmse"] for r in children)

    # The shell ranking: the same order, exported as CSV.
    csv = tmp_path / "ranking.csv"
    shown = subprocess.run([str(BIN / "mktlab-runs"), "experiment=mf", f"tracking.uri={store.uri}", f"csv={csv}"],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert sweep_id in shown.stdout and "best_val_rmse" in shown.stdout
    assert list(pd.read_csv(csv)["run_id"]) == list(summary["run_id"])

    # The review notebook runs on the sweep and lands in the parent run.
    reviewed = subprocess.run([str(BIN / "mktlab-review"), f"sweep_id={sweep_id}", f"tracking.uri={store.uri}"],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert reviewed.returncode == 0, reviewed.stderr[-3000:]
    logged = artifact_paths(client, parent.info.run_id)
    assert {"review/review_runs.ipynb", "review/review_runs.html", "review/ranking.csv", "review/seed_spread.csv"} <= logged
    assert {f"figures/review/{name}.png" for name in ("metric_vs_params", "parallel_coordinates", "top_learning_curves", "seed_spread")} <= logged
    spread = pd.read_csv(client.download_artifacts(parent.info.run_id, "review/seed_spread.csv", str(tmp_path / "dl")))
    assert list(spread["model.dim"]) == sorted(spread["model.dim"], key=lambda d: spread.set_index("model.dim").loc[d, "best_val_rmse_mean"])
    assert list(spread["best_val_rmse_count"]) == [2, 2]
