"""Named sweeps, launcher configs and sweep bookkeeping, without running jobs."""

from __future__ import annotations

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from mktlab.config import paths
from mktlab.models import registry
from mktlab.runner import sweep as sw

SWEEPS = sorted(p.stem for p in (paths.conf_dir() / "sweep").glob("*.yaml"))


def test_there_is_a_grid_and_a_search_per_model():
    for model in ("mf", "mlp", "lstm", "gan"):
        assert {f"{model}_grid", f"{model}_optuna"} <= set(SWEEPS)


@pytest.mark.parametrize("name", SWEEPS)
def test_named_sweep_composes_and_sweeps_existing_keys(name, cfg_for):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    cfg = registry.compose([f"sweep={name}"])
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(paths.conf_dir()), version_base="1.3"):
        hydra_cfg = hydra_compose(config_name="config", overrides=[f"sweep={name}"], return_hydra_config=True).hydra
    model = name.split("_")[0]
    assert cfg.model.name == model
    params = OmegaConf.to_container(hydra_cfg.sweeper.params)
    assert params
    expects_optuna = name.endswith("_optuna")
    assert hydra_cfg.sweeper._target_.endswith("OptunaSweeper") == expects_optuna
    for override in OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()]):
        assert override.is_sweep_override()
        key = override.get_key_element()
        assert OmegaConf.select(cfg, key, default="missing") != "missing", f"{name}: {key} is not a config key"
        first = next(iter(override.sweep_iterator())) if override.is_discrete_sweep() else override.value().start
        cfg_for([f"sweep={name}", f"{key}={first}"])  # a value from the sweep passes the model's schema


@pytest.mark.filterwarnings("ignore:(?s).*validated against ConfigStore schema:UserWarning")  # see mktlab/runner/__init__.py
@pytest.mark.parametrize("launcher", ["joblib", "ray", "submitit_local", "submitit_slurm"])
def test_launcher_configs_compose(launcher, monkeypatch):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    monkeypatch.setenv("MKTLAB_WORKERS", "3")
    registry.register()  # the schemas the config files name
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(paths.conf_dir()), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.startswith("hydra_plugins.")
    if launcher == "joblib":
        assert cfg.hydra.launcher.n_jobs == 3  # workers from $MKTLAB_WORKERS (default 2)


def test_sweep_definition_and_job_names():
    common, swept = sw.sweep_definition(
        ["debug=tiny", "model.dim=16,32", "seed=0,1", "optim.lr=0.1"], {"optim.lr": "0.003,0.01", "model.l2": "0.01,0.1"}
    )
    assert common == ["debug=tiny"]  # optim.lr=0.1 on the command line replaces the named sweep's values
    assert swept == {"optim.lr": "0.003,0.01", "model.l2": "0.01,0.1", "model.dim": "16,32", "seed": "0,1"}
    job = ["optim.lr=0.003", "model.l2=0.1", "debug=tiny", "model.dim=16", "seed=1"]
    assert sw.job_run_name(job, list(swept)) == "optim.lr=0.003,model.l2=0.1,model.dim=16,seed=1"


def test_record_reaches_jobs_through_the_folder_or_the_environment(tmp_path, monkeypatch):
    record = sw.SweepRecord("20260101-000000-abcd", "a" * 32, "1", "sqlite:///x.db", str(tmp_path / "sweep"), ("seed",))
    monkeypatch.delenv(sw.ENV_VAR, raising=False)
    assert sw.read_record(tmp_path / "sweep") is None
    record.publish()
    assert sw.read_record(tmp_path / "sweep") == record
    (tmp_path / "sweep" / sw.RECORD_FILE).unlink()  # e.g. a worker without the shared folder
    assert sw.read_record(tmp_path / "sweep") == record
    assert sw.read_record(tmp_path / "elsewhere") is None  # the environment names another sweep


