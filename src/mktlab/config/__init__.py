"""Config composition, typing and validation.

The shared groups' schemas live in `mktlab.config.schema`; each model brings its own
`model` (and optimizer) schema and each data loader its `data` schema. `Schemas` gathers
them; `mktlab.models.registry.schemas()` builds it from the installed plug-ins.

- `register_configs(schemas)` puts the schemas into Hydra's ConfigStore (idempotent);
- `compose(overrides, schemas)` builds a config as the `mktlab` command would (notebooks
  opened by hand, tests);
- `to_dataclasses(cfg, schemas)` types a config (DictConfig or the plain dict Papermill
  injects) as frozen dataclasses and checks every value's range (`ConfigError`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException

from mktlab.config import paths
from mktlab.config.checks import ConfigError, validate
from mktlab.config.schema import OPEN_KEYS, Config, OptimConfig, TrackingConfig, TrainerConfig

__all__ = [
    "Schemas", "compose", "register_configs", "to_dataclasses", "to_container", "to_plain", "flatten", "Config",
    "ConfigError",
]

@dataclass(frozen=True)
class Schemas:
    """The schema of each model's `model` node and optimizer, and of each loader's `data` node.

    Attributes:
        models: model name -> its `model` schema.
        optims: model name -> its `optim` schema (None: the model has no `optim` node).
        data: `data.loader` -> its `data` schema.
    """

    models: Mapping[str, type] = field(default_factory=dict)
    optims: Mapping[str, type | None] = field(default_factory=dict)
    data: Mapping[str, type] = field(default_factory=dict)


def _node(schema: type) -> DictConfig:
    """A schema as a config node Hydra can merge YAML into (frozen dataclasses make read-only nodes)."""
    node = OmegaConf.structured(schema)
    _writable(node)
    for key in OPEN_KEYS:
        if key in node:
            OmegaConf.set_struct(node[key], False)  # `tags.ticket=...` adds a key, as the config comment says
    return node


def _writable(node: DictConfig) -> None:
    OmegaConf.set_readonly(node, None)
    for key in node.keys():
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            _writable(child)


def register_configs(schemas: Schemas) -> None:
    """Store every schema in Hydra's ConfigStore (a config file names its schema first in its defaults),
    and register the resolvers the YAML files use."""
    OmegaConf.register_new_resolver("mktlab_root", lambda: str(paths.project_root()), replace=True)
    OmegaConf.register_new_resolver(
        "mktlab_experiment", lambda model, notebook: paths.notebook_stem(notebook) if notebook else model, replace=True
    )
    store = ConfigStore.instance()
    store.store(name="config_schema", node=_node(Config))
    for name, schema in schemas.models.items():
        store.store(group="model", name=f"{name}_schema", node=_node(schema))
    for name, schema in schemas.optims.items():
        if schema is not None and schema is not OptimConfig:
            store.store(group="optim", name=f"{name}_optim_schema", node=_node(schema))
    for loader, schema in schemas.data.items():
        store.store(group="data", name=f"{loader}_schema", node=_node(schema))
    store.store(group="optim", name="optim_schema", node=_node(OptimConfig))
    store.store(group="trainer", name="trainer_schema", node=_node(TrainerConfig))
    store.store(group="tracking", name="tracking_schema", node=_node(TrackingConfig))


def compose(overrides: Sequence[str], schemas: Schemas) -> DictConfig:
    """Compose `conf/config.yaml` with Hydra overrides, as the `mktlab` command would."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs(schemas)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(paths.conf_dir()), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


def to_container(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """A resolved plain-dict copy (what the runner injects into notebooks)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
    return dict(cfg)


def to_dataclasses(cfg: DictConfig | Mapping[str, Any], schemas: Schemas) -> Config:
    """Type a config as the schemas' frozen dataclasses and check every value.

    The `model`, `optim` and `data` schemas are chosen by `model.name` and `data.loader`.

    Raises:
        ConfigError: a key is unknown or missing, a value has the wrong type or lies outside
            its range; the message names the key.
    """
    plain = to_container(cfg)
    for key in ("model", "data"):
        if not isinstance(plain.get(key), Mapping):
            raise ConfigError(key, plain.get(key), f"a config group (`{key}=<option>`)")
    model_name, loader = plain["model"].get("name"), plain["data"].get("loader")
    if model_name not in schemas.models:
        raise ConfigError("model.name", model_name, f"one of the installed models: {', '.join(sorted(schemas.models))}")
    if loader not in schemas.data:
        raise ConfigError("data.loader", loader, f"one of {', '.join(sorted(schemas.data))}")
    optim_schema = schemas.optims.get(model_name, OptimConfig)
    if optim_schema is None:
        if plain.get("optim") is not None:
            raise ConfigError("optim", "<a config>", f"null: model {model_name} configures its optimizers itself")
        plain["optim"] = None
    try:
        # the merge copies the schema: the one built for these schemas serves every config typed with them
        typed = OmegaConf.to_object(OmegaConf.merge(_config_schema(schemas.models[model_name], schemas.data[loader], optim_schema), plain))
    except ConfigKeyError as error:
        key = error.full_key or "config"
        raise ConfigError(key, None, "", message=f"{key}: no such key in {_schema_name(error)}") from None
    except MissingMandatoryValue as error:
        key = error.full_key or "config"
        raise ConfigError(key, None, "", message=f"{key} has no value: set it in its YAML file or on the command line ({key}=...)") from None
    except OmegaConfBaseException as error:
        raise ConfigError(error.full_key or "config", getattr(error, "value", "?"), _reason(error)) from None
    return validate(typed)  # type: ignore[return-value]


@functools.lru_cache(maxsize=64)
def _config_schema(model: type, data: type, optim: type | None) -> DictConfig:
    """The whole config's schema with these `model`, `data` and `optim` schemas (None: no `optim` node), closed
    to unknown keys except under `OPEN_KEYS`. Not to be changed: `OmegaConf.merge` copies it."""
    schema = _node(Config)
    schema.model = _node(model)
    schema.data = _node(data)
    if optim is not None:
        schema.optim = _node(optim)
    OmegaConf.set_struct(schema, True)
    for key in OPEN_KEYS:
        OmegaConf.set_struct(schema[key], False)
    return schema


def _schema_name(error: OmegaConfBaseException) -> str:
    parent = getattr(error, "object_type", None)
    return f"the {parent.__name__} schema" if isinstance(parent, type) else "the schema"


def _reason(error: OmegaConfBaseException) -> str:
    message = str(error).splitlines()[0]
    return message[0].lower() + message[1:] if message else type(error).__name__


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
