"""Reading delimited data files with errors that name the file and the line."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from mktlab.data.errors import DataFileError


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataFileError(path, f"not found; expected {what}")
    return path


def read_numeric_table(
    path: Path,
    columns: list[str],
    *,
    sep: str,
    header: bool = False,
    encoding: str = "utf-8",
    integer: bool = False,
) -> pd.DataFrame:
    """Read a delimited file whose columns must all be numbers.

    Args:
        path: the file.
        columns: the expected column names, in order (checked against the header if any).
        sep: the field separator; multi-character separators (`::`) are supported.
        header: whether the first line is a header.
        encoding: the file's text encoding.
        integer: whether every value must be an integer.

    Raises:
        DataFileError: the file is missing, has the wrong number of columns, or holds a
            value that is not a number; the message names the file and line.
    """
    require_file(path, f"a file with columns {', '.join(columns)}")
    raw = path.read_bytes()
    if len(sep) > 1:
        raw = raw.replace(sep.encode(), b"\t")
        sep = "\t"
    first_line = 2 if header else 1
    try:
        frame = pd.read_csv(
            io.BytesIO(raw), sep=sep, header=0 if header else None, dtype=str, encoding=encoding,
            keep_default_na=False, skip_blank_lines=True,
        )
    except pd.errors.ParserError as error:
        raise DataFileError(path, f"expected {len(columns)} columns ({', '.join(columns)}): {error}") from error
    except pd.errors.EmptyDataError as error:
        raise DataFileError(path, "the file is empty") from error
    if frame.shape[1] != len(columns):
        raise DataFileError(path, f"expected {len(columns)} columns ({', '.join(columns)}), found {frame.shape[1]}")
    if header and [str(c).strip() for c in frame.columns] != columns:
        raise DataFileError(path, f"expected the header {','.join(columns)}, found {','.join(map(str, frame.columns))}", line=1)
    frame.columns = columns
    out = {}
    for name in columns:
        text = frame[name].str.strip()
        values = pd.to_numeric(text, errors="coerce")
        bad = values.isna().to_numpy().copy()  # writable: pandas may hand out a read-only view
        if integer and not bad.all():
            bad |= values.notna().to_numpy() & (values.fillna(0) % 1 != 0).to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            shown = text.iloc[row] if text.iloc[row] else "(empty)"
            kind = "an integer" if integer else "a number"
            raise DataFileError(path, f"column {name!r} holds {shown!r}, expected {kind}", line=first_line + row)
        out[name] = values.astype(np.int64) if integer else values
    return pd.DataFrame(out)
