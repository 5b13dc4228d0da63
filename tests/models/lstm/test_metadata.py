"""Item metadata (genres, year) and the user's genre profile as feature columns; the within-user pairwise term."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest

from helpers import composed
from mktlab.data.clicklog import make_click_data
from mktlab.data.item_metadata import ItemMetadata
from mktlab.data.movielens import item_metadata_frame, year_in_title
from mktlab.models.lstm.training import (build_task, feature_names, model_inputs, with_partners, within_user_partners,
                                         item_features, item_metadata)
from mktlab.train.loop import fit_loop

TINY = ("model=lstm", "trainer=default", "model.embed_dim=8", "model.hidden=16", "model.dense=16", "model.dropout=0.0",
        "model.item_features=false", "model.affinity_dim=0", "model.long_attention=false", "model.pooling=last",
        "model.item_metadata=false", "model.metadata_profile=false", "model.pair_weight=0.0",
        "data.max_len=1", "data.long_len=30", "data.use_labels=true", "data.val_per_user=5", "data.test_per_user=5",
        "data.gauc_history=frozen", "data.min_item_count=1", "optim.lr=0.02", "optim.weight_decay=0.0", "trainer.epochs=6",
        "trainer.batch_size=128", "trainer.patience=null", "trainer.progress=false", "trainer.num_seeds=1", "model.monitor=val_gauc")
GENRES = ("Action", "Comedy", "Drama", "Horror")


def genre_log(n_users: int = 150, per_user: int = 40, items: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(click log, item metadata): each user likes one genre (clicks its movies with probability 0.85, others 0.2);
    there are so many movies that each is seen about twice, so only the genres carry the taste from one movie to another."""
    rng = np.random.default_rng(seed)
    genre = rng.integers(0, len(GENRES), items + 1)
    taste = rng.integers(0, len(GENRES), n_users)
    users = np.repeat(np.arange(n_users), per_user)
    item = rng.integers(1, items + 1, len(users))
    clicked = rng.random(len(users)) < np.where(genre[item] == taste[users], 0.85, 0.2)
    log = pd.DataFrame({"user_id": users, "item_id": item, "timestamp": np.tile(np.arange(per_user), n_users),
                        "clicked": clicked.astype(np.float32)})
    metadata = item_metadata_frame(np.arange(1, items + 1), [GENRES[g] for g in genre[1:]], 1950 + rng.integers(0, 60, items))
    return log, metadata


def fitted(cfg, data, seed: int = 0):
    return fit_loop(build_task(cfg, data), cfg.trainer, model_key=jax.random.key(seed), train_key=jax.random.key(seed + 1))


def test_movielens_metadata_reads_genres_and_years() -> None:
    frame = item_metadata_frame([3, 1, 3], ["Comedy|Drama", "(no genres listed)", "x"], [1995, None, 2000])
    assert list(frame.index) == [3, 1] and frame.loc[3, "genres"] == "Comedy|Drama" and np.isnan(frame.loc[1, "year"])
    assert list(year_in_title(pd.Series(["Toy Story (1995)", "No year", "Heat (1995) "]))[:2].fillna(0)) == [1995, 0]
    spec = ItemMetadata.from_frame(frame)
    assert spec.genres == ("Comedy", "Drama")
    target = spec.target(np.array([3, 1, 99]))  # 99: unknown item, no genres, unknown year
    np.testing.assert_array_equal(target[:, :2], [[1, 1], [0, 0], [0, 0]])
    np.testing.assert_array_equal(target[:, -1], [0, 1, 1])
    assert ItemMetadata.from_json(spec.to_json()).to_json() == spec.to_json()


