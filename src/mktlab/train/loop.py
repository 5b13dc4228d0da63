"""The one training loop: epochs, validation, early stopping, logging, progress."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import jax
from tqdm import tqdm

from mktlab.config.schema import TrainerConfig


class NonFiniteLossError(FloatingPointError):
    """A training metric became NaN or infinite."""


class Tracking(Protocol):
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...

    def set_tags(self, tags: dict[str, str]) -> None: ...


@dataclass
class TrainTask:
    """What the loop needs from a model.

    Attributes:
        init: `init(key) -> state`.
        train_epoch: `train_epoch(state, key) -> (state, metrics)`, one compiled epoch.
        validate: `validate(state) -> metrics` on the validation split (names start `val_`).
        monitor: the validation metric that early stopping and model selection watch;
            an epoch whose metrics lack it is neither a candidate nor counted as patience.
        mode: `"min"` or `"max"`: which direction of `monitor` is better.
        graphdef: the module's graph, so the result can rebuild the best module.
        on_epoch_end: optional `hook(epoch, state, row)`, e.g. to render samples.
    """

    init: Callable[[jax.Array], Any]
    train_epoch: Callable[[Any, jax.Array], tuple[Any, dict[str, Any]]]
    validate: Callable[[Any], dict[str, float]]
    monitor: str
    mode: str = "min"
    graphdef: Any = None
    on_epoch_end: Callable[[int, Any, dict[str, float]], None] | None = None


@dataclass
class FitResult:
    """The outcome of `fit_loop`: the best state and the per-epoch history."""

    state: Any
    graphdef: Any = None
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = math.nan
    stopped_early: bool = False
    seconds: float = 0.0

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    @property
    def model(self) -> Any:
        """The best epoch's module (needs `graphdef`)."""
        from mktlab.train.state import merge_module

        return merge_module(self.graphdef, self.state.params, self.state.rest)


def _improved(score: float, best: float, mode: str, min_delta: float) -> bool:
    if math.isnan(best):
        return True
    return score < best - min_delta if mode == "min" else score > best + min_delta


def fit_loop(
    task: TrainTask,
    trainer: TrainerConfig,
    *,
    model_key: jax.Array,
    train_key: jax.Array,
    tracker: Tracking | None = None,
    desc: str = "train",
) -> FitResult:
    """Train `task` for up to `trainer.epochs` epochs and keep the best epoch's state.

    Args:
        task: the model's init, epoch and validation functions.
        trainer: epochs, patience, progress settings.
        model_key: the key of the parameter init.
        train_key: each epoch's key is `fold_in(train_key, epoch)`.
        tracker: receives every epoch's metrics (`step=epoch`); None logs nothing.
        desc: the progress bar's label.

    Raises:
        NonFiniteLossError: a training or monitored metric became NaN or infinite.
    """
    if task.mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {task.mode!r}")
    started = time.perf_counter()
    if tracker is not None:  # sweeps and reviews rank runs by this metric, in this direction
        tracker.set_tags({"mktlab.monitor": task.monitor, "mktlab.monitor_mode": task.mode})
    state = task.init(model_key)
    result = FitResult(state=state, graphdef=task.graphdef)
    waited = 0
    bar = tqdm(range(1, trainer.epochs + 1), desc=desc, unit="epoch", disable=not trainer.progress, file=sys.stderr, dynamic_ncols=True)
    for epoch in bar:
        state, train_metrics = task.train_epoch(state, jax.random.fold_in(train_key, epoch))
        row = {f"train_{k}": float(v) for k, v in train_metrics.items()}
        bad = [k for k, v in row.items() if not math.isfinite(v)]
        if bad:
            bar.close()
            raise NonFiniteLossError(
                f"{', '.join(bad)} became {row[bad[0]]} at epoch {epoch}; "
                "lower optim.lr, add optim.grad_clip, or check the data for extreme values"
            )
        row.update(task.validate(state))
        monitored = task.monitor in row  # a model may validate only some epochs (e.g. image metrics)
        score = row.get(task.monitor, math.nan)
        if monitored and not math.isfinite(score):
            bar.close()
            raise NonFiniteLossError(f"the monitored metric {task.monitor} is {score} at epoch {epoch}")
        result.history.append({"epoch": epoch, **row})
        if tracker is not None:
            tracker.log_metrics(row, step=epoch)
        if task.on_epoch_end is not None:
            task.on_epoch_end(epoch, state, row)
        if not monitored:
            pass
        elif _improved(score, result.best_score, task.mode, trainer.min_delta):
            result.state, result.best_epoch, result.best_score, waited = state, epoch, score, 0
        else:
            waited += 1
        bar.set_postfix({k: f"{v:.4g}" for k, v in row.items()}, refresh=False)
        if trainer.patience is not None and waited >= trainer.patience:
            result.stopped_early = True
            break
    bar.close()
    if result.best_epoch == 0 and result.history:  # nothing was monitored: keep the last epoch
        result.state, result.best_epoch = state, result.history[-1]["epoch"]
    result.seconds = time.perf_counter() - started
    if tracker is not None and math.isfinite(result.best_score):
        tracker.log_metrics({f"best_{task.monitor}": result.best_score, "best_epoch": result.best_epoch})
    return result
