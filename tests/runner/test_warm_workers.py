"""Joblib workers warmed while a sweep opens: the executor Hydra's launcher uses, each worker with a kernel waiting."""

from __future__ import annotations

import pytest
from joblib import Parallel, delayed
from joblib.externals.loky import get_reusable_executor

from mktlab.config import paths
from mktlab.models import registry
from mktlab.runner import kernel
from mktlab.runner.warm_workers import joblib_settings, start_kernel, warm_up


def launcher_config(*overrides: str):
    """`hydra.launcher` as `mktlab -m ...overrides` composes it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    registry.register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(paths.conf_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True).hydra.launcher


@pytest.mark.slow
def test_each_joblib_worker_has_a_kernel_waiting_when_the_first_jobs_arrive():
    launcher = launcher_config("hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    settings = joblib_settings(launcher)
    assert settings["backend"] == "loky" and settings["n_jobs"] == 2
    warm_up(launcher).join(timeout=180)
    try:
        # a call with the launcher's settings reaches the warmed workers (nothing restarted them): a kernel waits in each
        found = Parallel(**settings)(delayed(start_kernel)() for _ in range(8))
        assert all(was_waiting for _, was_waiting in found), found
        assert len({pid for pid, _ in found}) <= 2
    finally:
        Parallel(**settings)(delayed(kernel.stop_waiting)() for _ in range(4))
        get_reusable_executor().shutdown(wait=True, kill_workers=True)


def test_no_warm_up_for_other_launchers():
    assert warm_up(launcher_config()) is None
