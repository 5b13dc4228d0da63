"""A job that is an Optuna trial: its monitored metric reported to the study after every epoch, and
the trial stopped early when the study's pruner says it lags the others.

mktlab's Optuna sweeper (`hydra.sweeper.pruner`) keeps the study in a journal file in the sweep's
folder (or in its `storage`) and sets each trial's `trainer.trial` to a reference of it,
`<trial id>@<study name>@<storage>`. The pruner's settings travel in the study itself (a user
attribute), so every job decides with the same pruner as the sweeper configured. Optuna is
imported only by a job that reports.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

PRUNED_AT_EPOCH = "pruned_at_epoch"  # the metric of a run its trial's pruner stopped: the epoch it stopped at
PRUNER_ATTR = "mktlab.pruner"  # the study's user attribute holding the pruner: {"kind": <optuna.pruners class>, **its arguments}


@dataclass(frozen=True)
class TrialReference:
    """Where a trial lives: its id, its study's name and the study's storage (an Optuna storage URL,
    or the path of a journal file)."""

    trial_id: int
    study: str
    storage: str

    def __str__(self) -> str:
        return f"{self.trial_id}@{self.study}@{self.storage}"

    @classmethod
    def parse(cls, text: str) -> TrialReference:
        trial_id, study, storage = text.split("@", 2)
        return cls(int(trial_id), study, storage)


def storage(location: str) -> Any:
    """The Optuna storage at `location`: a storage URL (`sqlite:///...`, `postgresql://...`) or a journal file,
    which several processes may write at once."""
    import optuna

    if "://" in location:
        return optuna.storages.RDBStorage(location)
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(location))


def make_pruner(spec: Mapping[str, Any] | None) -> Any:
    """`{"kind": "MedianPruner", **arguments}` -> that `optuna.pruners` pruner (None -> Optuna's NopPruner)."""
    import optuna

    if not spec:
        return optuna.pruners.NopPruner()
    arguments = dict(spec)
    kind = arguments.pop("kind", None)
    pruner_class = getattr(optuna.pruners, str(kind), None)
    if not isinstance(pruner_class, type) or not issubclass(pruner_class, optuna.pruners.BasePruner):
        raise ValueError(f"hydra.sweeper.pruner.kind={kind!r}: expected a class of optuna.pruners, e.g. MedianPruner")
    return pruner_class(**arguments)


def epoch_reporter(reference: str, monitor: str) -> Callable[[int, Mapping[str, float]], bool]:
    """`on_epoch(epoch, metrics) -> stop`: reports `metrics[monitor]` as the trial's value at that epoch
    and answers whether the pruner stops the trial there.

    A trial that is no longer running (a rerun of a finished trial), or whose study cannot be
    read, is trained to the end: a warning says so, and nothing is reported.
    """
    import optuna

    parsed = TrialReference.parse(reference)
    try:
        store = storage(parsed.storage)
        study = optuna.load_study(study_name=parsed.study, storage=store)
        study.pruner = make_pruner(study.user_attrs.get(PRUNER_ATTR))
        trial = optuna.trial.Trial(study, parsed.trial_id)
        running = store.get_trial(parsed.trial_id).state == optuna.trial.TrialState.RUNNING
    except Exception as error:  # noqa: BLE001 - any failure to reach the study leaves training as configured
        log.warning(f"trainer.trial={reference}: the Optuna study cannot be read ({type(error).__name__}: {error}); "
                    "training runs to the end, unpruned")
        return lambda epoch, metrics: False
    if not running:
        log.warning(f"trainer.trial={reference}: that trial is finished; this run reports nothing and is not pruned")
        return lambda epoch, metrics: False

    def on_epoch(epoch: int, metrics: Mapping[str, float]) -> bool:
        if monitor not in metrics:
            return False
        trial.report(float(metrics[monitor]), epoch)
        return bool(trial.should_prune())

    return on_epoch


__all__ = ["PRUNED_AT_EPOCH", "PRUNER_ATTR", "TrialReference", "storage", "make_pruner", "epoch_reporter"]
