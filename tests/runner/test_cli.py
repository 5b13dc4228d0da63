"""Which commands start their notebook kernel first, before the runner's own imports."""

import os
import pytest

from mktlab.runner import app, cli, kernel
from mktlab.runner.callbacks import setup_sweep_process
from mktlab.runner.cli import runs_notebooks_here
from mktlab.runner.standby import STARTUP_VARIABLES


@pytest.mark.parametrize("args, here", [
    (["model=mlp", "seed=3"], True),                                   # a plain run: one notebook, here
    (["-m", "seed=0,1,2"], True),                                      # a sweep on the basic launcher: its jobs run here, in turn
    (["--multirun", "model=mf", "model.dim=8,16"], True),
    (["-m", "hydra/launcher=joblib", "seed=0,1"], False),              # jobs in worker processes, each with its own kernel
    (["-m", "sweep=mf_optuna", "hydra/launcher=ray"], False),
    (["--cfg", "job"], False),                                         # no notebook at all
    (["--help"], False),
    (["-m", "--cfg", "job"], False),
])
def test_a_kernel_starts_first_where_the_notebooks_run_in_this_process(args: list[str], here: bool) -> None:
    assert runs_notebooks_here(args) is here


def test_the_early_kernel_of_a_sweep_starts_with_the_sweeps_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep callback's settings are in place before the early kernel starts: a start-up variable set
    after it (XLA_*) would leave the early kernel unfit, and the first job would start a second kernel."""
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    started_with: dict[str, str] = {}
    monkeypatch.setattr(kernel, "start_early", lambda: started_with.update(os.environ))
    monkeypatch.setattr(app, "main", lambda: None)
    assert cli.run_command(["-m", "seed=0,1"]) == 0
    setup_sweep_process()  # what the sweep callback applies when the sweep opens
    startup = lambda env: {k: v for k, v in env.items() if k.startswith(STARTUP_VARIABLES)}  # noqa: E731
    assert started_with and startup(started_with) == startup(dict(os.environ))
