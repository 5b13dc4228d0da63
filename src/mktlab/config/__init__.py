"""Config composition and validation.

`register_configs()` puts the schemas in Hydra's ConfigStore (the runner and `compose`
call it); `compose()` builds a config as the runner would, for notebooks opened by hand
and for tests; `to_dataclasses()` turns a config (DictConfig or plain dict, e.g. the one
Papermill injects) into validated schema instances.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from mktlab import paths
from mktlab.config.schema import (
    DATA_SCHEMAS,
    MODEL_SCHEMAS,
    Config,
    OptimConfig,
    TrackingConfig,
    TrainerConfig,
)

__all__ = ["compose", "register_configs", "to_dataclasses", "to_container", "to_plain", "flatten", "Config"]

OmegaConf.register_new_resolver("mktlab_root", lambda: str(paths.project_root()), replace=True)


def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for name, schema in MODEL_SCHEMAS.items():
        cs.store(group="model", name=f"{name}_schema", node=schema)
    for loader, schema in DATA_SCHEMAS.items():
        cs.store(group="data", name=f"{loader}_schema", node=schema)
    cs.store(group="optim", name="optim_schema", node=OptimConfig)
    cs.store(group="trainer", name="trainer_schema", node=TrainerConfig)
    cs.store(group="tracking", name="tracking_schema", node=TrackingConfig)


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose `conf/config.yaml` with Hydra overrides, as the `mktlab` command would."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(paths.conf_dir()), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


def to_container(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """A resolved plain-dict copy (what the runner injects into notebooks)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
    return dict(cfg)


def to_dataclasses(cfg: DictConfig | Mapping[str, Any]) -> Config:
    """Validate a config against the schemas and return typed dataclass instances.

    The model and data schemas are chosen by `model.name` and `data.loader`.
    """
    plain = to_container(cfg)
    for key in ("model", "data"):
        if not isinstance(plain.get(key), Mapping):
            raise ValueError(f"config has no '{key}' group")
    model_name, loader = plain["model"].get("name"), plain["data"].get("loader")
    if model_name not in MODEL_SCHEMAS:
        raise ValueError(f"unknown model.name {model_name!r}; expected one of {sorted(MODEL_SCHEMAS)}")
    if loader not in DATA_SCHEMAS:
        raise ValueError(f"unknown data.loader {loader!r}; expected one of {sorted(DATA_SCHEMAS)}")
    schema = OmegaConf.structured(Config)
    schema.model = OmegaConf.structured(MODEL_SCHEMAS[model_name])
    schema.data = OmegaConf.structured(DATA_SCHEMAS[loader])
    merged = OmegaConf.merge(schema, plain)
    return OmegaConf.to_object(merged)  # type: ignore[return-value]


def to_plain(cfg: Config) -> dict[str, Any]:
    """A typed config back to a plain dict (e.g. to open a child run with a changed seed)."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat
