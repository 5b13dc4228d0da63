"""The one training loop: epochs, validation, early stopping, divergence checks, progress.

The loop knows nothing of MLflow: each trained copy reports its epochs through a
callback (`on_epoch(epoch, metrics)`); the notebook side (`mktlab.session`) logs them.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
from tqdm import tqdm

from mktlab.config.schema import TrainerConfig
from mktlab.train.state import merge_module
from mktlab.train.steps import START_PREFIX


class TrainingDiverged(FloatingPointError):
    """Training went astray: a metric became NaN or infinite, or the loss grew far past its start."""


class NonFiniteLossError(TrainingDiverged):
    """A training or monitored metric became NaN or infinite."""


ADVICE = "lower optim.lr, add optim.grad_clip, or check the data for extreme values"

EpochCallback = Callable[[int, dict[str, float]], Any]  # on_epoch(epoch, metrics) -> True stops this copy's training (pruned)


@dataclass
class TrainTask:
    """What the loop needs from a model: one trained copy's callbacks.

    Copies trained together (`fit_loop_vectorized`) may each have a task of their own
    (their own validation samples, hooks, result) as long as all share one `train_epoch`.

    Attributes:
        init: `init(key) -> state`.
        train_epoch: `train_epoch(state, key) -> (state, metrics)`, one compiled epoch.
        validate: `validate(state) -> metrics` on the validation split (names start `val_`).
        monitor: the validation metric that early stopping and model selection watch;
            an epoch whose metrics lack it is neither a candidate nor counted as patience.
        mode: `"min"` or `"max"`: which direction of `monitor` is better.
        graphdef: the module's graph, so the result can rebuild the best module.
        on_epoch_end: optional `hook(epoch, state, row)`, e.g. to render samples.
        finish: optional `finish(result) -> result` applied to the copy's `FitResult` at the
            end, e.g. to return a subclass carrying what the model's evaluation needs.
    """

    init: Callable[[jax.Array], Any]
    train_epoch: Callable[[Any, jax.Array], tuple[Any, dict[str, Any]]]
    validate: Callable[[Any], dict[str, float]]
    monitor: str
    mode: str = "min"
    graphdef: Any = None
    on_epoch_end: Callable[[int, Any, dict[str, float]], None] | None = None
    finish: Callable[[FitResult], FitResult] | None = None


@dataclass
class FitResult:
    """The outcome of `fit_loop`: the best state and the per-epoch history."""

    state: Any
    graphdef: Any = None
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = math.nan
    stopped_early: bool = False
    pruned: bool = False  # stopped by its `on_epoch` callback (an Optuna pruner) at its last epoch
    seconds: float = 0.0
    monitor: str = ""  # the metric `best_score` is the best of

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    def summary(self, monitor: str = "monitored metric") -> str:
        stop = ", pruned" if self.pruned else ", stopped early" if self.stopped_early else ""
        return f"best epoch {self.best_epoch} of {self.epochs_run}{stop}: {monitor} {self.best_score:.4f} ({self.seconds:.1f} s)"

    @property
    def model(self) -> Any:
        """The best epoch's module (needs `graphdef`)."""
        return merge_module(self.graphdef, self.state.params, self.state.rest)


@dataclass
class SeedResults:
    """The outcome of training several seeds at once: one `FitResult` per seed (and, on the
    notebook side, the child run each seed logged into)."""

    seeds: list[int]
    results: list[FitResult]
    trackers: list[Any] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.results[0].seconds if self.results else 0.0

    def summary(self, monitor: str = "monitored metric") -> str:
        lines = [f"{len(self.seeds)} seeds trained together in {self.seconds:.1f} s"]
        lines += [f"  seed {seed}: {result.summary(monitor)}" for seed, result in zip(self.seeds, self.results)]
        return "\n".join(lines)

    def __len__(self) -> int:
        return len(self.seeds)


