"""The installed models, found through the entry-point group `mktlab.models`.

The built-in models register exactly as a researcher's package does, in its
`pyproject.toml`:

    [project.entry-points."mktlab.models"]
    churn = "churn:spec"

`pip install -e path/to/churn` is then all it takes: `mktlab model=churn`, sweeps, rerun,
review and the contract tests find it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import cache
from importlib.metadata import entry_points
from pkgutil import resolve_name
from typing import Any

from omegaconf import DictConfig

from mktlab.config import Config, Schemas, compose as compose_with, register_configs, to_dataclasses
from mktlab.data.schemas import BUILTIN_SOURCES, DataSource
from mktlab.models.contract import ModelSpec

GROUP = "mktlab.models"


class UnknownModel(LookupError):
    pass


#: plug-ins whose entry point could not be imported, by name, with the reason (the others still work)
broken: dict[str, str] = {}


@cache
def specs() -> dict[str, ModelSpec]:
    """Every installed model's spec, by name. A plug-in that fails to import is left out with a
    warning (and named again if a run asks for it): one broken package does not stop the others."""
    found: dict[str, ModelSpec] = {}
    for entry in entry_points(group=GROUP):
        try:
            spec = entry.load()
        except Exception as error:  # noqa: BLE001 - any import failure of a third-party package
            broken[entry.name] = f"{entry.value} cannot be imported ({type(error).__name__}: {error})"
            warnings.warn(f"model plug-in {entry.name!r} left out: {broken[entry.name]}", stacklevel=2)
            continue
        if not isinstance(spec, ModelSpec):
            raise TypeError(f"entry point {entry.name} = {entry.value} of group {GROUP} is a {type(spec).__name__}, not a ModelSpec")
        if spec.name != entry.name:
            raise ValueError(f"entry point {entry.name} = {entry.value} names model {spec.name!r}; the two names must agree")
        if spec.name in found:
            raise ValueError(f"two installed packages register model {spec.name!r}")
        found[spec.name] = spec
    return dict(sorted(found.items()))


def names() -> list[str]:
    return list(specs())


def get(name: str) -> ModelSpec:
    """The spec of model `name`."""
    try:
        return specs()[name]
    except KeyError:
        if name in broken:
            raise UnknownModel(f"model {name!r} is installed but {broken[name]}") from None
        raise UnknownModel(f"model {name!r} is not installed; installed models: {', '.join(specs()) or 'none'}") from None


def data_sources() -> dict[str, DataSource]:
    """Every data loader: the built-in ones and those the installed models bring."""
    sources = {source.loader: source for source in BUILTIN_SOURCES}
    for spec in specs().values():
        sources.update({source.loader: source for source in spec.data_sources})
    return sources


@cache
def schemas() -> Schemas:
    models = specs()
    return Schemas(
        models={name: spec.schema for name, spec in models.items()},
        optims={name: spec.optim_schema for name, spec in models.items()},
        data={loader: source.schema for loader, source in data_sources().items()},
    )


def register() -> Schemas:
    """Put every installed model's and loader's schema into Hydra's ConfigStore."""
    found = schemas()
    register_configs(found)
    return found


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose the project's config with Hydra overrides, as `mktlab` would."""
    return compose_with(overrides, schemas())


def typed(cfg: Any) -> Config:
    """A config (DictConfig or plain dict) as validated frozen dataclasses (`ConfigError` otherwise)."""
    return to_dataclasses(cfg, schemas())


def load_data(cfg: Config) -> Any:
    """The data set a typed config names (`cfg.data`, seeded by `cfg.seed`), split and encoded."""
    source = data_sources()[cfg.data.loader]
    return resolve_name(source.load)(cfg.data, seed=cfg.seed, cache_dir=cfg.paths.cache)
