"""A Hydra sweeper that searches hyper-parameters with Optuna (ask-and-tell).

The Hydra project's `hydra-optuna-sweeper` 1.3.0 pins `optuna<3` (1.1.2 pins `alembic<1.7`,
which MLflow's SQLAlchemy 2 store cannot import), so it cannot live beside current MLflow
and Optuna. This sweeper keeps its command line and search-space syntax on current Optuna:

    mktlab -m hydra/sweeper=optuna hydra.sweeper.n_trials=30 \\
        'model.dim=choice(16,32,64)' 'optim.lr=tag(log,interval(1e-3,3e-2))' 'seed=range(0,3)'

`choice(...)` and `a,b,c` are categorical, `range(a,b[,step])` integers (or floats) from a
up to b excluded as in Hydra, `interval(a,b)` uniform floats (`int(interval(a,b))` integers), and
`tag(log,interval(a,b))` log-uniform; sampled floats reach the jobs with 4 significant
digits. Each trial is one job of the configured launcher. With `hydra/launcher=joblib`,
`n_jobs` trials run at once and the next trial starts as soon as one ends: a trial that is
pruned or fails early frees its worker at once. Other launchers take `n_jobs` trials at a time
(in parallel with ray or submitit) and the next ones when all of them have ended.

The objective is the job's `metric` (default: `best_<monitor>`, the validation metric the
model's training monitors, as its contract states), in the monitor's direction unless
`direction` says otherwise. A failed job is a failed trial; the search goes on.

With a `pruner` (`{kind: MedianPruner, n_startup_trials: 5, n_warmup_steps: 2}`: any class of
`optuna.pruners` and its arguments), every job reports its monitored metric to the study after
each epoch (`trainer.trial`, `mktlab.tracking.trials`) and stops training when the pruner finds
it behind the trials before it; its run is evaluated and recorded as usual, with a
`pruned_at_epoch` metric, and the trial counts as pruned. The study then lives in
`optuna.journal` in the sweep's folder unless `storage` names another.
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from mktlab.config.secrets import mask_secrets, scrub_text, secrets_in_overrides
from mktlab.models import registry
from mktlab.runner.sweep import JobFailure, read_record
from mktlab.tracking.trials import PRUNED_AT_EPOCH, PRUNER_ATTR, TrialReference, make_pruner
from mktlab.tracking.trials import storage as trial_storage

log = logging.getLogger(__name__)
# launchers whose `launch` may run from several threads at once, each call a job of its own (the others are given
# batches: Ray's first launch starts its runtime, which two threads at once would race to do)
THREAD_SAFE_LAUNCHERS = ("JoblibLauncher",)
DIRECTIONS = {"min": "minimize", "max": "maximize", "minimize": "minimize", "maximize": "maximize"}


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override (`choice`, `range`, `interval`, `tag(log, ...)`)."""
    value = override.value()
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if override.is_range_sweep():
        if any(isinstance(v, float) for v in (value.start, value.stop, value.step)):
            count = math.ceil((value.stop - value.start) / value.step)
            return FloatDistribution(value.start, value.start + (count - 1) * value.step, step=value.step)
        return IntDistribution(int(value.start), int(value.stop) - int(value.step), step=int(value.step))
    if override.is_interval_sweep():
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log_scale)
        return FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise ValueError(f"{override.input_line}: the Optuna sweeper takes choice, range, interval or tag(log, interval)")


def search_space(params: Mapping[str, Any] | None, arguments: Sequence[str]) -> tuple[list[str], dict[str, BaseDistribution]]:
    """`hydra.sweeper.params` and the command line -> (fixed overrides, {key: distribution}).

    A key given on the command line replaces the same key from `params`.
    """
    lines = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
    fixed: dict[str, str] = {}
    space: dict[str, BaseDistribution] = {}
    for override in OverridesParser.create().parse_overrides(lines):
        key = override.get_key_element()
        fixed.pop(key, None)
        space.pop(key, None)
        if override.is_sweep_override():
            space[key] = distribution(override)
        else:
            fixed[key] = override.input_line
    return list(fixed.values()), space


