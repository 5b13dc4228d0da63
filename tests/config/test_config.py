"""Every config group composes; bad keys, types and values are rejected before anything runs."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException

from mktlab.config import ConfigError, flatten, paths, to_container
from mktlab.config.schema import OptimConfig
from mktlab.models import registry
from mktlab.models.mf.config import MFConfig

GROUPS = ["model", "data", "optim", "trainer", "tracking", "experiment", "debug"]
# Options that cannot stand alone: their files point at data the user supplies (data.path=...),
# or they are a model's own optimizer group (picked by the model's file).
NEEDS_MORE = {
    "data": {"clicklog_file": ["model=lstm", "data.path={file}"], "coil2000": ["model=mlp", "data.path={folder}"],
             "ml100k": ["data.path={folder}"], "ml1m": ["data.path={folder}"], "ml_latest_small": ["data.path={folder}"],
             "mnist": ["model=gan", "data.path={folder}"], "fashion_mnist": ["model=gan", "data.path={folder}"]},
    "optim": {"gan": ["model=gan"]},
}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (paths.conf_dir() / group).glob("*.yaml"))


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_of_every_group_composes(group: str, tmp_path) -> None:
    (tmp_path / "log.csv").write_text("user_id,item_id,timestamp,clicked\n")
    for option in options(group):
        extra = [o.format(file=tmp_path / "log.csv", folder=tmp_path) for o in NEEDS_MORE.get(group, {}).get(option, [])]
        cfg = registry.typed(registry.compose([*extra, f"{group}={option}"]))
        assert cfg.experiment_name


def test_default_config_is_typed() -> None:
    cfg = registry.typed(registry.compose())
    assert isinstance(cfg.model, MFConfig) and isinstance(cfg.optim, OptimConfig)
    assert cfg.tracking.uri == f"sqlite:///{paths.project_root()}/experiments/mlflow.db"
    assert cfg.experiment_name == "mf"


def test_overrides_apply_and_convert() -> None:
    cfg = registry.typed(registry.compose(["optim.lr=0.01", "model.dim=8", "optim=sgd"]))
    assert cfg.optim.lr == 0.01 and cfg.optim.name == "sgd" and cfg.model.dim == 8


@pytest.mark.parametrize(
    "override, error",
    [("model.not_a_key=1", ConfigCompositionException), ("model.dim=abc", ConfigCompositionException),
     ("trainer.epochs=1.5", ConfigCompositionException), ("model=nonexistent", ConfigCompositionException)],
)
def test_bad_key_or_type_is_rejected(override: str, error: type) -> None:
    with pytest.raises(error):
        registry.compose([override])


@pytest.mark.parametrize(
    "override, message",
    [("+model.foo=1", "model.foo: no such key"), ("model.dim=0", "model.dim=0: expected an integer >= 1"),
     ("optim.lr=-1", "optim.lr=-1.0: expected a number > 0"), ("trainer.seeds=[1,1]", "trainer.seeds=[1,1]: expected distinct seeds")],
)
def test_added_keys_and_values_out_of_range_are_rejected_when_typed(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        registry.typed(registry.compose([override]))


def test_open_groups_take_new_keys_without_plus() -> None:
    cfg = registry.typed(registry.compose(["tags.ticket=MKT-12", "params.alpha=0.5"]))
    assert cfg.tags == {"ticket": "MKT-12"} and cfg.params == {"alpha": 0.5}


def test_injected_dict_is_revalidated() -> None:
    config = to_container(registry.compose())
    config["model"]["dim"] = "many"
    with pytest.raises(ConfigError, match="model.dim"):
        registry.typed(config)
    config = to_container(registry.compose())
    config["model"]["extra"] = 1
    with pytest.raises(ConfigError, match="model.extra: no such key"):
        registry.typed(config)
    config = to_container(registry.compose())
    del config["model"]["dim"]
    with pytest.raises(ConfigError, match="model.dim has no value"):
        registry.typed(config)


def test_flatten() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": None}) == {"a.b": 1, "a.c.d": [1, 2], "e": None}
