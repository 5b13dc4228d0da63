"""Every config group composes; bad keys and types are rejected before anything runs."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from mktlab import paths
from mktlab.config import compose, flatten, to_container, to_dataclasses
from mktlab.config.schema import MFModelConfig, OptimConfig

GROUPS = ["model", "data", "optim", "trainer", "tracking", "experiment", "debug"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (paths.conf_dir() / group).glob("*.yaml"))


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_of_every_group_composes(group: str) -> None:
    for option in options(group):
        cfg = to_dataclasses(compose([f"{group}={option}"]))
        assert cfg.experiment_name


def test_default_config_is_typed() -> None:
    cfg = to_dataclasses(compose())
    assert isinstance(cfg.model, MFModelConfig) and isinstance(cfg.optim, OptimConfig)
    assert cfg.tracking.uri == f"sqlite:///{paths.project_root()}/experiments/mlflow.db"
    assert cfg.experiment_name == "mf"


def test_overrides_apply_and_convert() -> None:
    cfg = to_dataclasses(compose(["optim.lr=0.01", "model.dim=8", "optim=sgd"]))
    assert cfg.optim.lr == 0.01 and cfg.optim.name == "sgd" and cfg.model.dim == 8


@pytest.mark.parametrize(
    "override, error",
    [("model.not_a_key=1", ConfigCompositionException), ("model.dim=abc", ConfigCompositionException),
     ("trainer.epochs=1.5", ConfigCompositionException), ("model=nonexistent", ConfigCompositionException)],
)
def test_bad_key_or_type_is_rejected(override: str, error: type) -> None:
    with pytest.raises(error):
        compose([override])


def test_injected_dict_is_revalidated() -> None:
    config = to_container(compose())
    config["model"]["dim"] = "many"
    with pytest.raises(ValidationError):
        to_dataclasses(config)
    config = to_container(compose())
    config["model"]["extra"] = 1
    with pytest.raises(ConfigKeyError):
        to_dataclasses(config)


def test_flatten() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": None}) == {"a.b": 1, "a.c.d": [1, 2], "e": None}
