"""A sweep's job configs composed once per set of group choices equal Hydra's own, key for key."""

from __future__ import annotations

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from hydra.types import RunMode
from omegaconf import OmegaConf

from mktlab.config import paths
from mktlab.models import registry
from mktlab.runner.job_configs import JobConfigs

pytestmark = pytest.mark.filterwarnings("ignore:(?s).*validated against ConfigStore schema:UserWarning")

# (the command line's overrides, then each job's), as a sweep's expansion gives them
SWEEPS = [
    (["model=mf", "debug=tiny", "seed=0,1"], [["model=mf", "debug=tiny", "seed=0"], ["model=mf", "debug=tiny", "seed=1"]]),
    # jobs choosing other groups, values set on the chosen options, values before choices
    (["model=mf,mlp", "optim.lr=0.01"], [["model=mf", "optim.lr=0.01"], ["model=mlp", "optim.lr=0.01"],
                                          ["optim.lr=0.02", "model=mf"]]),
    # Hydra's own overrides (a launcher chosen, its values set, the sweep folder) and keys added, removed, forced
    (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweep.dir=/tmp/somewhere", "model=mf", "seed=2,3"],
     [["model=mf", "+tags.ticket=abc", "seed=2"], ["model=mf", "++trainer.epochs=3", "~tags", "seed=3"],
      ["model=mf", "data=ml100k", "hydra.job.config.override_dirname.exclude_keys=[seed]", "seed=3"]]),
    (["model=lstm", "debug=tiny", "model.hidden=8,16"], [["model=lstm", "debug=tiny", "model.hidden=8"],
                                                       ["debug=tiny", "model=lstm", "model.hidden=16"]]),
]


@pytest.fixture
def loader():
    registry.register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(paths.conf_dir()), version_base="1.3"):
        yield GlobalHydra.instance().config_loader()
    GlobalHydra.instance().clear()


@pytest.mark.parametrize(("command", "jobs"), SWEEPS)
def test_each_job_config_equals_what_hydra_composes(loader, command, jobs):
    master = loader.load_configuration("config", command, run_mode=RunMode.MULTIRUN)
    composer = JobConfigs(loader, master)
    for job in jobs:
        ours, hydras = composer.compose(job), loader.load_sweep_config(master, job)
        assert OmegaConf.to_yaml(ours) == OmegaConf.to_yaml(hydras), job  # every key, the hydra node's record included
        assert OmegaConf.is_struct(ours) and not OmegaConf.is_readonly(ours.hydra)


def test_jobs_of_the_same_choices_share_one_composition_and_not_their_values(loader):
    master = loader.load_configuration("config", ["model=mf", "seed=0,1,2"], run_mode=RunMode.MULTIRUN)
    composer = JobConfigs(loader, master)
    configs = [composer.compose(["model=mf", f"seed={seed}"]) for seed in range(3)]
    assert len(composer._bases) == 1
    assert [config.seed for config in configs] == [0, 1, 2]
    configs[0].model.dim = 999  # a job's config is its own to change
    assert configs[1].model.dim != 999 and composer.compose(["model=mf", "seed=5"]).model.dim != 999


@pytest.mark.parametrize("job", [["model=mf", "no_such_key=1"], ["model=mf", "seed=abc"], ["model=mf", "no_such_group/x=y"]])
def test_a_bad_override_fails_as_hydra_fails_it(loader, job):
    master = loader.load_configuration("config", ["model=mf"], run_mode=RunMode.MULTIRUN)
    with pytest.raises(ConfigCompositionException) as hydras:
        loader.load_sweep_config(master, job)
    with pytest.raises(ConfigCompositionException) as ours:
        JobConfigs(loader, master).compose(job)
    assert str(ours.value) == str(hydras.value)


def test_a_validated_job_is_not_typed_again_and_only_it(loader):
    """The sweep's start types every job's config; a job's run skips that step only for a config typed so."""
    from mktlab.runner.callbacks import take_composed, validate_jobs
    from mktlab.runner.job_configs import forget_typed, typed_already

    master = loader.load_configuration("config", ["model=mf", "debug=tiny", "seed=0,1"], run_mode=RunMode.MULTIRUN)
    assert validate_jobs(master) == 2
    jobs = [take_composed(["model=mf", "debug=tiny", f"seed={seed}"]) for seed in (0, 1)]
    assert all(typed_already(job.hydra) for job in jobs)
    other = loader.load_sweep_config(master, ["model=mf", "debug=tiny", "seed=2"])
    assert not typed_already(other.hydra)
    forget_typed()
    assert not typed_already(jobs[0].hydra)


def test_a_group_left_to_choose_fails_each_job_as_hydra_fails_it(tmp_path):
    """A sweep may leave a group to choose (`???`, skipped while Hydra composes the sweep's own config); each job's
    config then fails with Hydra's message, the sweep's own config is not taken for it."""
    (tmp_path / "db").mkdir()
    (tmp_path / "config.yaml").write_text("defaults:\n  - db: ???\n  - _self_\nx: 1\n")
    (tmp_path / "db" / "a.yaml").write_text("host: a\n")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("config", ["x=1,2"], run_mode=RunMode.MULTIRUN)
        with pytest.raises(ConfigCompositionException) as hydras:
            loader.load_sweep_config(master, ["x=1"])
        with pytest.raises(ConfigCompositionException) as ours:
            JobConfigs(loader, master).compose(["x=1"])
        assert str(ours.value) == str(hydras.value) and "You must specify 'db'" in str(ours.value)
        assert OmegaConf.to_yaml(JobConfigs(loader, master).compose(["db=a", "x=2"])) == OmegaConf.to_yaml(
            loader.load_sweep_config(master, ["db=a", "x=2"]))
    GlobalHydra.instance().clear()
