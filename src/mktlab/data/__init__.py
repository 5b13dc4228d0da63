"""Data layer: loaders and splits. `load(cfg)` returns the data set a config names."""

from __future__ import annotations

from typing import Any

from mktlab.data.errors import ChecksumError, DataError, DataFileError

__all__ = ["load", "DataError", "DataFileError", "ChecksumError"]


def load(cfg: Any) -> Any:
    """The data set of a full config (`cfg.data`, seeded by `cfg.seed`), split and encoded."""
    loader = cfg.data.loader
    if loader == "ratings":
        from mktlab.data.ratings import load_ratings

        return load_ratings(cfg.data, seed=cfg.seed, cache_dir=cfg.paths.cache)
    raise DataError(f"data.loader={loader!r} has no loader")
