"""A sweep through the Ray launcher on a local Ray runtime (submitit: tests/test_sweep_server.py)."""

from __future__ import annotations

import pytest
from helpers import stub_notebook, sweep_runs


@pytest.mark.slow
def test_ray_launcher(store, mktlab_cli, tmp_path, monkeypatch):
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    # On a loaded machine Ray's agent can take longer than its 30 s default to come up.
    monkeypatch.setenv("RAY_agent_register_timeout_ms", "180000")
    result = mktlab_cli(["-m", "hydra/launcher=ray", *stub_notebook(tmp_path / "nb"), *store.overrides, "params.dim=1,2"])
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = sweep_runs(store)
    assert parent.info.status == "FINISHED" and parent.data.tags["mktlab.launcher"] == "ray"
    assert [r.info.run_name for r in children] == ["params.dim=1", "params.dim=2"]
    assert all(r.info.status == "FINISHED" and "best_val_rmse" in r.data.metrics for r in children)
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)
