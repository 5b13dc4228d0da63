"""A job that is an Optuna trial: its monitored metric reported each epoch to a study in a journal file,
and the study's own pruner (kept in the study) deciding when it stops."""

from __future__ import annotations

import logging

import optuna
import pytest

from mktlab.tracking.trials import PRUNER_ATTR, TrialReference, epoch_reporter, make_pruner, storage


def journal_study(tmp_path, pruner: dict) -> tuple[optuna.Study, str]:
    location = str(tmp_path / "optuna.journal")
    study = optuna.create_study(study_name="s", storage=storage(location), direction="minimize")
    study.set_user_attr(PRUNER_ATTR, pruner)
    return study, location


def test_a_trial_behind_the_median_is_stopped_by_the_pruner_the_study_holds(tmp_path) -> None:
    study, location = journal_study(tmp_path, {"kind": "MedianPruner", "n_startup_trials": 1, "n_warmup_steps": 2})
    done = study.ask()
    for epoch, value in enumerate([1.0, 0.8, 0.6], start=1):
        done.report(value, epoch)
    study.tell(done, 0.6)

    trial = study.ask()
    reference = str(TrialReference(trial._trial_id, "s", location))
    assert TrialReference.parse(reference) == TrialReference(trial._trial_id, "s", location)
    stop = epoch_reporter(reference, "val_rmse")  # as a job in another process would open it
    assert stop(1, {"val_rmse": 2.0}) is False  # warm-up: epochs (steps) below n_warmup_steps are never pruned
    assert stop(2, {"train_loss": 0.1}) is False  # an epoch without the monitored metric reports nothing
    assert stop(2, {"val_rmse": 0.7}) is False  # ahead of the completed trial's 0.8 at epoch 2
    assert stop(3, {"val_rmse": 0.9}) is True  # behind its 0.6 at epoch 3
    assert study.trials[1].intermediate_values == {1: 2.0, 2: 0.7, 3: 0.9}


def test_a_finished_trial_or_an_unreadable_study_trains_to_the_end(tmp_path, caplog) -> None:
    study, location = journal_study(tmp_path, {"kind": "ThresholdPruner", "upper": 0.0})
    trial = study.ask()
    study.tell(trial, 1.0)
    with caplog.at_level(logging.WARNING):
        assert epoch_reporter(str(TrialReference(trial._trial_id, "s", location)), "val_rmse")(1, {"val_rmse": 5.0}) is False
        assert epoch_reporter(str(TrialReference(0, "missing", location)), "val_rmse")(1, {"val_rmse": 5.0}) is False
    assert "that trial is finished" in caplog.text and "cannot be read" in caplog.text


def test_a_pruner_is_named_by_its_optuna_class() -> None:
    assert isinstance(make_pruner({"kind": "MedianPruner", "n_warmup_steps": 2}), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner(None), optuna.pruners.NopPruner)
    with pytest.raises(ValueError, match="expected a class of optuna.pruners"):
        make_pruner({"kind": "Median"})
