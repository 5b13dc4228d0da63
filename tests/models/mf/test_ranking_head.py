"""The MF ranking head (implicit ALS in JAX), frequency-aware L2, the baselines, and what the saved model serves."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from flax import nnx

from helpers import composed, replace_in
from mktlab import session
from mktlab.data.ratings import RatingsData, RatingsSplit
from mktlab.models.mf import ials
from mktlab.models.mf.baselines import fit_biases, item_popularity
from mktlab.models.mf.evaluation import evaluate
from mktlab.models.mf.module import MatrixFactorization
from mktlab.models.mf.training import PENALTIES, mf_loss, penalty_weights
from mktlab.train.checkpoint import load_module, save_module
from mktlab.train.loop import SeedResults


def split(users, items, ratings, timestamps=None) -> RatingsSplit:
    users, items = np.asarray(users, np.int32), np.asarray(items, np.int32)
    stamps = np.arange(len(users), dtype=np.int64) if timestamps is None else np.asarray(timestamps, np.int64)
    return RatingsSplit(users, items, np.asarray(ratings, np.float32), stamps)


def preference_log(seed: int = 0, *, groups: int = 3, users_per_group: int = 20, block: int = 15) -> RatingsData:
    """Users in `groups` groups; group g loves item block g (rates 5) and dislikes a few others (rates 1-2).

    Group 0 rates many more items, so block 0 is by far the most popular: most-popular recommends
    it to everybody, right only for a third of the users. Each user's test items are two unrated
    items of their own block (relevant, rated 5).
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for g in range(groups):
        own = np.arange(g * block, (g + 1) * block)
        others = np.setdiff1d(np.arange(groups * block), own)
        for u in range(g * users_per_group, (g + 1) * users_per_group):
            liked = rng.permutation(own)
            taken = 9 if g == 0 else 5
            train += [(u, int(i), 5.0) for i in liked[:taken]]
            train += [(u, int(i), float(rng.integers(1, 3))) for i in rng.choice(others, 3, replace=False)]
            test += [(u, int(i), 5.0) for i in liked[taken : taken + 2]]
    n_users, n_items = groups * users_per_group, groups * block
    to_split = lambda rows: split(*zip(*rows))  # noqa: E731
    return RatingsData(to_split(train), split([], [], []), to_split(test), np.arange(n_users), np.arange(n_items),
                       pd.Series({i: f"item {i}" for i in range(n_items)}), (1.0, 5.0), "synthetic")


def tiny_cfg(*overrides: str):
    """The project's MF config (conf/model/mf.yaml) on a small problem."""
    return composed("model=mf", "trainer.progress=false", "model.dim=4", "model.ranking.dim=8", "trainer.epochs=10",
                    "trainer.patience=null", "trainer.batch_size=256", "model.ranking.alpha0=0.1", "model.ranking.l2=0.1",
                    "model.eval.top_k=5", "model.eval.recommend_users=3", *overrides)


def dense_train(data: RatingsData) -> np.ndarray:
    mask = np.zeros((data.num_users, data.num_items), bool)
    mask[data.train.users, data.train.items] = True
    return mask


