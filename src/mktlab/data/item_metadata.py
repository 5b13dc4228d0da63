"""Item metadata columns of a click log: what a movie is (genres, release year), and how it matches a user's past.

Two groups of columns, both label-free for the target item itself (no click count enters them):

- target columns (`ItemMetadata.target`): the target's genres as a multi-hot vector, its release year
  (standardized over the catalogue) and a flag for an unknown year;
- profile columns (`ItemMetadata.profile`): the user's taste read from a history (the items before the
  impression, with their click flags) crossed with the target's metadata. Per genre g, `seen_g` is the share
  of the history's items with genre g and `lift_g` the user's smoothed click rate on genre g minus their
  click rate on everything (`PROFILE_PRIOR` items at the user's own rate behind each genre's rate); the
  columns are `target_g * seen_g` and `target_g * lift_g` for every genre, their means over the target's
  genres, and the target's year minus the mean year of the clicked history items (standardized years; 0
  when either is unknown). Within one user (one history), these vary with the target only through how well
  it matches what the user watched and clicked, which is what a per-user ranking needs. The columns are
  standardized as on the training impressions (`fit_profile`): raw shares and lifts are small numbers.

Histories arrive as item indices (`mktlab.data.clicklog`); `index_table` maps every index (padding and the
out-of-vocabulary id: no genres, unknown year) to its metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

NO_GENRES = ("", "(no genres listed)")
PROFILE_PRIOR = 5.0  # history items at the user's own click rate behind each genre's click rate
CHUNK = 4096  # history rows per vectorized block when building profile columns


@dataclass(frozen=True)
class ItemMetadata:
    """Genres and years of the catalogue's items (saved with a served model)."""

    genres: tuple[str, ...]  # the genre vocabulary, in column order
    item_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # sorted original ids
    multi_hot: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # (items, genres)
    years: np.ndarray = field(default_factory=lambda: np.zeros(0))  # release year, NaN when unknown
    year_center: float = 0.0
    year_scale: float = 1.0
    profile_center: np.ndarray | None = None  # standardization of the profile columns (None: raw)
    profile_scale: np.ndarray | None = None

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> ItemMetadata:
        """From a metadata frame (index: original item id; `genres` "A|B", `year`)."""
        frame = frame[~frame.index.duplicated()].sort_index()
        split = [[g for g in str(text).split("|") if g not in NO_GENRES] for text in frame["genres"].fillna("")]
        genres = tuple(sorted({g for row in split for g in row}))
        column = {g: k for k, g in enumerate(genres)}
        multi_hot = np.zeros((len(frame), len(genres)), np.float32)
        for row, names in enumerate(split):
            multi_hot[row, [column[g] for g in names]] = 1.0
        years = frame["year"].to_numpy(np.float64)
        known = years[np.isfinite(years)]
        center, scale = (float(known.mean()), float(max(known.std(), 1.0))) if len(known) else (0.0, 1.0)
        return cls(genres=genres, item_ids=frame.index.to_numpy(np.int64), multi_hot=multi_hot, years=years,
                   year_center=center, year_scale=scale)

    @property
    def num_genres(self) -> int:
        return len(self.genres)

    @property
    def num_target(self) -> int:
        """Width of the target columns."""
        return self.num_genres + 2

    @property
    def num_profile(self) -> int:
        """Width of the profile columns."""
        return 2 * self.num_genres + 3

    def _rows(self, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(multi-hot (n, genres), standardized year (n,), NaN when unknown) of original item ids (unknown ids: none)."""
        keys = np.asarray(item_ids, np.int64).ravel()
        where = np.searchsorted(self.item_ids, keys)
        found = where < len(self.item_ids)
        found[found] = self.item_ids[where[found]] == keys[found]
        where = np.where(found, where, 0)
        hot = np.where(found[:, None], self.multi_hot[where] if len(self.item_ids) else 0.0, 0.0).astype(np.float32)
        years = np.where(found, self.years[where] if len(self.item_ids) else np.nan, np.nan)
        return hot, (years - self.year_center) / self.year_scale

    def target(self, item_ids: np.ndarray) -> np.ndarray:
        """(n, genres + 2) float32: multi-hot genres, standardized year (0 when unknown), unknown-year flag."""
        hot, year = self._rows(item_ids)
        unknown = ~np.isfinite(year)
        return np.column_stack([hot, np.where(unknown, 0.0, year), unknown]).astype(np.float32)

    def index_table(self, vocabulary: np.ndarray, num_embeddings: int) -> tuple[np.ndarray, np.ndarray]:
        """(multi-hot (num_embeddings, genres), standardized year (num_embeddings,), NaN when unknown) by item index:
        row 0 (padding) and the out-of-vocabulary id have none."""
        hot = np.zeros((num_embeddings, self.num_genres), np.float32)
        years = np.full(num_embeddings, np.nan)
        known_hot, known_years = self._rows(vocabulary)
        hot[1:len(vocabulary) + 1], years[1:len(vocabulary) + 1] = known_hot, known_years
        return hot, years

    def profile(self, table: tuple[np.ndarray, np.ndarray], history: np.ndarray, clicks: np.ndarray, lengths: np.ndarray,
                item_ids: np.ndarray) -> np.ndarray:
        """(n, 2 * genres + 3) float32 profile columns of impressions (see the module docstring).

        Args:
            table: `index_table` of the data's vocabulary.
            history: (n, L) item indices, padded after `lengths`; clicks: (n, L) their click flags.
            item_ids: (n,) original ids of the target items.
        """
        hot_table, year_table = table
        n = len(item_ids)
        target_hot, target_year = self._rows(item_ids)
        out = np.zeros((n, self.num_profile), np.float32)
        g = self.num_genres
        for start in range(0, n, CHUNK):
            rows = slice(start, min(start + CHUNK, n))
            h = np.asarray(history[rows])
            mask = (np.arange(h.shape[1])[None, :] < np.asarray(lengths[rows])[:, None]).astype(np.float32)
            clicked = mask * (np.asarray(clicks[rows]) > 0.5)
            length = np.maximum(mask.sum(axis=1), 1.0)[:, None]
            hot = hot_table[h]  # (b, L, genres)
            seen = np.einsum("bl,blg->bg", mask, hot)
            rate = clicked.sum(axis=1, keepdims=True) / length
            lift = (np.einsum("bl,blg->bg", clicked, hot) + PROFILE_PRIOR * rate) / (seen + PROFILE_PRIOR) - rate
            liked, disliked = seen / length, lift
            t = target_hot[rows]
            count = np.maximum(t.sum(axis=1), 1.0)
            years = year_table[h]
            known = clicked * np.isfinite(years)
            mean_year = np.einsum("bl,bl->b", known, np.nan_to_num(years)) / np.maximum(known.sum(axis=1), 1.0)
            gap = np.where(np.isfinite(target_year[rows]) & (known.sum(axis=1) > 0), np.nan_to_num(target_year[rows]) - mean_year, 0.0)
            out[rows, :g] = t * liked
            out[rows, g:2 * g] = t * disliked
            out[rows, 2 * g] = (t * liked).sum(axis=1) / count
            out[rows, 2 * g + 1] = (t * disliked).sum(axis=1) / count
            out[rows, 2 * g + 2] = gap
        if self.profile_center is not None:
            out = ((out - self.profile_center) / self.profile_scale).astype(np.float32)
        return out

    def fit_profile(self, raw: np.ndarray) -> ItemMetadata:
        """A copy that standardizes the profile columns as `raw` (the training impressions' raw columns) are."""
        return replace(self, profile_center=raw.mean(axis=0), profile_scale=np.maximum(raw.std(axis=0), 1e-6))

    def to_json(self) -> dict:
        return {"genres": list(self.genres), "item_ids": self.item_ids.tolist(),
                "genre_rows": [np.flatnonzero(row).tolist() for row in self.multi_hot],
                "years": [None if not np.isfinite(y) else float(y) for y in self.years],
                "year_center": self.year_center, "year_scale": self.year_scale,
                "profile_center": None if self.profile_center is None else self.profile_center.tolist(),
                "profile_scale": None if self.profile_scale is None else self.profile_scale.tolist()}

    @classmethod
    def from_json(cls, spec: dict) -> ItemMetadata:
        genres = tuple(spec["genres"])
        multi_hot = np.zeros((len(spec["item_ids"]), len(genres)), np.float32)
        for row, columns in enumerate(spec["genre_rows"]):
            multi_hot[row, columns] = 1.0
        return cls(genres=genres, item_ids=np.asarray(spec["item_ids"], np.int64), multi_hot=multi_hot,
                   years=np.asarray([np.nan if y is None else y for y in spec["years"]], np.float64),
                   year_center=float(spec["year_center"]), year_scale=float(spec["year_scale"]),
                   profile_center=None if spec.get("profile_center") is None else np.asarray(spec["profile_center"], np.float64),
                   profile_scale=None if spec.get("profile_scale") is None else np.asarray(spec["profile_scale"], np.float64))
