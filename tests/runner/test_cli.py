"""Which commands start their notebook kernel first, before the runner's own imports."""

import pytest

from mktlab.runner.cli import runs_notebooks_here


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
