"""Ranking within a user: why rolling histories bias GAUC, GAUC on frozen histories (validation and test),
leak-free item features, target attention, the user-item affinity term over a longer history, the seeds' ensemble."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest
from flax import nnx
from sklearn.metrics import roc_auc_score

from helpers import VOCAB, click_batch, composed
from mktlab.data.click_features import ITEM_FOLDS, ItemFeatures, user_folds
from mktlab.data.clicklog import make_click_data
from mktlab.evaluation.clicks import gauc
from mktlab.models.lstm.evaluation import evaluate_seeds, verdict
from mktlab.models.lstm.module import ClickLSTM
from mktlab.models.lstm.training import build_task, model_inputs, predict
from mktlab.train.loop import SeedResults, fit_loop

# A small LSTM on one core, no early stopping, none of the default's extras (each test turns on its own).
TINY = ("model=lstm", "trainer=default", "model.embed_dim=8", "model.hidden=16", "model.dense=16", "model.dropout=0.0",
        "model.item_features=false", "model.item_metadata=false", "model.metadata_profile=false", "model.affinity_dim=0", "model.long_attention=false", "model.pooling=last",
        "data.max_len=4", "data.long_len=0", "data.use_labels=false", "data.val_per_user=5", "data.test_per_user=5",
        "data.min_item_count=1", "optim.lr=0.02", "optim.weight_decay=0.0", "trainer.epochs=6", "trainer.batch_size=128",
        "trainer.patience=null", "trainer.progress=false", "trainer.num_seeds=1")


def exchangeable_log(n_users: int = 300, per_user: int = 30, seed: int = 0) -> pd.DataFrame:
    """Each user clicks at a rate of their own, every impression independently: nothing in the order says anything."""
    rng = np.random.default_rng(seed)
    rate = rng.uniform(0.2, 0.8, n_users)
    users = np.repeat(np.arange(n_users), per_user)
    return pd.DataFrame({
        "user_id": users, "item_id": rng.integers(1, 50, len(users)), "timestamp": np.tile(np.arange(per_user), n_users),
        "clicked": (rng.random(len(users)) < rate[users]).astype(np.float32),
    })


def fitted(cfg, data, seed: int = 0):
    return fit_loop(build_task(cfg, data), cfg.trainer, model_key=jax.random.key(seed), train_key=jax.random.key(seed + 1))


def test_rolling_histories_bias_gauc_against_reading_the_windows_own_clicks() -> None:
    """With exchangeable clicks a score that reads the history's click rate can rank a user's impressions no better
    than chance; under rolling histories it ranks them WORSE than chance: of any two impressions of a window with
    opposite labels, the later one's history holds the earlier one's label, always the opposite of its own. Frozen
    histories (one history for all of a user's held-out impressions) take that away; across users the score informs."""
    cfg = composed(*TINY, "data.max_len=20", "data.test_per_user=10", "data.gauc_history=frozen")
    data = make_click_data(exchangeable_log(), cfg.data)
    rolling, frozen = data.test, data.ranking_split("test")
    assert frozen is data.alternate_test["frozen"] and data.ranking_split("val") is data.alternate_val["frozen"]

    def history_rate(split):
        return split.history_clicks.sum(1) / np.maximum(split.lengths, 1)

    assert gauc(rolling.clicks, history_rate(rolling), rolling.users)[0] < 0.4
    assert gauc(frozen.clicks, history_rate(frozen), frozen.users)[0] == pytest.approx(0.5)
    assert roc_auc_score(rolling.clicks, history_rate(rolling)) > 0.6 and roc_auc_score(frozen.clicks, history_rate(frozen)) > 0.6
    same = make_click_data(exchangeable_log(n_users=20), composed(*TINY, "data.gauc_history=rolling").data)
    assert same.ranking_split("test") is same.test and same.ranking_split("val") is same.val


def test_validation_gauc_is_computed_on_the_ranking_histories() -> None:
    cfg = composed(*TINY, "data.use_labels=true", "data.gauc_history=frozen", "trainer.epochs=1")
    data = make_click_data(exchangeable_log(n_users=30), cfg.data)
    result = fitted(cfg, data)
    row = result.history[0]
    frozen = data.alternate_val["frozen"]
    expected = gauc(frozen.clicks, predict(result.model, model_inputs(cfg, data, frozen)), frozen.users)[0]
    rolling = gauc(data.val.clicks, predict(result.model, model_inputs(cfg, data, data.val)), data.val.users)[0]
    assert row["val_gauc"] == pytest.approx(expected, abs=1e-6)
    assert row["val_rolling_gauc"] == pytest.approx(rolling, abs=1e-6)


def test_item_features_never_hold_the_impressions_own_click_nor_its_users() -> None:
    rng = np.random.default_rng(0)
    n = 400
    users, items, clicks = rng.integers(0, 40, n), rng.integers(0, 10, n), rng.integers(0, 2, n).astype(np.float64)
    spec = ItemFeatures.fit(users, items, clicks, strength=5.0)
    train = spec.training(users, items, clicks)
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-5)  # standardized on the training impressions
    held_out = spec(np.array([3, 99])) * spec.scale + spec.center  # back to raw columns
    member = items == 3
    c, k, prior = clicks[member].sum(), member.sum(), spec.prior
    assert held_out[0, 0] == pytest.approx(np.log((c + 5 * prior) / (k - c + 5 * (1 - prior))), rel=1e-4)
    np.testing.assert_allclose(held_out[1], [np.log(prior / (1 - prior)), 0.0], atol=1e-4)  # an unseen item: the prior, no impressions
    user = users[0]  # flipping every click of one user leaves that user's own training columns unchanged
    again = spec.training(users, items, np.where(users == user, 1 - clicks, clicks))
    np.testing.assert_array_equal(again[users == user], train[users == user])
    assert not np.array_equal(again[users != user], train[users != user])
    assert set(np.unique(user_folds(users))) == set(range(ITEM_FOLDS))
    assert ItemFeatures.from_json(spec.to_json()).to_json() == spec.to_json()


