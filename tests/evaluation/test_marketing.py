"""Response metrics against scikit-learn and hand computations."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from mktlab.evaluation.marketing import gains_curve, lift_at, lift_curve, response_report, top_hits, top_size

# Ten customers, three buyers; by score the order is c0 c1 c2 ... c9.
Y = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0])
S = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])


def test_classification_metrics_equal_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.1).astype(int)
    p = np.clip(0.1 + 0.3 * y * rng.random(500) + 0.2 * rng.random(500), 0.01, 0.99)
    report = response_report(y, p, prefix="test_")
    assert report["test_roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert report["test_pr_auc"] == pytest.approx(skm.average_precision_score(y, p))
    assert report["test_log_loss"] == pytest.approx(skm.log_loss(y, p))
    assert report["test_brier"] == pytest.approx(skm.brier_score_loss(y, p))
    assert report["test_accuracy"] == pytest.approx(skm.accuracy_score(y, p >= 0.5))
    assert report["test_log_loss"] == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    assert report["test_brier"] == pytest.approx(np.mean((p - y) ** 2))


def test_top_hits_and_lift_on_hand_made_arrays() -> None:
    assert top_size(10, 0.2) == 2 and top_size(4000, 0.2) == 800 and top_size(3, 0.1) == 1
    assert top_hits(Y, S, 0.2) == 1  # c0 (buyer), c1
    assert top_hits(Y, S, 0.3) == 2  # c0, c1, c2
    assert top_hits(Y, S, 0.6) == 3
    # lift: buyer rate in the top share / overall rate 0.3
    assert lift_at(Y, S, 0.1) == pytest.approx(1.0 / 0.3)
    assert lift_at(Y, S, 0.2) == pytest.approx(0.5 / 0.3)
    assert lift_at(Y, S, 1.0) == pytest.approx(1.0)
    report = response_report(Y, S, top_fraction=0.2, lift_fractions=(0.1, 0.2))
    assert report["top20_hits"] == 1 and report["top20_recall"] == pytest.approx(1 / 3) and report["buyers"] == 3
    assert report["lift_at_10"] == pytest.approx(10 / 3) and report["lift_at_20"] == pytest.approx(5 / 3)
    # the challenge's own numbers: 4000 customers, hits among the top 800
    rng = np.random.default_rng(1)
    y, s = (rng.random(4000) < 0.06).astype(int), rng.random(4000)
    assert top_hits(y, s, 0.2) == y[np.argsort(-s)[:800]].sum()


def test_ties_keep_the_customers_order_and_scores_need_not_be_probabilities() -> None:
    y, s = np.array([0, 1, 1, 0]), np.array([2.0, 2.0, 1.0, 1.0])
    assert top_hits(y, s, 0.25) == 0 and top_hits(y[::-1], s[::-1], 0.25) == 1
    with pytest.raises(ValueError):
        top_size(10, 0.0)


def test_gains_and_lift_curves() -> None:
    contacted, reached = gains_curve(Y, S)
    np.testing.assert_allclose(contacted, np.arange(11) / 10)
    np.testing.assert_allclose(reached, np.array([0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]) / 3)
    share, lift = lift_curve(Y, S)
    assert lift[0] == pytest.approx(1 / 0.3) and lift[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(lift, reached[1:] / share)


def test_auc_standard_error_matches_hanley_mcneil() -> None:
    from mktlab.evaluation.marketing import auc_standard_error

    # by hand: q1 = 0.9/1.1, q2 = 1.62/1.9, var = (0.09 + 49 (q1 - 0.81) + 49 (q2 - 0.81)) / 2500
    q1, q2 = 0.9 / 1.1, 1.62 / 1.9
    assert auc_standard_error(0.9, 50, 50) == pytest.approx(np.sqrt((0.09 + 49 * (q1 - 0.81) + 49 * (q2 - 0.81)) / 2500))
    assert auc_standard_error(0.9, 50, 50) == pytest.approx(0.0321, abs=1e-4)
    assert auc_standard_error(0.75, 70, 1095) > auc_standard_error(0.75, 700, 10950)
    assert np.isnan(auc_standard_error(0.7, 0, 10))
