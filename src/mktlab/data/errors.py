"""Data errors: each names the file and what was expected of it."""

from __future__ import annotations

from pathlib import Path


class DataError(Exception):
    """A data source is missing, malformed or fails its checksum."""


class DataFileError(DataError):
    """A data file is missing or malformed."""

    def __init__(self, path: str | Path, problem: str, *, line: int | None = None) -> None:
        where = f"{path}" + (f", line {line}" if line is not None else "")
        super().__init__(f"data file {where}: {problem}")
        self.path = Path(path)
        self.line = line


class ChecksumError(DataError):
    """A downloaded file does not match its pinned checksum (nothing is cached)."""
