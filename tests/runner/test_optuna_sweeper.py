"""The Optuna sweeper: search spaces, a search whose metric and direction come from the model's monitor (its contract),
and a pruner that stops trials behind the others."""

from __future__ import annotations

import optuna
import pytest
import yaml
from helpers import stub_notebook, stub_score, sweep_runs
from hydra_plugins.mktlab_optuna_sweeper.optuna_sweeper import OptunaSweeper, search_space, trial_overrides
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from mktlab.tracking.trials import storage


def test_search_space_follows_hydra_sweep_syntax():
    fixed, space = search_space(
        {"model.dim": "choice(16, 32)", "optim.lr": "0.1"},
        ["optim.lr=tag(log, interval(1e-4, 1e-1))", "seed=range(0,3)", "model.l2=interval(0.0, 0.5)",
         "model.eval.top_k=int(interval(5, 20))", "model.eval.recommend_users=interval(5, 20)", "data.split=random,temporal", "trainer.epochs=3"],
    )
    assert fixed == ["trainer.epochs=3"]  # optim.lr=0.1 from params is replaced by the command line's search
    assert space["model.dim"] == CategoricalDistribution([16, 32])
    assert space["optim.lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert space["seed"] == IntDistribution(0, 2)  # range excludes its stop, as in Hydra
    assert space["model.l2"] == FloatDistribution(0.0, 0.5)
    assert space["model.eval.top_k"] == IntDistribution(5, 20)
    assert space["model.eval.recommend_users"] == FloatDistribution(5.0, 20.0)  # Hydra's interval is a float interval
    assert space["data.split"] == CategoricalDistribution(["random", "temporal"])
    assert trial_overrides(fixed, {"optim.lr": 0.0012345678, "data.split": "random"}) == ["trainer.epochs=3", "optim.lr=0.001235", "data.split=random"]


def test_direction_auto_needs_metric_auto():
    with pytest.raises(ValueError, match="set hydra.sweeper.direction"):
        OptunaSweeper(metric="test_rmse", direction="auto")
    assert OptunaSweeper(metric="test_rmse", direction="max").direction == "maximize"


@pytest.mark.slow
def test_optuna_minimizes_the_monitored_metric(store, mktlab_cli, tmp_path):
    result = mktlab_cli(["-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", "hydra/launcher=joblib",
                         *stub_notebook(tmp_path / "nb"), *store.overrides, "params.dim=choice(1,50)", "params.lr=tag(log,interval(1e-3,1e-1))"])
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = sweep_runs(store)
    assert len(children) == 4 and all(r.info.status == "FINISHED" for r in children)
    assert parent.data.tags["mktlab.sweeper"] == "optuna"
    for run in children:  # each trial's value is what its job logged
        expected = stub_score(float(run.data.params["params.lr"]), int(run.data.params["params.dim"]))
        assert run.data.metrics["best_val_rmse"] == pytest.approx(expected)
    results = yaml.safe_load((tmp_path / "multirun" / "optimization_results.yaml").read_text())
    best = min(r.data.metrics["best_val_rmse"] for r in children)
    assert results["metric"] == "best_val_rmse" and results["direction"] == "minimize"  # mf's monitor: val_rmse, min
    assert results["best_value"] == pytest.approx(best) and results["trials"] == 4
    assert parent.data.metrics["best_val_rmse"] == pytest.approx(best)


@pytest.mark.slow
def test_with_joblib_a_trial_starts_as_soon_as_a_worker_is_free(store, mktlab_cli, tmp_path):
    """The first trial takes 12 s more than the others: with two workers, the other worker runs trials 1, 2
    and 3 meanwhile, instead of waiting for trial 0 to end before trials 2 and 3 start."""
    result = mktlab_cli(["-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", "hydra/launcher=joblib",
                         *stub_notebook(tmp_path / "nb"), *store.overrides, "+params.first_job_sleeps=12",
                         "params.lr=tag(log,interval(1e-3,1e-1))"])
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = sweep_runs(store)
    assert len(children) == 4 and all(r.info.status == "FINISHED" for r in children)
    first = children[0]
    assert all(run.info.end_time < first.info.end_time for run in children[1:]), [(r.info.start_time, r.info.end_time) for r in children]
    results = yaml.safe_load((tmp_path / "multirun" / "optimization_results.yaml").read_text())
    assert results["trials"] == 4 and results["best_value"] == pytest.approx(min(r.data.metrics["best_val_rmse"] for r in children))


@pytest.mark.slow
def test_a_pruner_stops_trials_whose_epochs_it_judges_behind(store, mktlab_cli, tmp_path):
    # ThresholdPruner(upper=0) judges every RMSE behind from epoch (step) 2 on: each trial trains 2 of its 3 epochs
    result = mktlab_cli(["-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1", "model=mf", "debug=tiny",
                         "trainer.epochs=3", "trainer.progress=false", *store.overrides, "optim.lr=interval(0.01,0.05)",
                         "hydra.sweeper.pruner={kind:ThresholdPruner,upper:0.0,n_warmup_steps:2}"])
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = sweep_runs(store, "mf")
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)  # evaluated and recorded as usual
    for run in children:
        assert run.data.metrics["pruned_at_epoch"] == 2 and run.data.metrics["best_epoch"] <= 2
        assert run.data.params["trainer.trial"].endswith(str(tmp_path / "multirun" / "optuna.journal"))
    results = yaml.safe_load((tmp_path / "multirun" / "optimization_results.yaml").read_text())
    assert results["pruned_trials"] == 2 and results["trials"] == 2 and results["best_value"] is None
    study = optuna.load_study(study_name=results["study"], storage=storage(str(tmp_path / "multirun" / "optuna.journal")))
    assert [sorted(t.intermediate_values) for t in study.trials] == [[1, 2], [1, 2]]
    assert "no trial completed (2 pruned, 0 failed)" in result.stdout + result.stderr


def test_a_pruner_needs_the_monitored_metric_and_a_known_kind():
    with pytest.raises(ValueError, match="keep metric auto"):
        OptunaSweeper(metric="test_rmse", direction="min", pruner={"kind": "MedianPruner"})
    with pytest.raises(ValueError, match="a class of optuna.pruners"):
        OptunaSweeper(pruner={"kind": "Pruner"})
