"""Typed schemas of the config groups every model shares, and of the whole config.

Hydra validates the composed config against these frozen dataclasses: an unknown key or a
value of the wrong type fails at composition, and a value outside its range (declared
with `mktlab.config.checks`) fails right after, before any run is created. The training
code receives instances of these classes, never a `DictConfig`.

The schemas hold no defaults: every default lives, commented, in the YAML files under
`conf/`. The `model`, `data` and `optim` nodes take the schema of the chosen model
(`mktlab.models`) and data loader (`mktlab.data.schemas`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING

from mktlab.config.checks import Rule, above, at_least, fraction, nested, one_of, require

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "warmup_cosine")


@dataclass(frozen=True)
class PathsConfig:
    root: str = MISSING  # the repository folder (conf/, notebooks/, experiments/)
    experiments: str = MISSING  # runtime outputs: store, artifacts, run folders, caches
    cache: str = MISSING  # downloaded data files
    notebooks: str = MISSING  # the models' notebooks


@dataclass(frozen=True)
class TrackingConfig:
    uri: str = MISSING  # MLflow tracking URI: sqlite:///... or http(s)://host:port
    artifact_root: Optional[str] = MISSING  # where new experiments keep artifacts; None lets a server decide
    timeout: float = above(0.0)  # seconds an MLflow server may take to answer before the run fails


@dataclass(frozen=True)
class OptimConfig:
    name: str = one_of(*OPTIMIZERS)
    lr: float = above(0.0)
    weight_decay: float = at_least(0.0)
    b1: float = fraction()
    b2: float = fraction()
    eps: float = above(0.0)
    momentum: float = fraction()
    nesterov: bool = MISSING
    grad_clip: Optional[float] = above(0.0, optional=True)
    schedule: str = one_of(*SCHEDULES)
    warmup_epochs: int = at_least(0)


@dataclass(frozen=True)
class TrainerConfig:
    epochs: int = at_least(1)
    batch_size: int = at_least(1)
    patience: Optional[int] = at_least(1, optional=True)
    min_delta: float = at_least(0.0)
    divergence_factor: Optional[float] = above(1.0, optional=True)
    eval_batch_size: int = at_least(1)
    progress: bool = MISSING
    seeds: Optional[list[int]] = MISSING
    num_seeds: int = at_least(1)
    seed_batch: Optional[int] = at_least(1, optional=True)
    data_parallel: bool = MISSING
    trial: Optional[str] = None  # the Optuna trial this job reports to (`mktlab.tracking.trials`); set by the sweeper

    def invalid(self) -> list[Rule]:
        if self.trial is not None and (self.seeds is not None or self.num_seeds > 1):
            return require(False, "trial", self.trial, "one seed per trial: trainer.seeds null and trainer.num_seeds 1")
        if self.seeds is None:
            return []
        return require(len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds) and all(s >= 0 for s in self.seeds),
                       "seeds", self.seeds, "distinct seeds >= 0, at least one")


@dataclass(frozen=True)
class RunnerConfig:
    reuse_kernel: bool = MISSING  # sweep jobs run one after another in each worker's warm kernel


@dataclass(frozen=True)
class Config:
    """The whole config: shared groups plus the chosen model's, data's and optimizer's schemas."""

    model: Any = MISSING
    data: Any = MISSING
    optim: Any = MISSING  # the model's optimizer schema (`OptimConfig` for most models)
    trainer: TrainerConfig = nested(TrainerConfig)
    tracking: TrackingConfig = nested(TrackingConfig)
    paths: PathsConfig = nested(PathsConfig)
    runner: RunnerConfig = nested(RunnerConfig)
    seed: int = at_least(0)
    experiment_name: str = MISSING
    run_name: Optional[str] = MISSING
    notebook: Optional[str] = MISSING
    tags: dict[str, str] = nested(dict)
    params: dict[str, Any] = nested(dict)

    def invalid(self) -> list[Rule]:
        if self.notebook is None:
            return []
        path = Path(self.notebook).expanduser()
        return require(path.suffix == ".ipynb" and path.is_file(), "notebook", self.notebook, "an existing .ipynb file")


# Groups whose node takes new keys without `+` (`tags.ticket=MKT-12`, `params.alpha=0.5`).
OPEN_KEYS = ("tags", "params")