def _override_value(value: Any) -> str:
    if isinstance(value, str):
        return Transformer.str(value)  # quoted where the override grammar needs it
    if isinstance(value, float):
        return f"{value:.4g}"  # 4 significant digits: readable run names, no practical loss
    return str(value)


def trial_overrides(fixed: Sequence[str], params: Mapping[str, Any]) -> list[str]:
    """A trial's job overrides: the fixed ones, then the sampled values."""
    return [*fixed, *(f"{key}={_override_value(value)}" for key, value in params.items())]


class OptunaSweeper(Sweeper):
    """Hydra sweeper: Optuna's ask-and-tell over the configured launcher.

    Args:
        sampler: an Optuna sampler (Hydra instantiates `sampler._target_`).
        metric: the job metric to optimize; `auto` is `best_<monitor>` of the training loop.
        direction: `minimize`, `maximize`, or `auto` (the monitor's mode).
        n_trials: trials in all.
        n_jobs: trials launched together.
        study_name: the Optuna study name (default `mktlab-<sweep id>`).
        storage: an Optuna storage URL to keep (and resume) the study; None keeps it in memory
            (with a pruner: in a journal file in the sweep's folder).
        params: `{key: search space}` as in Hydra's sweepers.
        pruner: `{kind: <optuna.pruners class>, **its arguments}` to stop trials that lag; None prunes nothing.
    """

    def __init__(
        self,
        sampler: Any = None,
        metric: str = "auto",
        direction: str = "auto",
        n_trials: int = 20,
        n_jobs: int = 2,
        study_name: str | None = None,
        storage: str | None = None,
        params: Mapping[str, Any] | None = None,
        pruner: Mapping[str, Any] | None = None,
    ) -> None:
        if direction != "auto" and direction not in DIRECTIONS:
            raise ValueError(f"hydra.sweeper.direction={direction!r}: expected minimize, maximize or auto")
        if direction == "auto" and metric != "auto":
            raise ValueError(f"hydra.sweeper.metric={metric}: set hydra.sweeper.direction (minimize or maximize) for it")
        if n_trials < 1 or n_jobs < 1:
            raise ValueError("hydra.sweeper.n_trials and n_jobs must be at least 1")
        pruner = OmegaConf.to_container(pruner) if isinstance(pruner, DictConfig) else (dict(pruner) if pruner else None)
        if pruner:
            make_pruner(pruner)  # a wrong kind or argument fails here, before any trial
            if metric != "auto":
                raise ValueError(f"hydra.sweeper.metric={metric}: a pruner compares the monitored metric each epoch; keep metric auto")
            if storage and "@" in storage:
                raise ValueError("hydra.sweeper.storage: with a pruner every job opens the study, so its URL must not hold "
                                 "credentials; leave storage null (a journal file in the sweep's folder)")
            if study_name and "@" in study_name:
                raise ValueError(f"hydra.sweeper.study_name={study_name!r}: with a pruner, a name without '@'")
        self.sampler = sampler
        self.metric = metric
        self.direction = direction if direction == "auto" else DIRECTIONS[direction]
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.study_name = study_name
        self.storage = storage
        self.params = dict(params or {})
        self.pruner = pruner or None
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Any = None
        self._validated = False  # whether a trial's config was composed here (`_ask`)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context, task_function=task_function, config=config)

    # ------------------------------------------------------------------ objective
    def _objective(self, fixed: Sequence[str]) -> tuple[str, str]:
        """`(metric, direction)`: the configured ones, or the model's monitor (`best_<metric>` in its
        direction) read from the model's contract for the config the trials share."""
        assert self.config is not None and self.hydra_context is not None
        if self.metric != "auto":
            return self.metric, self.direction
        job = self.hydra_context.config_loader.load_sweep_config(self.config, list(fixed))
        with open_dict(job):
            del job["hydra"]
        cfg = registry.typed(job)
        monitor = registry.get(cfg.model.name).monitor(cfg)
        direction = monitor.direction if self.direction == "auto" else self.direction
        if direction != monitor.direction:
            log.warning(f"Optuna: the study {direction[:-1]}es {monitor.best_metric}, which the model's training {monitor.direction[:-1]}es")
        return monitor.best_metric, direction

    def _outcome(self, job_num: int, result: JobReturn, metric: str) -> tuple[TrialState, float | None]:
        """The trial's state and value (a failed job, or one without a finite `metric`, is a failed trial)."""
        if result.status != JobStatus.COMPLETED or isinstance(result._return_value, JobFailure):
            return TrialState.FAIL, None
        metrics = result._return_value if isinstance(result._return_value, Mapping) else {}
        if PRUNED_AT_EPOCH in metrics:
            return TrialState.PRUNED, None  # Optuna keeps its last reported value
        value = metrics.get(metric)
        if value is None or not math.isfinite(float(value)):
            log.warning(f"job {job_num}: no finite {metric} among its metrics; the trial counts as failed")
            return TrialState.FAIL, None
        return TrialState.COMPLETE, float(value)

    def _storage_location(self, sweep_dir: Path) -> str | None:
        """Where the study lives: `storage`, else (with a pruner, whose jobs report to it) `optuna.journal`
        in the sweep's folder, else nowhere (in memory)."""
        if self.storage or not self.pruner:
            return self.storage
        return str((sweep_dir / "optuna.journal").resolve())

    def _study(self, direction: str, location: str | None) -> optuna.Study:
        assert self.config is not None
        record = read_record(str(self.config.hydra.sweep.dir))
        name = self.study_name or f"mktlab-{record.sweep_id if record else Path(str(self.config.hydra.sweep.dir)).name}"
        study = optuna.create_study(study_name=name, storage=trial_storage(location) if location else None, sampler=self.sampler,
                                    pruner=make_pruner(self.pruner), direction=direction, load_if_exists=True)
        if self.pruner:
            study.set_user_attr(PRUNER_ATTR, self.pruner)  # the jobs build the same pruner from it
        return study

    def _trial_overrides(self, fixed: Sequence[str], trial: optuna.trial.Trial, location: str | None) -> list[str]:
        overrides = trial_overrides(fixed, trial.params)
        if self.pruner and location:
            reference = TrialReference(trial._trial_id, trial.study.study_name, location)
            overrides.append(f"trainer.trial={_override_value(str(reference))}")
        return overrides

    # ------------------------------------------------------------------ the search
    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        fixed, space = search_space(self.params, arguments)
        record = yaml.safe_dump(mask_secrets(OmegaConf.to_container(self.config, resolve=False, enum_to_str=True)), sort_keys=False)
        (sweep_dir / "multirun.yaml").write_text(scrub_text(record, secrets_in_overrides(arguments)), encoding="utf-8")
        if not space:
            raise ValueError("the Optuna sweeper has nothing to search: give hydra.sweeper.params or overrides like 'optim.lr=interval(1e-4,1e-1)'")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        metric, direction = self._objective(fixed)
        location = self._storage_location(sweep_dir)
        study = self._study(direction, location)
        pruning = f", pruned by {self.pruner['kind']}" if self.pruner else ""
        log.info(f"Optuna: {self.n_trials} trials, {self.n_jobs} at a time, {direction} {metric} over {', '.join(space)}{pruning}")
        ask = lambda: self._ask(study, space, fixed, location)  # noqa: E731

        def tell(number: int, trial: Any, result: JobReturn) -> None:
            state, value = self._outcome(number, result, metric)
            study.tell(trial, value, state=state)
            if isinstance(result._return_value, JobFailure) and result._return_value.interrupted:
                raise KeyboardInterrupt(f"trial {number} was interrupted")  # Ctrl-C reached a worker: the search stops

        if self.n_jobs > 1 and type(self.launcher).__name__ in THREAD_SAFE_LAUNCHERS:
            returns = self._launch_as_workers_free_up(ask, tell)
        else:
            returns = self._launch_in_batches(ask, tell)
        self._report(study, metric, sweep_dir)
        return returns

    def _ask(self, study: optuna.Study, space: dict[str, BaseDistribution], fixed: Sequence[str], location: str | None) -> tuple[Any, list[str]]:
        """A new trial and its job's overrides.

        The first trial's config is composed here too, so that a wrong key or a value outside
        the config's schema stops the search before any job runs. The later trials set the same
        keys to other values of the same search space; each is composed where its job runs (a
        value the config refuses fails that trial, and the search goes on), which spares the
        launcher a composition (a quarter of a second) between a trial's end and the next one's start.
        """
        trial = study.ask(space)
        overrides = self._trial_overrides(fixed, trial, location)
        if not self._validated:
            self.validate_batch_is_legal([overrides])
            self._validated = True
        return trial, overrides

    def _launch_in_batches(self, ask: Any, tell: Any) -> list[Sequence[JobReturn]]:
        """`n_jobs` trials at a time through the launcher, each batch's outcomes told before the next is asked."""
        returns, done = [], 0
        while done < self.n_trials:
            asked = [ask() for _ in range(min(self.n_jobs, self.n_trials - done))]
            results = self.launcher.launch([overrides for _, overrides in asked], initial_job_idx=done)
            for offset, ((trial, _), result) in enumerate(zip(asked, results)):
                tell(done + offset, trial, result)
            returns.append(results)
            done += len(asked)
        return returns

    def _launch_as_workers_free_up(self, ask: Any, tell: Any) -> list[Sequence[JobReturn]]:
        """`n_jobs` trials in flight, each launched alone from a thread of this process; a trial that ends is
        told at once and the next one asked and launched in its place."""
        results: dict[int, JobReturn] = {}
        running: dict[Future, tuple[int, Any]] = {}
        asked = 0
        with ThreadPoolExecutor(self.n_jobs, thread_name_prefix="optuna-trial") as threads:
            try:
                while asked < self.n_trials or running:
                    while asked < self.n_trials and len(running) < self.n_jobs:
                        trial, overrides = ask()
                        running[threads.submit(self.launcher.launch, [overrides], initial_job_idx=asked)] = (asked, trial)
                        asked += 1
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        number, trial = running.pop(future)
                        (results[number],) = future.result()
                        tell(number, trial, results[number])
            except BaseException:
                # Ctrl-C or a launcher error: no new trial; the trials in flight end (an interrupt reaches their workers too)
                threads.shutdown(wait=False, cancel_futures=True)
                raise
        return [[results[number] for number in sorted(results)]]

    def _report(self, study: optuna.Study, metric: str, sweep_dir: Path) -> None:
        """Print the best trial and write `optimization_results.yaml` into the sweep folder (its counts even
        when no trial completed)."""
        completed = study.get_trials(states=[TrialState.COMPLETE])
        best = study.best_trial if completed else None
        results = {
            "name": "optuna",
            "study": study.study_name,
            "metric": metric,
            "direction": study.direction.name.lower(),
            "best_params": best.params if best else None,
            "best_value": best.value if best else None,
            "best_trial": best.number if best else None,
            "trials": len(study.trials),
            "failed_trials": len(study.get_trials(states=[TrialState.FAIL])),
            "pruned_trials": len(study.get_trials(states=[TrialState.PRUNED])),
        }
        (sweep_dir / "optimization_results.yaml").write_text(yaml.safe_dump(results, sort_keys=False), encoding="utf-8")
        if best is None:
            log.warning(f"Optuna: no trial completed ({results['pruned_trials']} pruned, {results['failed_trials']} failed)")
            return
        log.info(f"Optuna: best {metric} {best.value:.6g} with {best.params}")
