"""A sweep's job configs, composed as Hydra composes them, the config files read and merged once per set of choices.

Hydra composes each job of a sweep from scratch (`ConfigLoader.load_sweep_config`): it parses the
overrides, reads the config files, builds the defaults tree, merges every file, then sets the
overridden values. Jobs that choose the same config groups (`model=mf`, `hydra/launcher=joblib`)
and differ only in values (`seed=3`, `optim.lr=0.01`) share everything up to that last step, about
nine tenths of a compose (0.1 s on two cores). `JobConfigs` composes each set of group choices once,
through Hydra, and gives each job a copy with its own values set by Hydra's own override step and
its own record of them in the `hydra` node: the config Hydra would compose, key for key
(`tests/runner/test_job_configs.py` compares them).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import ConfigCompositionException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException


class JobConfigs:
    """The configs of the jobs of the sweep whose config is `master`, composed by `loader`."""

    def __init__(self, loader: ConfigLoader, master: DictConfig) -> None:
        self.loader, self.master = loader, master
        self.config_name = master.hydra.job.config_name
        self.hydra_overrides = [str(line) for line in master.hydra.overrides.hydra]
        self.parser = OverridesParser.create(config_loader=loader)
        self._bases: dict[tuple[str, ...], DictConfig] = {}  # composed with only the group choices, by those choices
        self._adopt_master()

    def _adopt_master(self) -> None:
        """Take the sweep's own config as the composition of its group choices when its jobs choose just those (no
        group swept): it is that composition with the shared values set, which each job sets again, unless a
        shared value adds or removes a key (that cannot be done twice). Not when it skipped a group left to choose
        (`???`): a job's own composition fails on that."""
        if "???" in OmegaConf.to_container(self.master.hydra.runtime.choices, resolve=False).values():
            return
        parsed = self.parser.parse_overrides([*self.hydra_overrides, *(str(line) for line in self.master.hydra.overrides.task)])
        swept = [o for o in parsed if o.is_sweep_override()]
        shared = [o for o in parsed if not o.is_sweep_override()]
        if not self._shares_composition(shared) or any(self._chooses_group(o) for o in swept):
            return
        choices, values = self._split(shared)
        if any(o.is_add() or o.is_delete() for o in values):
            return
        self._bases[tuple(o.input_line for o in choices)] = copy.deepcopy(self.master)

    def compose(self, job_overrides: Sequence[str]) -> DictConfig:
        """The config of the job of `job_overrides`: what `loader.load_sweep_config(master, job_overrides)` returns."""
        lines = [*self.hydra_overrides, *job_overrides]
        parsed = self.parser.parse_overrides(lines)
        if not self._shares_composition(parsed):
            return self.loader.load_sweep_config(self.master, list(job_overrides))
        choices, values = self._split(parsed)
        key = tuple(override.input_line for override in choices)
        base = self._bases.get(key)
        if base is None:
            base = self.loader.load_configuration(config_name=self.config_name, overrides=list(key), run_mode=RunMode.RUN)
            self._bases[key] = base
        config = copy.deepcopy(base)
        try:
            ConfigLoaderImpl._apply_overrides_to_config(values, config)  # Hydra's own step, in struct mode as there
        except OmegaConfBaseException as error:
            raise ConfigCompositionException().with_traceback(error.__traceback__) from error
        self._record(config, parsed)
        OmegaConf.copy_cache(from_config=self.master, to_config=config)  # as `load_sweep_config` does
        return config

    def _shares_composition(self, parsed: list[Override]) -> bool:
        """Whether the job's config can start from a composition of its group choices alone: Hydra's own loader,
        no sweep left in the overrides, no search path of the command line's own."""
        return isinstance(self.loader, ConfigLoaderImpl) and not any(
            override.is_sweep_override() or override.get_key_element() == "hydra.searchpath" for override in parsed)

    def _split(self, parsed: list[Override]) -> tuple[list[Override], list[Override]]:
        """`parsed`, in order, as the overrides that choose groups and those that set values (`_chooses_group`,
        asked once each: it looks the group up in the config sources)."""
        chooses = [self._chooses_group(override) for override in parsed]
        return ([o for o, group in zip(parsed, chooses) if group], [o for o, group in zip(parsed, chooses) if not group])

    def _chooses_group(self, override: Override) -> bool:
        """Whether `override` picks, adds or removes a config group's option (the defaults list's business), as
        Hydra's defaults list tells them from values: a group of that name exists and the value is no mapping."""
        return not isinstance(override.value(), dict) and self.loader.repository.group_exists(override.key_or_group)  # type: ignore[attr-defined]

    @staticmethod
    def _record(config: DictConfig, parsed: list[Override]) -> None:
        """The `hydra` node's record of the job's overrides, as Hydra writes it after setting the values."""
        app_overrides = [override for override in parsed if not override.is_hydra_override()]
        hydra = config.hydra
        hydra.overrides.hydra = [override.input_line for override in parsed if override.is_hydra_override()]
        hydra.overrides.task = [override.input_line for override in app_overrides]
        with open_dict(hydra):
            for key in hydra.job.env_copy:
                hydra.job.env_set[key] = os.environ[key]
        hydra.job.override_dirname = get_overrides_dirname(
            overrides=app_overrides,
            kv_sep=hydra.job.config.override_dirname.kv_sep,
            item_sep=hydra.job.config.override_dirname.item_sep,
            exclude_keys=hydra.job.config.override_dirname.exclude_keys,
        )


# The overrides (Hydra's, then the job's) of each job whose config the sweep callback typed before the sweep
# started (`validate_jobs`): its run need not type the same config again (about 30 ms of each job).
_typed: set[tuple[str, ...]] = set()


def note_typed(config: DictConfig) -> None:
    """Remember that the job composed as `config` passed mktlab's schemas."""
    _typed.add(_overrides_of(config.hydra))


def typed_already(hydra: DictConfig) -> bool:
    """Whether the job whose `hydra` node (`HydraConfig.get()`) this is passed mktlab's schemas before the sweep started."""
    return _overrides_of(hydra) in _typed


def forget_typed() -> None:
    _typed.clear()


def _overrides_of(hydra: DictConfig) -> tuple[str, ...]:
    return (*hydra.overrides.hydra, "--", *hydra.overrides.task)
