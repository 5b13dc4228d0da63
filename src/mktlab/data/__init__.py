"""Data layer: loaders shared by models (ratings, customer tables, click logs, images), splits,
downloads and errors. Each loader's config schema and place are in `mktlab.data.schemas`;
`mktlab.models.registry.load_data(cfg)` loads the data set a config names."""

from mktlab.data.errors import ChecksumError, DataError, DataFileError

__all__ = ["DataError", "DataFileError", "ChecksumError"]
