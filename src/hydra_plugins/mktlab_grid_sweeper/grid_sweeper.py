"""Every combination of the swept values (Hydra's basic sweeper), its record written with credentials masked.

Hydra's basic sweeper saves the sweep's whole config as `multirun.yaml` in the sweep
folder, credentials in clear; this one writes it masked. Every job's config is composed and
validated before the sweep starts by mktlab's sweep callback; a launcher composing jobs in
this process (the basic launcher, Ray's) is handed those configs instead of composing each again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_loader import ConfigLoader
from hydra.types import HydraContext, TaskFunction
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from mktlab.config.secrets import mask_secrets, scrub_text, secrets_in_overrides


class ComposedAhead:
    """Hydra's config loader, except that a job the sweep callback composed already gets that config."""

    def __init__(self, loader: ConfigLoader) -> None:
        self._loader = loader

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        from mktlab.runner.callbacks import take_composed  # not at import: Hydra imports every plugin at its start

        composed = take_composed(sweep_overrides)
        return composed if composed is not None else self._loader.load_sweep_config(master_config, sweep_overrides)

    def __getattr__(self, name: str) -> Any:  # everything else is the loader's own
        if name == "_loader" or name.startswith("__"):  # not set yet (unpickling in a launcher's worker)
            raise AttributeError(name)
        return getattr(self._loader, name)


class GridSweeper(BasicSweeper):
    """Hydra's basic sweeper with a masked `multirun.yaml`, its launcher handed the configs composed to validate the jobs."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        loader = ComposedAhead(hydra_context.config_loader)  # type: ignore[arg-type]
        super().setup(hydra_context=HydraContext(config_loader=loader, callbacks=hydra_context.callbacks),  # type: ignore[arg-type]
                      task_function=task_function, config=config)

    def validate_batch_is_legal(self, batch: Any) -> None:
        from mktlab.runner.callbacks import composed_ahead

        super().validate_batch_is_legal([job for job in batch if not composed_ahead(job)])

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        params = self._parse_config()
        params.extend(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        self.overrides = self.split_arguments(parser.parse_overrides(params), self.max_batch_size)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        record = yaml.safe_dump(mask_secrets(OmegaConf.to_container(self.config, resolve=False, enum_to_str=True)), sort_keys=False)
        (sweep_dir / "multirun.yaml").write_text(scrub_text(record, secrets_in_overrides(params)), encoding="utf-8")
        returns, initial_job_idx = [], 0
        while not self.is_done():
            batch = self.get_job_batch()
            self.validate_batch_is_legal(batch)  # the jobs the sweep callback composed already are not composed again
            results = self.launcher.launch(batch, initial_job_idx=initial_job_idx)
            for result in results:
                _ = result.return_value  # a job that raised stops the sweep, as in Hydra's basic sweeper
            initial_job_idx += len(batch)
            returns.append(results)
        return returns