def test_profile_columns_cross_the_users_clicked_genres_with_the_target() -> None:
    spec = ItemMetadata.from_frame(item_metadata_frame([10, 11, 12], ["Action", "Comedy", "Action|Comedy"], [1990, 2000, 2010]))
    vocabulary = np.array([10, 11, 12])
    table = spec.index_table(vocabulary, 5)
    history = np.array([[1, 1, 2, 0], [1, 1, 2, 0]], np.int32)  # two Action movies, one Comedy, padding
    clicks = np.array([[1, 1, 0, 1], [1, 1, 0, 1]], np.float32)  # the padded flag must not count
    profile = spec.profile(table, history, clicks, np.array([3, 3]), np.array([10, 11]))
    g = spec.num_genres
    seen, lift = profile[:, :g], profile[:, g:2 * g]
    np.testing.assert_allclose(seen, [[2 / 3, 0], [0, 1 / 3]], rtol=1e-5)  # only the target's own genre is non-zero
    assert lift[0, 0] > 0 > lift[1, 1]  # Action was clicked more than the user's average, Comedy less
    assert profile.shape == (2, spec.num_profile)


def test_genre_profile_ranks_a_users_unseen_movies_by_taste_where_item_embeddings_cannot() -> None:
    """Each movie is seen about twice, so the item embeddings and the affinity term learn little; the user's
    clicked-genre profile crossed with the target's genres ranks within a user (validation GAUC)."""
    log, metadata = genre_log()
    scores = {}
    for profile in (False, True):
        cfg = composed(*TINY, f"model.metadata_profile={str(profile).lower()}", "model.item_metadata=true")
        data = make_click_data(log, cfg.data, item_metadata=metadata)
        scores[profile] = fitted(cfg, data).best_score
    assert scores[True] > 0.75 and scores[True] > scores[False] + 0.1


def test_metadata_columns_only_where_the_source_has_metadata() -> None:
    log, metadata = genre_log(n_users=10, items=50)
    cfg = composed(*TINY, "model.item_metadata=true", "model.metadata_profile=true", "model.item_features=true")
    data = make_click_data(log, cfg.data, item_metadata=metadata)
    inputs = model_inputs(cfg, data, data.val)
    assert inputs["features"].shape[1] == len(feature_names(cfg, data)) == 2 + (len(GENRES) + 2) + (2 * len(GENRES) + 3)
    without = make_click_data(log, cfg.data)  # a source without metadata (a click-log file): no metadata columns, a warning
    with pytest.warns(UserWarning, match="no item genres"):
        assert model_inputs(cfg, without, without.val)["features"].shape[1] == len(feature_names(cfg, without)) == 2


def test_partners_are_later_impressions_of_the_same_user_with_the_other_label() -> None:
    log, metadata = genre_log(n_users=30, items=200)
    pairs = ("model.pair_weight=0.5", "model.pair_window=5", "model.item_metadata=true", "model.metadata_profile=true",
             "model.item_features=true")
    cfg = composed(*TINY, *pairs)
    data = make_click_data(log, cfg.data, item_metadata=metadata)
    train = data.train
    partners = within_user_partners(train, window=5, seed=0)
    has = partners >= 0
    assert has.mean() > 0.5
    assert np.all(train.users[partners[has]] == train.users[has]) and np.all(train.clicks[partners[has]] != train.clicks[has])
    assert np.all(train.timestamps[partners[has]] > train.timestamps[has])
    arrays = with_partners(cfg, data, model_inputs(cfg, data, train), item_features(cfg, data), item_metadata(cfg, data))
    np.testing.assert_array_equal(arrays["partner_items"][has], train.items[partners[has]])
    assert arrays["partner_features"].shape == arrays["features"].shape
    # the partner's target columns are its own; its profile columns are read from the impression's history
    row = int(np.flatnonzero(has)[0])
    again = model_inputs(cfg, data, train)["features"][partners[row]]
    np.testing.assert_allclose(arrays["partner_features"][row, :2 + len(GENRES) + 2], again[:2 + len(GENRES) + 2], rtol=1e-5)
    result = fitted(composed(*TINY, *pairs, "trainer.epochs=1"), data)  # the task trains with the pairwise term
    assert np.isfinite(result.history[0]["train_loss"])
