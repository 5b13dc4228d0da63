"""Adds each installed model's own config folder (`ModelSpec.config_dir`) to Hydra's search path."""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

from mktlab.models import registry


class ModelConfigSearchPath(SearchPathPlugin):
    """`conf/model/<name>.yaml` (and any other group file) of a model package, found like the project's own."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for spec in registry.specs().values():
            if spec.config_dir is not None:
                search_path.append(provider=f"mktlab-model-{spec.name}", path=f"file://{spec.config_dir}")