def similarity_log(n_users: int = 80, per_user: int = 40, items: int = 16, window: int = 8, seed: int = 0) -> pd.DataFrame:
    """A user clicks an item they met in their last `window` impressions, wherever it sits there: neither the item,
    the user, nor the last item alone says it."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        seen = rng.integers(1, items + 1, per_user)
        for t, item in enumerate(seen):
            rows.append((user, int(item), t, float(item in seen[max(0, t - window) : t])))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "clicked"])


def test_target_attention_beats_last_and_mean_pooling_where_clicks_follow_similarity_to_the_history() -> None:
    best = {}
    for pooling in ("last", "mean", "attention"):
        cfg = composed(*TINY, "data.max_len=8", "model.embed_dim=16", "model.hidden=8", f"model.pooling={pooling}", "model.attention_units=16")
        data = make_click_data(similarity_log(), cfg.data)
        best[pooling] = max(row["val_roc_auc"] for row in fitted(cfg, data).history)
    assert best["attention"] > 0.9  # the target finds itself in the history
    assert best["attention"] > max(best["last"], best["mean"]) + 0.15


def taste_log(n_users: int = 120, per_user: int = 40, items: int = 20, seed: int = 0) -> pd.DataFrame:
    """Each user likes one half of the items (clicks them with probability 0.85, the other half 0.15), items at random:
    the taste shows only in many (item, click) pairs together."""
    rng = np.random.default_rng(seed)
    taste = rng.integers(0, 2, n_users)
    users = np.repeat(np.arange(n_users), per_user)
    item = rng.integers(1, items + 1, len(users))
    liked = (item % 2) == taste[users]
    return pd.DataFrame({"user_id": users, "item_id": item, "timestamp": np.tile(np.arange(per_user), n_users),
                         "clicked": (rng.random(len(users)) < np.where(liked, 0.85, 0.15)).astype(np.float32)})


def test_affinity_over_a_longer_history_ranks_a_users_items_by_taste() -> None:
    """The LSTM sees one item; the affinity term reads the last 30 (item, click) pairs: within a user, GAUC rises."""
    common = (*TINY, "data.max_len=1", "data.long_len=30", "data.use_labels=true", "data.gauc_history=frozen", "model.monitor=val_gauc")
    scores = {}
    for dim in (0, 8):
        cfg = composed(*common, f"model.affinity_dim={dim}")
        data = make_click_data(taste_log(), cfg.data)
        scores[dim] = fitted(cfg, data).best_score
    assert scores[8] > 0.8 and scores[8] > scores[0] + 0.04


def test_affinity_and_long_attention_ignore_padding_and_read_the_longer_history() -> None:
    model = ClickLSTM(VOCAB, 8, 6, use_labels=True, num_features=2, affinity_dim=4, long_attention=True, pooling="last_attention",
                      rngs=nnx.Rngs(0))
    history, clicks, lengths, items = click_batch()
    features = np.random.default_rng(2).normal(size=(6, 2)).astype(np.float32)
    long_history, long_clicks, long_lengths, _ = click_batch(seed=3)
    logits = model(history, lengths, items, clicks, features, long_history, long_clicks, long_lengths)
    padded = np.arange(5)[None, :] >= long_lengths[:, None]
    noisy = np.where(padded, np.random.default_rng(1).integers(1, VOCAB, long_history.shape), long_history).astype(np.int32)
    np.testing.assert_allclose(model(history, lengths, items, clicks, features, noisy, np.where(padded, 1.0, long_clicks).astype(np.float32),
                                     long_lengths), logits, atol=1e-6)
    changed = long_clicks.copy()
    changed[4, 0] = 1 - changed[4, 0]
    assert not np.allclose(model(history, lengths, items, clicks, features, long_history, changed, long_lengths)[4], logits[4])
    assert np.all(np.isfinite(logits))


def test_ensemble_of_seeds_is_their_mean_probability_and_beats_their_spread() -> None:
    cfg = composed(*TINY, "data.gauc_history=frozen", "data.use_labels=true", "trainer.epochs=2")
    data = make_click_data(exchangeable_log(n_users=60), cfg.data)
    results = SeedResults([0, 1, 2], [fitted(cfg, data, seed) for seed in (0, 1, 2)])
    report = evaluate_seeds(cfg, results, data)
    members = np.stack([predict(r.model, model_inputs(cfg, data, data.test)) for r in results.results])
    assert report.metrics["test_ensemble_roc_auc"] == pytest.approx(roc_auc_score(data.test.clicks, members.mean(axis=0)))
    frozen = data.ranking_split("test")
    ranked = np.stack([predict(r.model, model_inputs(cfg, data, frozen)) for r in results.results]).mean(axis=0)
    assert report.metrics["test_ensemble_gauc"] == pytest.approx(gauc(frozen.clicks, ranked, frozen.users)[0])
    assert {"val_ensemble_roc_auc", "val_ensemble_gauc", "test_ensemble_rolling_gauc"} <= set(report.metrics)
    table = report.tables["ensemble_by_seed.csv"]
    assert list(table["model"].unique()) == ["seed 0", "seed 1", "seed 2", "ensemble"]


def test_verdict_says_plainly_whether_the_model_beats_both_baselines() -> None:
    m = {"test_roc_auc": 0.78, "test_gauc": 0.67, "baseline_test_popularity_roc_auc": 0.67, "baseline_test_popularity_gauc": 0.64,
         "baseline_test_logreg_roc_auc": 0.74, "baseline_test_logreg_gauc": 0.643}
    assert verdict(m) == "**The LSTM beats both baselines on ROC AUC and on GAUC.**"
    m["test_gauc"] = 0.65
    assert verdict(m).startswith("**The LSTM beats both baselines on ROC AUC and on GAUC**, but its GAUC lead (+0.007) is small")
    m["test_gauc"] = 0.645
    assert "does not beat its baselines" in verdict(m) and "GAUC against logistic regression (on par (+0.002))" in verdict(m)
    m.update(test_ensemble_roc_auc=0.78, test_ensemble_gauc=0.70, ensemble_seeds=3)  # the ensemble is the model when there is one
    assert "beats both" in verdict(m)


def test_sampled_negatives_repeat_each_history_with_an_item_from_the_log_not_clicked() -> None:
    from mktlab.models.lstm.training import item_features, with_negatives

    cfg = composed(*TINY, "model.item_features=true", "model.negatives=2")
    data = make_click_data(exchangeable_log(n_users=40), cfg.data)
    train, features = data.train, item_features(cfg, data)
    own = model_inputs(cfg, data, train, features)
    arrays = with_negatives(own, train, features, per_row=2, seed=0)
    n = len(train)
    assert len(arrays["items"]) == 3 * n and set(arrays) == set(own)
    for key in ("history", "history_clicks", "lengths", "clicks", "features"):
        np.testing.assert_array_equal(arrays[key][:n], own[key])  # the impressions themselves come first, unchanged
    np.testing.assert_array_equal(arrays["history"][n:], np.tile(train.history, (2, 1)))  # then each history twice more
    assert np.all(arrays["clicks"][n:] == 0) and set(np.unique(arrays["items"][n:])) <= set(np.unique(train.items))
    assert np.mean(arrays["items"][n:] == np.tile(train.items, 2)) < 0.05
    # a negative's item columns are those its item would have for the impression's user (other folds' counts)
    first = n + int(np.argmax(arrays["items"][n:] != train.items[0]))
    row = (first - n) % n
    same_item = np.flatnonzero((train.items == arrays["items"][first]) & (user_folds(train.users) == user_folds(train.users)[row]))
    if len(same_item):
        np.testing.assert_allclose(arrays["features"][first], own["features"][same_item[0]], rtol=1e-5)
    # the task trains on them
    assert fitted(composed(*TINY, "model.negatives=1", "trainer.epochs=1"), data).history[0]["train_loss"] > 0
