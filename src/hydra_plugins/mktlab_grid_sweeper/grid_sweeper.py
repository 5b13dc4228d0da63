"""Every combination of the swept values (Hydra's basic sweeper), its record written with credentials masked.

Hydra's basic sweeper saves the sweep's whole config as `multirun.yaml` in the sweep
folder, credentials in clear; this one writes it masked. (Every job's config is validated
before the sweep starts by mktlab's sweep callback.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from mktlab.config.secrets import mask_secrets, scrub_text, secrets_in_overrides


class GridSweeper(BasicSweeper):
    """Hydra's basic sweeper with a masked `multirun.yaml`."""

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
            self.validate_batch_is_legal(batch)
            results = self.launcher.launch(batch, initial_job_idx=initial_job_idx)
            for result in results:
                _ = result.return_value  # a job that raised stops the sweep, as in Hydra's basic sweeper
            initial_job_idx += len(batch)
            returns.append(results)
        return returns