def seeds_in_lockstep(trainer: TrainerConfig, num_seeds: int) -> int:
    """How many seeds one compiled epoch advances together under `jax.vmap` (`trainer.seed_batch`).

    Groups of that many seeds take turns calling the same compiled epoch. On an
    accelerator all seeds in one group fill the device. On a CPU, vmapped copies multiply
    the working set of every gather, scatter and optimizer update beyond the caches and
    cost more than stepping the seeds one after another, so the default there is 1: the
    seeds share one compiled (and cached) program, each stops early on its own, and each
    computes exactly what a separate run computes.
    """
    if trainer.seed_batch is not None:
        if trainer.seed_batch < 1:
            raise ValueError(f"trainer.seed_batch={trainer.seed_batch}: expected a positive number of seeds")
        return min(trainer.seed_batch, num_seeds)
    return 1 if jax.default_backend() == "cpu" else num_seeds


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
    on_epoch: EpochCallback | None = None,
    desc: str = "train",
) -> FitResult:
    """Train `task` for up to `trainer.epochs` epochs and keep the best epoch's state.

    Args:
        task: the model's init, epoch and validation functions.
        trainer: epochs, patience, progress settings.
        model_key: the key of the parameter init.
        train_key: each epoch's key is `fold_in(train_key, epoch)`.
        on_epoch: called with each epoch's number and metrics (e.g. to log them); a true answer
            stops the training there (`FitResult.pruned`), the best epoch so far kept.
        desc: the progress bar's label.

    Raises:
        TrainingDiverged: a metric became NaN or infinite, or a loss grew more than
            `trainer.divergence_factor` times its value at the first step.
    """
    return _train([task], trainer, model_keys=[model_key], train_keys=[train_key], callbacks=[on_epoch], desc=desc, vectorized=False)[0]


def fit_loop_vectorized(
    task: TrainTask | Sequence[TrainTask],
    trainer: TrainerConfig,
    *,
    model_keys: Sequence[jax.Array],
    train_keys: Sequence[jax.Array],
    callbacks: Sequence[EpochCallback | None],
    desc: str = "train",
) -> list[FitResult]:
    """Train one copy per key pair with one compiled epoch (`trainer.seed_batch` copies at
    a time under `jax.vmap`, the groups in turn).

    `task` is one task for every copy, or one per copy (its own init, validation, hook and
    finish) that all share the same `train_epoch`. Parameters, optimizer state and data
    order are all per copy; each copy validates, stops early and keeps its best epoch
    exactly as `fit_loop` would with its task and keys, so copy i's result equals a
    separate `fit_loop` run with `model_keys[i]`, `train_keys[i]` (to float tolerance).
    Training ends when every copy has stopped.
    """
    tasks = [task] * len(callbacks) if isinstance(task, TrainTask) else list(task)
    if len(tasks) != len(callbacks):
        raise ValueError(f"{len(tasks)} tasks for {len(callbacks)} copies")
    if any(t.train_epoch is not tasks[0].train_epoch for t in tasks):
        raise ValueError("copies trained together must share one train_epoch")
    return _train(tasks, trainer, model_keys=list(model_keys), train_keys=list(train_keys), callbacks=list(callbacks), desc=desc,
                  vectorized=True)


@dataclass
class _Member:
    """The loop's bookkeeping for one trained copy."""

    result: FitResult
    on_epoch: EpochCallback | None
    waited: int = 0
    active: bool = True
    start: dict[str, float] = field(default_factory=dict)  # each loss at the first training step


class _SeedGroup:
    """Copies stepped together: one state, stacked under `jax.vmap` when it holds several.

    Each copy is initialized by its own task, so `init` need not be vmappable; only the
    shared `train_epoch` runs under `jax.vmap`.
    """

    def __init__(self, tasks: list[TrainTask], members: list[int], model_keys: list[jax.Array], train_keys: list[jax.Array],
                 batched_epoch: Callable[[Any, jax.Array], tuple[Any, dict[str, Any]]]) -> None:
        self.members, self.batched = members, len(members) > 1
        self._train_keys = [train_keys[i] for i in members]
        states = [tasks[i].init(model_keys[i]) for i in members]
        if self.batched:
            self._epoch = batched_epoch
            self.state = jax.tree.map(lambda *leaves: jax.numpy.stack(leaves), *states)
        else:
            self._epoch = tasks[members[0]].train_epoch
            self.state = states[0]
        self.metrics: dict[str, Any] = {}

    def train_epoch(self, epoch: int) -> None:
        if self.batched:
            keys = jax.numpy.stack([jax.random.fold_in(key, epoch) for key in self._train_keys])
            # copies are sliced on the host: indexing device arrays compiles one program per index
            self.state, self.metrics = jax.device_get(self._epoch(self.state, keys))
        else:
            self.state, self.metrics = self._epoch(self.state, jax.random.fold_in(self._train_keys[0], epoch))

    def _slice(self, tree: Any, i: int) -> Any:
        if not self.batched:
            return tree
        position = self.members.index(i)
        return jax.tree.map(lambda leaf: leaf[position], tree)

    def member_state(self, i: int) -> Any:
        return self._slice(self.state, i)

    def member_metrics(self, i: int) -> dict[str, Any]:
        return self._slice(self.metrics, i)