def test_ranking_head_recovers_the_preferred_items_and_beats_popularity() -> None:
    data = preference_log()
    cfg = tiny_cfg()
    result = session.fit(cfg, data)
    model = result.model
    scores = jnp.where(jnp.asarray(dense_train(data)), -jnp.inf, model.ranking_scores(jnp.arange(60)))
    lists = np.asarray(jax.lax.top_k(scores, 5)[1])
    groups = np.arange(60) // 20
    assert np.mean(lists // 15 == groups[:, None]) >= 0.98  # the top 5 come from the user's own block
    m = evaluate(cfg, result, data).metrics
    # two of a user's 6 (group 0) or 10 unrated own items are relevant: a list of 5 of them finds 5/6 or 1/2 on average
    assert m["test_recall_at_5"] > 0.5
    assert m["baseline_test_popularity_recall_at_5"] < 0.35  # block 0 for everybody: right only for group 0
    assert m["test_ndcg_at_5"] > 1.5 * m["baseline_test_popularity_ndcg_at_5"]
    assert m["reference_test_rating_head_ndcg_at_5"] < m["test_ndcg_at_5"]
    assert all(np.isfinite(m[key]) for key in ("test_hit_rate_at_5", "test_coverage_at_5", "test_mean_popularity_at_5",
                                               "baseline_test_biases_rmse", "baseline_test_biases_mae"))


def test_same_seed_same_metrics_with_the_ranking_head() -> None:
    data = preference_log()
    cfg = tiny_cfg("trainer.epochs=3")
    first, again = evaluate(cfg, session.fit(cfg, data), data).metrics, evaluate(cfg, session.fit(cfg, data), data).metrics
    other_cfg = dataclasses.replace(cfg, seed=1)
    other = evaluate(other_cfg, session.fit(other_cfg, data), data).metrics
    first.pop("fit_seconds"), again.pop("fit_seconds")
    assert first == again
    assert first["test_rmse"] != other["test_rmse"]


def test_seeds_trained_together_under_vmap_equal_separate_runs() -> None:
    """Under vmap the sweep's `lax.cond` becomes a select: each seed still gets exactly its own sweeps."""
    data = preference_log()
    cfg = tiny_cfg("trainer.epochs=4", "model.ranking.sweeps=2")
    together = session.fit(replace_in(cfg, "trainer", seeds=[0, 1], seed_batch=2), data)
    assert isinstance(together, SeedResults)
    for seed, result in zip(together.seeds, together.results):
        alone = session.fit(dataclasses.replace(cfg, seed=seed), data)
        for a, b in zip(result.history, alone.history):
            assert a.keys() == b.keys()
            for key in a:
                assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key
        np.testing.assert_allclose(result.model.ranking_scores(jnp.arange(5)), alone.model.ranking_scores(jnp.arange(5)),
                                   rtol=1e-4, atol=1e-5)


def test_ratings_objective_has_no_ranking_head_and_ranks_by_rating() -> None:
    data = preference_log()
    cfg = tiny_cfg("model.objective=ratings", "trainer.epochs=2")
    result = session.fit(cfg, data)
    model = result.model
    assert model.rank_dim == 0 and not hasattr(model, "rank_user_factors")
    users = jnp.arange(4)
    np.testing.assert_allclose(model.ranking_scores(users), model.score_all_items(users))
    metrics = evaluate(cfg, result, data).metrics
    assert "test_ndcg_at_5" in metrics and not any(key.startswith("reference_test_rating_head_") for key in metrics)


def test_rating_head_starts_as_without_a_ranking_head_and_the_saved_model_serves_both(tmp_path) -> None:
    plain = MatrixFactorization(6, 9, 3, global_mean=3.0, rngs=nnx.Rngs(params=jax.random.key(0)))
    ranked = MatrixFactorization(6, 9, 3, global_mean=3.0, rank_dim=4, rngs=nnx.Rngs(params=jax.random.key(0)))
    np.testing.assert_array_equal(plain.user_factors.embedding.value, ranked.user_factors.embedding.value)
    np.testing.assert_array_equal(plain.item_factors.embedding.value, ranked.item_factors.embedding.value)
    users, items = jnp.array([0, 5, 2]), jnp.array([8, 1, 4])
    ranked.rank_user_factors.value = ranked.rank_user_factors.value + 1.0
    kwargs = {"num_users": 6, "num_items": 9, "dim": 3, "global_mean": 3.0, "rank_dim": 4}
    loaded = load_module(save_module(ranked, tmp_path, kwargs=kwargs))
    np.testing.assert_allclose(loaded(users, items), ranked(users, items), rtol=1e-6)
    np.testing.assert_allclose(loaded.ranking_scores(users), ranked.ranking_scores(users), rtol=1e-6)
    expected = ranked.rank_user_factors.value[np.asarray(users)] @ ranked.rank_item_factors.value.T
    np.testing.assert_allclose(loaded.ranking_scores(users), expected, rtol=1e-6)
    # the ranking factors are not parameters: the optimizer never sees them
    assert not any("rank" in str(path) for path, _ in jax.tree_util.tree_flatten_with_path(nnx.state(ranked, nnx.Param))[0])


@pytest.mark.parametrize("exponent", [0.0, 0.5, 1.0])
def test_penalty_weights_make_a_rows_penalty_grow_as_its_count_to_the_exponent(exponent: float) -> None:
    users = np.array([0] * 8 + [1] * 2 + [2] * 1 + [3] * 1, np.int32)  # user 3 is out of vocabulary (3 known)
    items = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 0, 1], np.int32)
    weights = penalty_weights(split(users, items, np.full(12, 3.0)), 3, 4, l2=0.1, l2_bias=0.02, exponent=exponent)
    if exponent == 1.0:
        np.testing.assert_allclose(weights["user_l2"], 0.1)
        np.testing.assert_allclose(weights["item_bias_l2"], 0.02)
    # factors and biases weigh alike up to their strengths
    np.testing.assert_allclose(weights["user_bias_l2"], weights["user_l2"] * 0.2, rtol=1e-6)
    np.testing.assert_allclose(weights["item_bias_l2"], weights["item_l2"] * 0.2, rtol=1e-6)
    # a known user's ratings' weights sum to (its ratings) ** exponent, times one constant for every user
    totals = np.array([weights["user_l2"][users == u].sum() for u in range(3)])
    np.testing.assert_allclose(totals / np.array([8, 2, 1]) ** exponent, totals[0] / 8**exponent, rtol=1e-5)
    item_totals = np.array([weights["item_l2"][items == i].sum() for i in range(4)])
    counts = np.bincount(items, minlength=4)
    np.testing.assert_allclose(item_totals / counts**exponent, item_totals[0] / counts[0] ** exponent, rtol=1e-5)


