"""Data layer: loaders and splits. `load(cfg)` returns the data set a config names."""

from __future__ import annotations

import importlib
from typing import Any

from mktlab.data.errors import ChecksumError, DataError, DataFileError

__all__ = ["load", "LOADERS", "DataError", "DataFileError", "ChecksumError"]

# data.loader -> "module:function"; each function is `load(data_cfg, *, seed, cache_dir)`.
LOADERS = {
    "ratings": "mktlab.data.ratings:load_ratings",
    "tabular": "mktlab.data.tabular:load_tabular",
    "clicklog": "mktlab.data.clicklog:load_clicklog",
    "images": "mktlab.data.images:load_images",
}


def load(cfg: Any) -> Any:
    """The data set of a full config (`cfg.data`, seeded by `cfg.seed`), split and encoded."""
    target = LOADERS.get(cfg.data.loader)
    if target is None:
        raise DataError(f"data.loader={cfg.data.loader!r}: expected one of {', '.join(LOADERS)}")
    module_name, _, function = target.partition(":")
    loader = getattr(importlib.import_module(module_name), function)
    return loader(cfg.data, seed=cfg.seed, cache_dir=cfg.paths.cache)
