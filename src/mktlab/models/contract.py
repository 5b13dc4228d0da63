"""The model contract: what a model plug-in provides, and the only way shared code reaches a model.

A model is one package that exposes a `ModelSpec` under the entry-point group
`mktlab.models` (see `mktlab.models.registry`). The spec is light (a config schema, paths,
names): the `mktlab` launcher reads it without importing JAX. Its `implementation`
names the object, imported only where a model trains, that builds the training tasks,
evaluates a fit into a `Report` and reads the report in plain words.

Conventions every model keeps:
- `build_tasks(cfg, data, seeds)` returns one `TrainTask` per seed, all sharing one
  compiled `train_epoch` (the same task object for every seed when nothing in it depends
  on the seed); the shared loop trains them together.
- A module is in training mode when called with a `key` (dropout on, batch statistics from
  the batch) and in inference mode without one.
- Final metrics follow the names the run summary and the review read: `test_*` (the
  model on the test split), `baseline_*` / `reference_*` (its trivial baselines, same
  protocol), `cv_*` (cross-validation), and `best_<monitor>` (logged by the session).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from pkgutil import resolve_name
from typing import TYPE_CHECKING, Any

from mktlab.config.paths import project_root
from mktlab.config.schema import OptimConfig
from mktlab.data.schemas import DataSource

if TYPE_CHECKING:  # the launcher reads specs without importing JAX or matplotlib
    from mktlab.evaluation.report import Report
    from mktlab.train.loop import FitResult, SeedResults, TrainTask

MODES = ("min", "max")


@dataclass(frozen=True)
class Monitor:
    """The validation metric early stopping and model selection watch, and its better direction."""

    metric: str
    mode: str

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"Monitor mode {self.mode!r}: expected min or max")

    @property
    def best_metric(self) -> str:
        """The name of the run's main metric: `best_<metric>` (sweeps rank runs by it)."""
        return f"best_{self.metric}"

    @property
    def direction(self) -> str:
        """`minimize` or `maximize` (Optuna's words)."""
        return "minimize" if self.mode == "min" else "maximize"


@dataclass(frozen=True)
class ModelImplementation:
    """What trains and evaluates a model (imported only where it trains).

    Attributes:
        build_tasks: `build_tasks(cfg, data, seeds) -> [TrainTask]`, one per seed.
        evaluate: `evaluate(cfg, result, data) -> Report`: test metrics of one trained copy
            beside its baselines', figures, tables, the model to save.
        reading: `reading(cfg, report, data) -> str`: the result in plain words (Markdown),
            saying whether the model beats its baselines.
        evaluate_seeds: optional `evaluate_seeds(cfg, results, data) -> Report` for a run that
            trained several seeds (`SeedResults`): what the seeds give together (e.g. their
            ensemble), whose metrics, figures and tables join the mean and spread of the
            seeds' own reports on the run itself.
    """

    build_tasks: Callable[[Any, Any, Sequence[int]], list[TrainTask]]
    evaluate: Callable[[Any, FitResult, Any], Report]
    reading: Callable[[Any, Report, Any], str]
    evaluate_seeds: Callable[[Any, SeedResults, Any], Report] | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A model plug-in, as the registry, the runner and the notebooks see it.

    Attributes:
        name: the `model.name` and `model=<name>` option.
        schema: the frozen dataclass the `model` node is validated against.
        notebook: the notebook `mktlab model=<name>` executes (a relative path is relative
            to the project root).
        implementation: `"module:attribute"` of its `ModelImplementation`.
        monitor: `monitor(cfg) -> Monitor` from the typed config.
        optim_schema: the schema of the `optim` node (`OptimConfig`), or None when the
            model configures its optimizers under its own keys.
        config_dir: a Hydra config folder the package ships (with `model/<name>.yaml`);
            None when its configs live in the project's `conf/`.
        data_sources: data loaders the package brings (`data.loader` names of its own).
        tiny: overrides that make a run of seconds on a small problem (the contract tests'
            runs; `debug=tiny` plus whatever the model needs on top).
    """

    name: str
    schema: type
    notebook: Path
    implementation: str
    monitor: Callable[[Any], Monitor]
    optim_schema: type | None = OptimConfig
    config_dir: Path | None = None
    data_sources: tuple[DataSource, ...] = ()
    tiny: tuple[str, ...] = ("debug=tiny",)

    def notebook_path(self) -> Path:
        """The notebook as an absolute path."""
        return self.notebook if self.notebook.is_absolute() else project_root() / self.notebook

    def load(self) -> ModelImplementation:
        """The model's implementation (imports its training and evaluation code)."""
        return _resolve(self.implementation)


@cache
def _resolve(reference: str) -> ModelImplementation:
    implementation = resolve_name(reference)
    if not isinstance(implementation, ModelImplementation):
        raise TypeError(f"{reference} is a {type(implementation).__name__}, not a ModelImplementation")
    return implementation