def test_each_ratings_penalty_strengths_weigh_the_squares_of_the_rows_it_touches() -> None:
    model = MatrixFactorization(5, 6, 3, global_mean=3.0, rngs=nnx.Rngs(0))
    model.user_bias.embedding.value = model.user_bias.embedding.value + 0.3
    batch = {"users": jnp.array([0, 1, 4, 4]), "items": jnp.array([2, 5, 0, 1]), "ratings": jnp.array([4.0, 2.0, 5.0, 3.0])}
    p, q, b_u, b_i = (np.asarray(x) for x in model.components(batch["users"], batch["items"]))
    mse = float(np.mean((3.0 + b_u + b_i + np.sum(p * q, -1) - np.asarray(batch["ratings"])) ** 2))
    unpenalized, _ = mf_loss(model, batch, key=jax.random.key(0))
    assert float(unpenalized) == pytest.approx(mse, rel=1e-5)
    plain = {name: jnp.full(4, 0.1) for name in PENALTIES}
    loss, _ = mf_loss(model, {**batch, **plain}, key=jax.random.key(0))
    assert float(loss) == pytest.approx(mse + 0.1 * np.mean(np.sum(p**2, -1) + np.sum(q**2, -1) + b_u**2 + b_i**2), rel=1e-5)
    user_reg, item_reg = np.array([1.0, 2.0, 0.5, 0.5]), np.array([3.0, 1.0, 1.0, 2.0])
    weights = {"user_l2": 0.1 * user_reg, "user_bias_l2": 0.02 * user_reg, "item_l2": 0.1 * item_reg, "item_bias_l2": 0.02 * item_reg}
    weighted, _ = mf_loss(model, {**batch, **jax.tree.map(jnp.asarray, weights)}, key=jax.random.key(0))
    expected = mse + np.mean(user_reg * (0.1 * np.sum(p**2, -1) + 0.02 * b_u**2) + item_reg * (0.1 * np.sum(q**2, -1) + 0.02 * b_i**2))
    assert float(weighted) == pytest.approx(expected, rel=1e-5)


def random_problem(seed=0, rows=12, cols=20, dim=5):
    rng = np.random.default_rng(seed)
    confidence = (rng.random((rows, cols)) < 0.3).astype(np.float32) * rng.choice([1.0, 2.0], (rows, cols)).astype(np.float32)
    return rng.normal(size=(rows, dim)).astype(np.float32) * 0.1, rng.normal(size=(cols, dim)).astype(np.float32) * 0.1, confidence


@pytest.mark.parametrize("exponent", [0.0, 1.0])
def test_conjugate_gradients_reach_the_exact_least_squares_solution(exponent: float) -> None:
    x, y, c = random_problem()
    alpha0, l2 = 0.2, 0.05
    data = ials.dense_observations(c, alpha0=alpha0, l2=l2, exponent=exponent)
    solved = np.asarray(ials.solve_rows(jnp.asarray(x), jnp.asarray(y), data.by_row, data.reg_rows, alpha0=alpha0, cg_steps=20))
    y64, c64 = y.astype(np.float64), c.astype(np.float64)
    for u in range(len(x)):
        reg = l2 * ((c64[u] > 0).sum() + alpha0 * y.shape[0]) ** exponent
        a = alpha0 * y64.T @ y64 + (y64 * c64[u][:, None]).T @ y64 + reg * np.eye(y.shape[1])
        np.testing.assert_allclose(solved[u], np.linalg.solve(a, y64.T @ c64[u]), rtol=1e-3, atol=1e-5)