def _seed_groups(tasks: list[TrainTask], trainer: TrainerConfig, model_keys: list[jax.Array], train_keys: list[jax.Array],
                 vectorized: bool) -> list[_SeedGroup]:
    batched_epoch = jax.jit(jax.vmap(tasks[0].train_epoch))  # compiled on first call, once per group size
    size = seeds_in_lockstep(trainer, len(tasks)) if vectorized else 1
    return [_SeedGroup(tasks, list(range(start, min(start + size, len(tasks)))), model_keys, train_keys, batched_epoch)
            for start in range(0, len(tasks), size)]


def _train(
    tasks: list[TrainTask],
    trainer: TrainerConfig,
    *,
    model_keys: list[jax.Array],
    train_keys: list[jax.Array],
    callbacks: list[EpochCallback | None],
    desc: str,
    vectorized: bool,
) -> list[FitResult]:
    for task in tasks:
        if task.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {task.mode!r}")
    started = time.perf_counter()
    groups = _seed_groups(tasks, trainer, model_keys, train_keys, vectorized)
    group_of = [group for group in groups for _ in group.members]  # groups hold consecutive members
    members = [_Member(FitResult(state=group_of[i].member_state(i), graphdef=task.graphdef), callback)
               for i, (task, callback) in enumerate(zip(tasks, callbacks))]
    bar = tqdm(range(1, trainer.epochs + 1), desc=desc, unit="epoch", disable=not trainer.progress, file=sys.stderr, dynamic_ncols=True)
    try:
        for epoch in bar:
            for group in groups:
                if any(members[i].active for i in group.members):
                    group.train_epoch(epoch)
            for i, (task, member) in enumerate(zip(tasks, members)):
                if not member.active:
                    continue
                state = group_of[i].member_state(i)
                row = _epoch_row(group_of[i].member_metrics(i), member, epoch, trainer.divergence_factor)
                row.update(task.validate(state))
                monitored = task.monitor in row  # a model may validate only some epochs (e.g. image metrics)
                score = row.get(task.monitor, math.nan)
                if monitored and not math.isfinite(score):
                    raise NonFiniteLossError(f"the monitored metric {task.monitor} is {score} at epoch {epoch}; {ADVICE}")
                result = member.result
                result.history.append({"epoch": epoch, **row})
                if member.on_epoch is not None and member.on_epoch(epoch, row):
                    result.pruned, member.active = True, False
                if task.on_epoch_end is not None:
                    task.on_epoch_end(epoch, state, row)
                if not monitored:
                    pass
                elif _improved(score, result.best_score, task.mode, trainer.min_delta):
                    result.state, result.best_epoch, result.best_score, member.waited = state, epoch, score, 0
                else:
                    member.waited += 1
                if trainer.patience is not None and member.waited >= trainer.patience:
                    result.stopped_early, member.active = True, False
                if i == 0 or not vectorized:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in row.items()}, refresh=False)
            if not any(member.active for member in members):
                break
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    results = []
    for i, (task, member) in enumerate(zip(tasks, members)):
        result = member.result
        if result.best_epoch == 0 and result.history:  # nothing was monitored: keep the last epoch
            result.state, result.best_epoch = group_of[i].member_state(i), result.history[-1]["epoch"]
        result.seconds = seconds
        result.monitor = task.monitor
        results.append(task.finish(result) if task.finish is not None else result)
    return results


def _epoch_row(metrics: dict[str, Any], member: _Member, epoch: int, divergence_factor: float | None) -> dict[str, float]:
    """The epoch's training metrics as `train_<name>` floats, checked for NaN and divergence.

    Each loss is compared with its value at the first training step (reported by the
    epoch under a `START_PREFIX` name): growing more than `divergence_factor` times past it
    means the optimization diverges.
    """
    values = {k: float(v) for k, v in metrics.items()}
    starts = {k.removeprefix(START_PREFIX): v for k, v in values.items() if k.startswith(START_PREFIX)}
    if not member.start:
        member.start = starts
    row = {f"train_{k}": v for k, v in values.items() if not k.startswith(START_PREFIX)}
    bad = [k for k, v in row.items() if not math.isfinite(v)]
    if bad:
        raise NonFiniteLossError(f"{', '.join(bad)} became {row[bad[0]]} at epoch {epoch}; {ADVICE}")
    if divergence_factor is not None:
        for name, first in member.start.items():
            value = row.get(f"train_{name}")
            if value is not None and math.isfinite(first) and first > 0 and value > divergence_factor * first:
                raise TrainingDiverged(
                    f"train_{name} grew from {first:.4g} at the first step to {value:.4g} at epoch {epoch} "
                    f"(more than trainer.divergence_factor={divergence_factor:g} times): training diverges; {ADVICE}"
                )
    return row
