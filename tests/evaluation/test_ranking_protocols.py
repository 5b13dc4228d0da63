"""The ranking protocols' metrics against direct numpy computations on hand-made lists."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from mktlab.data.ratings import RatingsData, RatingsSplit
from mktlab.evaluation.ranking import (
    catalogue_coverage,
    full_ranking,
    hit_rate_at_k,
    masked_top_k,
    mean_popularity,
    ranking_report,
    sample_unrated,
    sampled_candidates,
    sampled_protocol,
    sampled_ranking_report,
    seen_items,
    top_k,
    topk_metrics_traced,
)


def test_full_ranking_metrics_by_hand() -> None:
    lists = {0: [4, 2, 9], 1: [1, 3, 5], 2: [7, 8, 6]}
    relevant = {0: {2, 6}, 1: {8}, 2: {7, 8, 6, 0}}
    report = ranking_report(lists, relevant, 3)
    d = 1 / np.log2([2, 3, 4])  # discounts of ranks 1..3
    assert report["precision_at_3"] == pytest.approx(np.mean([1 / 3, 0, 1]))
    assert report["recall_at_3"] == pytest.approx(np.mean([1 / 2, 0, 3 / 4]))
    assert report["ndcg_at_3"] == pytest.approx(np.mean([d[1] / (d[0] + d[1]), 0.0, 1.0]))
    assert report["hit_rate_at_3"] == pytest.approx(2 / 3)
    assert report["ranked_users"] == 3
    assert hit_rate_at_k([1, 2], {5}, 2) == 0.0 and hit_rate_at_k([1, 5], {5}, 2) == 1.0


def test_coverage_and_mean_popularity_by_hand() -> None:
    lists = [[0, 1], [1, 2], [1, 0]]
    popularity = np.array([10.0, 4.0, 1.0, 0.0, 0.0])
    assert catalogue_coverage(lists, 5) == pytest.approx(3 / 5)
    assert mean_popularity(lists, popularity) == pytest.approx((10 + 4 + 4 + 1 + 4 + 10) / 6)


def test_traced_metrics_equal_the_list_metrics() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(40, 30)).astype(np.float32)
    scores[:, :5] = 1.0  # ties: both break them toward the lower index
    exclude = rng.random((40, 30)) < 0.2
    relevant = (rng.random((40, 30)) < 0.15) & ~exclude
    relevant[3] = False  # a user without relevant items is left out of the means
    traced = topk_metrics_traced(jnp.asarray(scores), jnp.asarray(exclude), jnp.asarray(relevant), 6)
    _, top = masked_top_k(jnp.asarray(scores), jnp.asarray(exclude), k=6)
    top = np.asarray(top)
    for u in range(40):  # direct: a stable sort of the allowed items by falling score
        allowed = np.flatnonzero(~exclude[u])
        np.testing.assert_array_equal(top[u], allowed[np.argsort(-scores[u, allowed], kind="stable")][:6])
    expected = ranking_report({u: list(top[u]) for u in range(40)}, {u: set(np.flatnonzero(relevant[u])) for u in range(40)}, 6)
    for name in ("precision_at_6", "recall_at_6", "ndcg_at_6", "hit_rate_at_6"):
        assert float(traced[name]) == pytest.approx(expected[name], rel=1e-5), name


def test_top_k_in_padded_chunks_equals_a_direct_sort() -> None:
    rng = np.random.default_rng(1)
    table = rng.normal(size=(7, 12)).astype(np.float32)
    exclude = [rng.choice(12, size=rng.integers(0, 5), replace=False) for _ in range(7)]
    users = np.array([6, 0, 3, 2, 5], np.int32)
    items, scores = top_k(lambda rows: jnp.asarray(table)[rows], users, exclude, 4, num_items=12, chunk=2)  # 3 chunks, the last padded
    for row, user in enumerate(users):
        allowed = np.setdiff1d(np.arange(12), exclude[user])
        expected = allowed[np.argsort(-table[user, allowed], kind="stable")][:4]
        np.testing.assert_array_equal(items[row], expected)
        np.testing.assert_allclose(scores[row], table[user, expected])


def test_sampled_metrics_by_hand() -> None:
    positive = np.array([0.5, 2.0, -1.0])
    negatives = np.array([[0.9, 0.1, 0.5], [0.0, 1.0, -np.inf], [0.0, 1.0, 2.0]])
    report = sampled_ranking_report(positive, negatives, 2)
    # ranks (0-based, ties against the model): 2, 0, 3
    assert report["sampled_hr_at_2"] == pytest.approx(1 / 3)
    assert report["sampled_ndcg_at_2"] == pytest.approx(1 / 3)
    report = sampled_ranking_report(positive, negatives, 3)
    assert report["sampled_hr_at_3"] == pytest.approx(2 / 3)
    assert report["sampled_ndcg_at_3"] == pytest.approx((1 / np.log2(4) + 1) / 3)
    assert report["sampled_users"] == 3


def test_sampling_draws_only_unrated_items_and_is_seeded() -> None:
    rated = [np.array([0, 1, 2]), np.array([5, 6]), np.arange(19)]
    draw = lambda seed: sample_unrated(rated, np.array([0, 1, 2]), 20, 8, np.random.default_rng(seed))  # noqa: E731
    first = draw(7)
    for user in (0, 1):
        assert len(set(first[user])) == 8 and not set(first[user]) & set(rated[user])
        assert all(0 <= item < 20 for item in first[user])
    np.testing.assert_array_equal(first[2], [19, -1, -1, -1, -1, -1, -1, -1])  # only one unrated item left
    np.testing.assert_array_equal(first, draw(7))
    assert not np.array_equal(first, draw(8))


def small_data() -> RatingsData:
    def split(rows):
        users, items, ratings, stamps = (np.array(c) for c in zip(*rows))
        return RatingsSplit(users.astype(np.int32), items.astype(np.int32), ratings.astype(np.float32), stamps.astype(np.int64))

    train = split([(0, 0, 5, 1), (0, 1, 3, 2), (1, 1, 4, 1), (1, 2, 2, 3), (2, 0, 4, 1), (2, 1, 5, 2), (3, 3, 1, 1)])
    val = split([(0, 4, 4, 5), (1, 0, 5, 6)])
    # user 0's latest test item is 3 (time 9); item 8 is out of vocabulary (8 items known)
    test = split([(0, 2, 5, 7), (0, 3, 2, 9), (1, 3, 4, 4), (1, 8, 5, 9), (2, 5, 5, 8), (2, 6, 4, 8)])
    return RatingsData(train, val, test, np.arange(4), np.arange(8), pd.Series(dtype=str), (1.0, 5.0), "hand-made")


def popularity_scorer(popularity: np.ndarray):
    """Most-popular as a scorer, written out here (the models' own baselines live in their packages)."""
    row = jnp.asarray(popularity, jnp.float32)
    return lambda users: jnp.broadcast_to(row, (users.shape[0], row.shape[0]))


def test_seen_items_per_user_drop_unknown_ids() -> None:
    seen = seen_items(small_data().test, 4, 8)
    assert [sorted(s.tolist()) for s in seen] == [[2, 3], [3], [5, 6], []]  # user 1's item 8 is out of vocabulary


def test_sampled_candidates_hold_out_the_latest_test_item_and_only_unrated_negatives() -> None:
    data = small_data()
    users, positives, negatives = sampled_candidates(data, num_negatives=3, seed=0)
    np.testing.assert_array_equal(users, [0, 1, 2])
    np.testing.assert_array_equal(positives, [3, 3, 6])  # user 2: a tie in time goes to the later record
    rated = {0: {0, 1, 4, 2, 3}, 1: {1, 2, 0, 3}, 2: {0, 1, 5, 6}}
    for row, user in enumerate(users):
        drawn = set(negatives[row][negatives[row] >= 0])
        assert len(drawn) == 3 and not drawn & rated[user] and drawn <= set(range(8))
    np.testing.assert_array_equal(negatives, sampled_candidates(data, num_negatives=3, seed=0)[2])
    draws = {sampled_candidates(data, num_negatives=3, seed=seed)[2].tobytes() for seed in range(5)}
    assert len(draws) > 1  # the seed sets the draw


def test_protocols_of_most_popular_against_a_direct_computation() -> None:
    data = small_data()
    popularity = np.bincount(data.train.items, minlength=8).astype(float)  # [2, 3, 1, 1, 0, 0, 0, 0]
    metrics, lists = full_ranking(popularity_scorer(popularity), data, k=2, threshold=4.0, popularity=popularity)
    # most-popular order 1, 0, 2, 3, 4, ... minus each user's training items
    np.testing.assert_array_equal(lists, [[2, 3], [0, 3], [2, 3], [1, 0]])
    # relevant test items: user 0 {2}, user 1 {3} (item 8 unknown), user 2 {5, 6}
    d = 1 / np.log2([2, 3])
    assert metrics["ndcg_at_2"] == pytest.approx(np.mean([1.0, d[1] / d[0], 0.0]))
    assert metrics["precision_at_2"] == pytest.approx(np.mean([0.5, 0.5, 0.0]))
    assert metrics["recall_at_2"] == pytest.approx(np.mean([1.0, 1.0, 0.0]))
    assert metrics["hit_rate_at_2"] == pytest.approx(2 / 3)
    assert metrics["ranked_users"] == 3
    assert metrics["coverage_at_2"] == pytest.approx(4 / 8)
    assert metrics["mean_popularity_at_2"] == pytest.approx(np.mean(popularity[lists]))
    users, positives, negatives = sampled_candidates(data, num_negatives=3, seed=0)
    scores = np.where(negatives >= 0, popularity[np.maximum(negatives, 0)], -np.inf)
    rank = (scores >= popularity[positives][:, None]).sum(1)
    for k in (1, 3):
        sampled = sampled_protocol(popularity_scorer(popularity), users, positives, negatives, k, chunk=2)  # the last chunk padded
        assert sampled[f"sampled_hr_at_{k}"] == pytest.approx(np.mean(rank < k))
        assert sampled[f"sampled_ndcg_at_{k}"] == pytest.approx(np.mean(np.where(rank < k, 1 / np.log2(rank + 2.0), 0.0)))
