"""Click logs with history: sequences, padding, no future leakage, time splits, OOV ids, file loading."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from helpers import data_config
from mktlab.data import DataError, DataFileError
from mktlab.data.clicklog import (
    PAD,
    build_histories,
    keep_last,
    load_clicklog,
    make_click_data,
    pad_history,
    ratings_as_clicks,
    read_clicklog_file,
    sample_users,
)

# A hand-written log: user 1 has five impressions, user 2 three (out of time order in the file, with a tie).
LOG = pd.DataFrame(
    {
        "user_id":   [1,  2,  1,  1,  2,  1,  1,  2],
        "item_id":   [10, 20, 11, 12, 21, 13, 14, 10],
        "timestamp": [100, 50, 200, 300, 60, 400, 500, 60],
        "clicked":   [1., 0., 0., 1., 1., 1., 0., 0.],
    }
)


def cfg(**kw):
    """`conf/data/movielens_clicks.yaml` for the hand-written log, with `kw` on top."""
    return data_config("movielens_clicks", **{"max_len": 3, "val_per_user": 1, "test_per_user": 1, "min_item_count": 1, **kw})


def test_histories_hold_the_previous_items_oldest_first_padded_after_the_last() -> None:
    h = build_histories(LOG.user_id.to_numpy(), LOG.item_id.to_numpy(), LOG.clicked.to_numpy(), LOG.timestamp.to_numpy(), max_len=3)
    # user 1 in time order: 10, 11, 12, 13, 14; rows 0, 2, 3, 5, 6
    np.testing.assert_array_equal(h.items[0], [PAD, PAD, PAD])
    np.testing.assert_array_equal(h.items[2], [10, PAD, PAD])
    np.testing.assert_array_equal(h.items[3], [10, 11, PAD])
    np.testing.assert_array_equal(h.items[5], [10, 11, 12])
    np.testing.assert_array_equal(h.items[6], [11, 12, 13])  # only the last max_len items
    np.testing.assert_array_equal(h.clicks[6], [0, 1, 1])
    np.testing.assert_array_equal(h.lengths[[0, 2, 3, 5, 6]], [0, 1, 2, 3, 3])
    # user 2: 20 (t=50), then 21 and 10 both at t=60 (the tie keeps the file's order)
    np.testing.assert_array_equal(h.items[[1, 4, 7]], [[PAD] * 3, [20, PAD, PAD], [20, 21, PAD]])
    np.testing.assert_array_equal(h.clicks[7], [0, 1, 0])
    assert np.all(h.clicks[h.items == PAD] == 0)


def test_no_history_holds_an_item_from_its_future() -> None:
    rng = np.random.default_rng(0)
    n = 500
    users, times = rng.integers(0, 20, n), rng.integers(0, 60, n)  # many ties in time
    h = build_histories(users, np.arange(1, n + 1), np.zeros(n, np.float32), times, max_len=8)  # item = record number + 1
    for row in range(n):
        earlier = h.items[row, : h.lengths[row]] - 1  # the history's record numbers
        assert np.all(users[earlier] == users[row])
        assert np.all(times[earlier] <= times[row])
        assert row not in earlier
        same_user_before = np.flatnonzero((users == users[row]) & ((times < times[row]) | ((times == times[row]) & (np.arange(n) < row))))
        assert h.lengths[row] == min(len(same_user_before), 8)
        assert set(earlier) == set(same_user_before[np.argsort(times[same_user_before], kind="stable")][-8:])


def test_per_user_split_holds_out_each_users_last_impressions_with_histories_across_splits() -> None:
    data = make_click_data(LOG, cfg())
    assert len(data.train) == 4 and len(data.val) == 2 and len(data.test) == 2
    for user in (1, 2):
        train_t = data.train.timestamps[data.train.users == user]
        val_t = data.val.timestamps[data.val.users == user]
        test_t = data.test.timestamps[data.test.users == user]
        assert train_t.max() <= val_t.min() <= test_t.min()
    # user 1's test impression is item 14 at t=500: its history runs through validation (13) and training (11, 12)
    row = int(np.flatnonzero(data.test.users == 1)[0])
    assert data.test.item_ids[row] == 14
    history = data.test.history[row, : data.test.lengths[row]]
    np.testing.assert_array_equal(data.vocabulary[history[:2] - 1], [11, 12])
    assert history[2] == data.oov_id  # 13 appears in validation only: out of vocabulary
    assert data.test.clicks[row] == 0 and data.test.history_clicks[row].tolist() == [0, 1, 1]


def test_global_split_is_a_time_cut_off() -> None:
    data = make_click_data(LOG, cfg(split="global", val_frac=0.25, test_frac=0.25))
    assert data.train.timestamps.max() < data.val.timestamps.min()
    assert data.val.timestamps.max() < data.test.timestamps.min()
    assert len(data.train) + len(data.val) + len(data.test) == len(LOG)
    assert data.summary()["test_from_timestamp"] == data.test.timestamps.min()


def test_items_unseen_or_rare_in_training_map_to_the_oov_id() -> None:
    data = make_click_data(LOG, cfg())
    np.testing.assert_array_equal(data.vocabulary, [10, 11, 12, 20])  # training targets only
    assert data.oov_id == 5 and data.num_embeddings == 6
    np.testing.assert_array_equal(data.encode_items(np.array([10, 20, 13, 999])), [1, 4, 5, 5])
    assert data.summary()["oov_items_test"] == 1  # user 1's item 14
    rare = make_click_data(LOG, cfg(min_item_count=2))  # no item has two training impressions: all share the OOV id
    assert rare.num_items == 0 and rare.oov_id == 1
    assert np.all(rare.train.items == 1) and np.all(rare.train.history[rare.train.history != PAD] == 1)
    repeated = pd.concat([LOG, LOG.assign(user_id=3, timestamp=LOG.timestamp + 1000)], ignore_index=True)
    common = make_click_data(repeated, cfg(min_item_count=2))
    np.testing.assert_array_equal(common.vocabulary, [10, 11, 12, 20])  # seen twice in training (users 1 and 3)
    assert np.all(common.train.items[np.isin(common.train.item_ids, [13, 14])] == common.oov_id)


def test_padding_helpers() -> None:
    items, clicks, length = pad_history(np.array([3, 4, 5, 6]), np.array([1, 0, 1, 1]), max_len=3)
    assert items.tolist() == [4, 5, 6] and clicks.tolist() == [0, 1, 1] and length == 3
    items, clicks, length = pad_history(np.array([7]), None, max_len=3)
    assert items.tolist() == [7, PAD, PAD] and clicks.tolist() == [0, 0, 0] and length == 1
    arrays = {"history": np.array([[1, 2, 3], [4, 0, 0]]), "history_clicks": np.array([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]]),
              "lengths": np.array([3, 1])}
    cut = keep_last(arrays, 2)
    assert cut["history"].tolist() == [[2, 3, 0], [4, 0, 0]] and cut["lengths"].tolist() == [2, 1]
    assert cut["history_clicks"].tolist() == [[0, 1, 0], [1, 0, 0]]
    assert keep_last(arrays, 0)["history"].tolist() == [[0, 0, 0], [0, 0, 0]]


def test_ratings_become_clicks_and_neutral_ratings_can_be_dropped() -> None:
    ratings = pd.DataFrame({"user_id": [1, 1, 1, 1], "item_id": [1, 2, 3, 4], "rating": [5.0, 3.5, 3.0, 1.0], "timestamp": [1, 2, 3, 4]})
    clicks = ratings_as_clicks(ratings, click_threshold=4.0, drop_neutral=False, neutral_min=3.0)
    assert clicks["clicked"].tolist() == [1, 0, 0, 0]
    kept = ratings_as_clicks(ratings, click_threshold=4.0, drop_neutral=True, neutral_min=3.0)
    assert kept["item_id"].tolist() == [1, 4]


def test_subsample_keeps_whole_users() -> None:
    users = np.repeat(np.arange(50), 10)
    rows = sample_users(users, 95, seed=3)
    kept = np.unique(users[rows])
    assert len(rows) == 10 * len(kept) and 90 <= len(rows) <= 110


def test_movielens_default_loads_with_known_sizes() -> None:
    data = load_clicklog(data_config("movielens_clicks"), seed=0, cache_dir="/tmp")
    s = data.summary()
    assert s["users_test"] == 671 and s["num_test"] == 671 * 10 and s["num_val"] == 671 * 5
    assert s["num_train"] + s["num_val"] + s["num_test"] == 100004
    assert data.train.history.shape[1] == 20 and 0.45 < s["ctr_train"] < 0.6


# --------------------------------------------------------------------------- files


def write_csv(tmp_path, text: str):
    path = tmp_path / "log.csv"
    path.write_text(text)
    return path


def test_csv_and_parquet_click_logs_load(tmp_path) -> None:
    path = write_csv(tmp_path, "user_id,item_id,timestamp,clicked,extra\n1,10,100,1,a\n1,11,200,false,b\n2,10,150,0,c\n")
    frame = read_clicklog_file(path)
    assert frame.columns.tolist() == ["user_id", "item_id", "timestamp", "clicked"]
    assert frame["clicked"].tolist() == [1, 0, 0] and frame["timestamp"].tolist() == [100, 200, 150]
    dates = write_csv(tmp_path, "user_id,item_id,timestamp,clicked\n1,10,2024-01-01T00:00:00,1\n1,11,2024-01-02,0\n")
    assert read_clicklog_file(dates)["timestamp"].diff().iloc[1] == 86400
    parquet = tmp_path / "log.parquet"
    LOG.to_parquet(parquet)
    pd.testing.assert_frame_equal(read_clicklog_file(parquet), LOG, check_dtype=False)
    data = load_clicklog(dataclasses.replace(cfg(), source="file", path=str(parquet)), seed=0, cache_dir=str(tmp_path))
    assert len(data.train) == 4 and data.titles.empty


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("user_id,item_id,clicked\n1,2,1\n", "missing column(s) timestamp"),
        ("user_id,item_id,timestamp,clicked\n1,2,100,1\n1,abc,200,0\n", "column 'item_id' holds 'abc', expected an integer id"),
        ("user_id,item_id,timestamp,clicked\n1,2,100,1\n1,3,200,maybe\n", "column 'clicked' holds 'maybe'"),
        ("user_id,item_id,timestamp,clicked\n1,2,100,1\n1,3,,0\n", "column 'timestamp' holds (empty)"),
        ("user_id,item_id,timestamp,clicked\n1,2,2024-01-01,1\n1,3,not a date,0\n", "column 'timestamp' holds 'not a date'"),
    ],
)
def test_bad_click_files_name_the_file_column_and_line(tmp_path, text: str, message: str) -> None:
    path = write_csv(tmp_path, text)
    with pytest.raises(DataFileError) as error:
        read_clicklog_file(path)
    assert message in str(error.value) and str(path) in str(error.value)
    if "missing" not in message:
        assert "line 3" in str(error.value)


def test_parquet_errors_name_the_row(tmp_path) -> None:
    bad = LOG.astype({"item_id": object})
    bad.loc[2, "item_id"] = "x"
    path = tmp_path / "bad.parquet"
    bad.astype({"item_id": str}).to_parquet(path)
    with pytest.raises(DataFileError, match="row 3: column 'item_id' holds 'x'"):
        read_clicklog_file(path)


def test_config_errors_are_clear(tmp_path) -> None:
    with pytest.raises(DataError, match="data.path"):
        load_clicklog(dataclasses.replace(cfg(), source="file"), seed=0, cache_dir=str(tmp_path))
    with pytest.raises(DataFileError, match="not found"):
        load_clicklog(dataclasses.replace(cfg(), source="file", path=str(tmp_path / "none.csv")), seed=0, cache_dir=str(tmp_path))
    with pytest.raises(DataError, match="data.split='random'"):
        make_click_data(LOG, cfg(split="random"))
    with pytest.raises(DataError, match="data.source='nope'"):
        load_clicklog(dataclasses.replace(cfg(), source="nope"), seed=0, cache_dir=str(tmp_path))


def test_parquet_dates_become_seconds(tmp_path) -> None:
    path = tmp_path / "dates.parquet"
    LOG.assign(timestamp=pd.to_datetime(LOG.timestamp, unit="s", utc=True)).to_parquet(path)
    np.testing.assert_array_equal(read_clicklog_file(path)["timestamp"], LOG.timestamp)


def test_frozen_histories_stop_before_the_held_out_window() -> None:
    frozen = make_click_data(LOG, cfg(test_per_user=2, held_out_history="frozen"))
    rolling = frozen.alternate_test["rolling"]
    # user 1: 10, 11 train; 12 validation; 13, 14 test. User 2 has too few impressions to hold any out.
    assert frozen.test.item_ids.tolist() == [13, 14] and rolling.item_ids.tolist() == [13, 14]
    ten, eleven, oov = frozen.encode_items(np.array([10, 11, 12]))
    assert frozen.test.history.tolist() == [[ten, eleven, oov]] * 2  # both see what came before the window
    assert rolling.history.tolist() == [[ten, eleven, oov], [eleven, oov, oov]]  # 14 also sees 13
    assert frozen.test.history_clicks.tolist() == [[1, 0, 1]] * 2 and rolling.history_clicks[1].tolist() == [0, 1, 1]
    assert frozen.val.history.tolist() == [[ten, eleven, PAD]]
    np.testing.assert_array_equal(frozen.train.history, make_click_data(LOG, cfg(test_per_user=2)).train.history)


def test_the_clicklog_file_option_composes_and_loads(cfg_for, tmp_path) -> None:
    path = tmp_path / "clicks.csv"
    LOG.to_csv(path, index=False)
    config = cfg_for(["model=lstm", "data=clicklog_file", f"data.path={path}", "data.max_len=4"])
    from mktlab.models import registry

    data = registry.load_data(config)
    assert data.source == str(path) and data.split == "global" and data.max_len == 4
    assert len(data.train) + len(data.val) + len(data.test) == len(LOG)