def test_each_sweep_lowers_the_objective() -> None:
    x, y, c = random_problem(1)
    alpha0, l2 = 0.1, 0.02
    data = ials.dense_observations(c, alpha0=alpha0, l2=l2, exponent=1.0)
    x, y = jnp.asarray(x), jnp.asarray(y)
    values = [float(ials.objective(x, y, data, alpha0=alpha0))]
    for _ in range(6):
        x, y = ials.sweep(x, y, data, alpha0=alpha0, cg_steps=2)
        values.append(float(ials.objective(x, y, data, alpha0=alpha0)))
    assert all(b <= a + 1e-6 for a, b in zip(values, values[1:])) and values[-1] < 0.8 * values[0]
    # against the objective written out over every pair
    s = np.asarray(x, np.float64) @ np.asarray(y, np.float64).T
    reg_u = l2 * ((c > 0).sum(1) + alpha0 * c.shape[1])
    reg_i = l2 * ((c > 0).sum(0) + alpha0 * c.shape[0])
    direct = (np.sum(c * (s - 1) ** 2) + alpha0 * np.sum(s**2) + np.sum(reg_u * np.sum(np.asarray(x, np.float64) ** 2, 1))
              + np.sum(reg_i * np.sum(np.asarray(y, np.float64) ** 2, 1))) / np.sum(c > 0)
    assert values[-1] == pytest.approx(direct, rel=1e-4)


def test_confidences_weigh_five_stars_above_four_and_drop_the_rest() -> None:
    matrix = ials.confidence_matrix(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 2, 0]), np.array([5.0, 4.0, 3.5, 4.5, 5.0]),
                                    2, 3, min_rating=4.0, slope=1.0)  # user 2 is out of vocabulary
    np.testing.assert_allclose(matrix, [[2.0, 1.0, 0.0], [0.0, 0.0, 1.5]])


def test_biases_baseline_is_the_exact_regularized_least_squares_fit() -> None:
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 7, 60), rng.integers(0, 9, 60)
    ratings = rng.integers(1, 6, 60).astype(np.float32)
    fitted = fit_biases(split(users, items, ratings), 7, 9, l2=2.0, sweeps=300)
    design = np.zeros((60, 16))
    design[np.arange(60), users] = 1.0
    design[np.arange(60), 7 + items] = 1.0
    target = ratings - ratings.mean()
    exact = np.linalg.solve(design.T @ design + 2.0 * np.eye(16), design.T @ target)
    np.testing.assert_allclose(np.r_[fitted.user_bias, fitted.item_bias], exact, atol=1e-6)
    assert fitted.predict(np.array([7]), np.array([9]), scale=(1.0, 5.0))[0] == pytest.approx(ratings.mean())


def test_popularity_counts_known_training_items() -> None:
    counts = item_popularity(split([0, 1, 1, 2, 0], [2, 2, 0, 5, 1], [1, 2, 3, 4, 5]), 5)
    np.testing.assert_array_equal(counts, [1, 1, 2, 0, 0])  # item 5 is out of vocabulary


def test_positive_pairs_keep_a_pairs_last_rating_and_match_the_dense_problem() -> None:
    users, items = np.array([0, 1, 0, 2, 1, 0]), np.array([1, 0, 1, 2, 2, 3])
    ratings = np.array([4.0, 4.0, 5.0, 4.5, 2.0, 4.0])  # (0, 1) rated 4 then 5: the last rating counts
    rows, cols, weights = ials.positive_pairs(users, items, ratings, 3, 3, min_rating=4.0, slope=1.0)  # item 3 unknown
    assert (rows.tolist(), cols.tolist(), weights.tolist()) == ([0, 1, 2], [1, 0, 2], [2.0, 1.0, 1.5])
    x, y, c = random_problem(2)
    sparse = ials.observations(*np.nonzero(c), c[np.nonzero(c)], c.shape, alpha0=0.1, l2=0.05, exponent=1.0)
    dense = ials.dense_observations(c, alpha0=0.1, l2=0.05, exponent=1.0)
    for mine, theirs in zip(jax.tree.leaves(sparse), jax.tree.leaves(dense)):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))
    swept = ials.sweep(jnp.asarray(x), jnp.asarray(y), sparse, alpha0=0.1, cg_steps=3)
    # the items' solve sees the pairs sorted by item: the same as solving the transposed problem's rows
    flipped = ials.dense_observations(c.T, alpha0=0.1, l2=0.05, exponent=1.0)
    np.testing.assert_allclose(np.asarray(swept[1]), np.asarray(ials.solve_rows(jnp.asarray(y), swept[0], flipped.by_row, flipped.reg_rows,
                                                                                 alpha0=0.1, cg_steps=3)), rtol=1e-5, atol=1e-6)