def test_the_parents_description_names_the_swept_keys_and_links_the_best_job():
    from mktlab.runner.callbacks import COMPARED_JOBS, sweep_note
    from mktlab.tracking import links

    best = {"run_id": "b" * 32, "run_name": "trainer.seeds=[0,1],model.dim=8", "metric": "best_val_rmse", "mode": "min", "value": 0.98765}
    jobs = ["b" * 32, *(f"{i:032d}" for i in range(COMPARED_JOBS + 5))]
    note = sweep_note("20260105-141503-a3f9", "7", {"model.dim": "8,16", "trainer.seeds": "[0,1],[2,3]"}, jobs=jobs, best=best)
    first = note.splitlines()[0]
    assert "varies `model.dim` (8,16), `trainer.seeds` (\\[0,1\\],\\[2,3\\])" in first
    assert f"[trainer.seeds=\\[0,1\\],model.dim=8]({links.run_route('7', 'b' * 32)})" in first  # a link the UI renders
    assert "`best_val_rmse` 0.98765 (lower is better)" in first
    compare = links.compare_route("7", jobs[:COMPARED_JOBS])
    assert f"[Compare the best {COMPARED_JOBS} of {len(jobs)} jobs]({compare})" in note
    assert links.runs_route("7", search=links.sweep_search("20260105-141503-a3f9")) in note
    assert len(note) < 8000  # MLflow's limit on a tag
    running = sweep_note("20260105-141503-a3f9", "7", {"model.dim": "8,16"})  # while the jobs run
    assert "Best job" not in running and "Compare" not in running and "The sweep's runs" in running


@pytest.mark.filterwarnings("ignore:(?s).*validated against ConfigStore schema:UserWarning")
def test_a_grid_sweeps_jobs_are_composed_once_and_handed_to_the_launcher():
    """The sweep callback composes every job to validate it; the launcher is handed those configs
    (Hydra would compose each job twice more: to check the batch, and to launch it)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode
    from hydra_plugins.mktlab_grid_sweeper.grid_sweeper import ComposedAhead

    from mktlab.runner.callbacks import composed_ahead, validate_jobs

    registry.register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(paths.conf_dir()), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("config", ["model=mf", "debug=tiny", "seed=0,1"], run_mode=RunMode.MULTIRUN)
        assert validate_jobs(master) == 2
        jobs = [["model=mf", "debug=tiny", "seed=0"], ["model=mf", "debug=tiny", "seed=1"]]
        assert all(composed_ahead(job) for job in jobs)

        composed = []
        real = loader.load_sweep_config
        spy = type("Spy", (), {"load_sweep_config": lambda self, m, o: composed.append(o) or real(m, o)})()
        ahead = ComposedAhead(spy)  # type: ignore[arg-type]
        handed = [ahead.load_sweep_config(master, job) for job in jobs]
        assert composed == []  # nothing composed again
        assert [config.seed for config in handed] == [0, 1] and not any(composed_ahead(job) for job in jobs)
        for job, config in zip(jobs, handed):  # the same config Hydra composes for the job
            again = ahead.load_sweep_config(master, job)  # handed once: a second request composes it
            assert composed[-1] == job
            assert OmegaConf.to_container(config, resolve=False) == OmegaConf.to_container(again, resolve=False)


def test_a_sweep_whose_end_fails_says_why_exits_1_and_leaves_its_parent_failed(tmp_path, monkeypatch):
    # Hydra turns a callback's exception into a warning: unchecked, the parent stayed RUNNING and the command exited 0
    from helpers import Store

    from mktlab.runner import callbacks
    from mktlab.tracking.store import get_or_create_experiment

    store = Store(tmp_path / "store")
    experiment = get_or_create_experiment(store.client, "mf", str(tmp_path / "artifacts"))
    parent = store.client.create_run(experiment).info.run_id
    sweep = callbacks.SweepCallback()
    sweep.record = sw.SweepRecord("20260105-141503-a3f9", parent, experiment, store.uri, str(tmp_path / "sweep"), ["seed"], 1)

    def broken(record, rows):
        raise RuntimeError("the ranking broke reading postgresql://analyst:hunter2@db/mlflow")

    monkeypatch.setattr(callbacks, "close_sweep", broken)
    config = OmegaConf.create({"hydra": {"overrides": {"task": ["seed=0,1"]}, "sweep": {"dir": str(tmp_path / "sweep")}}, "seed": 0})
    with pytest.raises(SystemExit) as ended:
        sweep.on_multirun_end(config)
    assert ended.value.code == 1
    sweep._ended_early()  # as the command exits
    run = store.client.get_run(parent)
    assert run.info.status == "FAILED"
    assert run.data.tags["mktlab.error"] == "the sweep could not be closed: RuntimeError: the ranking broke reading postgresql://analyst:****@db/mlflow"
