"""Click metrics and baselines: GAUC against a direct computation, scikit-learn agreement, smoothed CTRs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from mktlab.evaluation.clicks import (
    auc_by_bucket,
    click_features,
    click_report,
    gauc,
    logistic_baseline,
    popularity_scores,
)


def direct_gauc(y, s, users):
    """Impression-weighted mean of per-user scikit-learn AUCs, users with both classes only."""
    total, weight = 0.0, 0
    for user in np.unique(users):
        member = users == user
        if len(np.unique(y[member])) == 2:
            total += member.sum() * roc_auc_score(y[member], s[member])
            weight += member.sum()
    return total / weight


def test_gauc_on_hand_made_arrays() -> None:
    users = np.array([1, 1, 1, 1, 2, 2, 2, 3, 3, 4])
    y = np.array([1, 0, 1, 0, 1, 0, 0, 1, 1, 0])
    s = np.array([0.9, 0.1, 0.4, 0.6, 0.5, 0.5, 0.2, 0.3, 0.7, 0.1])
    # user 1: positives {0.9, 0.4} vs negatives {0.1, 0.6}: 3 of 4 pairs right -> 0.75 (4 impressions)
    # user 2: positive 0.5 vs {0.5 (tie: half), 0.2} -> 0.75 (3 impressions); users 3 and 4 have one class only
    value, users_counted = gauc(y, s, users)
    assert users_counted == 2
    assert value == pytest.approx((4 * 0.75 + 3 * 0.75) / 7)
    assert value == pytest.approx(direct_gauc(y, s, users))


def test_gauc_matches_the_direct_computation_on_random_data() -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(0, 40, 2000)
    y = rng.integers(0, 2, 2000)
    s = np.round(rng.random(2000) + 0.3 * y, 2)  # rounding makes ties
    value, counted = gauc(y, s, users)
    assert value == pytest.approx(direct_gauc(y, s, users), abs=1e-12)
    assert counted == sum(len(np.unique(y[users == u])) == 2 for u in np.unique(users))


def test_click_report_agrees_with_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    s = np.clip(rng.random(500) * 0.6 + 0.3 * y, 0.01, 0.99)
    users = rng.integers(0, 20, 500)
    report = click_report(y, s, users, prefix="test_")
    assert report["test_roc_auc"] == pytest.approx(roc_auc_score(y, s))
    assert report["test_log_loss"] == pytest.approx(log_loss(y, s))
    assert report["test_gauc"] == pytest.approx(direct_gauc(y, s, users))
    assert report["test_mean_predicted"] == pytest.approx(s.mean()) and report["test_observed_ctr"] == pytest.approx(y.mean())
    assert click_report(np.array([]), np.array([]), np.array([])) == {}


def test_auc_by_bucket() -> None:
    y = np.array([0, 1, 0, 1, 0, 1, 1])
    lengths = np.array([0, 0, 3, 3, 7, 9, 8])
    table = auc_by_bucket(y, {"a": np.array([0.1, 0.9, 0.8, 0.2, 0.3, 0.4, 0.5])}, lengths, edges=[0, 1, 5, 8])
    assert table["bucket"].tolist() == ["0", "1-4", "5-7", "8+"]
    assert table["impressions"].tolist() == [2, 2, 1, 2]
    assert table["a"].iloc[0] == 1.0 and table["a"].iloc[1] == 0.0
    assert np.isnan(table["a"].iloc[2]) and np.isnan(table["a"].iloc[3])  # a single class


def test_popularity_is_the_smoothed_item_ctr() -> None:
    items = np.array([5, 5, 5, 5, 6])
    clicks = np.array([1, 1, 1, 0, 0], np.float32)
    prior = 0.6
    scores = popularity_scores(items, clicks, np.array([5, 6, 7]), strength=2.0)
    np.testing.assert_allclose(scores, [(3 + 2 * prior) / (4 + 2), (0 + 2 * prior) / (1 + 2), prior])


def test_training_features_leave_their_own_click_out() -> None:
    users = np.array([1, 1, 2, 2])
    items = np.array([9, 9, 9, 8])
    clicks = np.array([1, 0, 1, 1], np.float32)
    own = click_features(users, items, clicks, users, items, strength=1e-9, clicks=clicks)
    # the first impression, left out: its user has one other impression, its item two others
    assert own[0, 0] < -5 and own[0, 1] == pytest.approx(0.0, abs=1e-6)  # user: 0 of 1 clicked; item 9: 1 of 2
    assert own[0, 2] == pytest.approx(np.log(2)) and own[0, 3] == pytest.approx(np.log(3))
    unseen = click_features(users, items, clicks, np.array([3]), np.array([7]), strength=10.0)
    prior = clicks.mean()
    np.testing.assert_allclose(unseen[0], [np.log(prior / (1 - prior))] * 2 + [0.0, 0.0], rtol=1e-6)


def test_logistic_baseline_learns_user_and_item_rates() -> None:
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 50, 5000), rng.integers(0, 80, 5000)
    user_rate, item_rate = rng.random(50), rng.random(80)
    clicks = (rng.random(5000) < 0.5 * user_rate[users] + 0.5 * item_rate[items]).astype(np.float32)
    score, _ = logistic_baseline(users[:4000], items[:4000], clicks[:4000], strength=5.0)
    assert roc_auc_score(clicks[4000:], score(users[4000:], items[4000:])) > 0.65  # about 0.5 without the features
