"""A failing job: its run is FAILED with its notebook, the other jobs finish, the sweep exits non-zero."""

from __future__ import annotations

import pytest
from helpers import artifact_paths, stub_notebook, sweep_runs


@pytest.mark.slow
def test_failing_job_fails_alone_and_the_sweep_reports_it(store, mktlab_cli, tmp_path):
    # The basic launcher runs jobs one after another: job 0 fails inside its notebook, job 1 must still run.
    result = mktlab_cli(["-m", *stub_notebook(tmp_path / "nb"), *store.overrides, "params.dim=-1,2"])
    assert result.returncode == 1
    report = result.stdout + result.stderr
    assert "1 job(s) of sweep" in report and "failed" in report
    assert "job 0 (params.dim=-1)" in report
    assert f"notebook: {tmp_path / 'multirun' / '0' / 'sweep_stub.ipynb'}" in report

    parent, (failed, finished) = sweep_runs(store)
    assert parent.info.status == "FAILED"
    assert failed.info.status == "FAILED" and failed.data.params["params.dim"] == "-1"
    assert "notebook/sweep_stub.ipynb" in artifact_paths(store.client, failed.info.run_id)
    assert finished.info.status == "FINISHED" and "best_val_rmse" in finished.data.metrics
    assert parent.data.metrics["sweep_failed_jobs"] == 1
    assert parent.data.tags["mktlab.best_run_id"] == finished.info.run_id
