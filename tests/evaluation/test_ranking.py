"""Ranking metrics against scikit-learn and direct computations."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from mktlab.evaluation.ranking import ndcg_at_k, precision_at_k, ranking_report, recall_at_k


def test_ndcg_equals_scikit_learn_on_binary_relevance() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        n, k = 30, 10
        scores = rng.normal(size=n)
        relevant = set(rng.choice(n, size=rng.integers(1, 8), replace=False).tolist())
        ranking = list(np.argsort(-scores))
        truth = np.array([[1.0 if i in relevant else 0.0 for i in range(n)]])
        assert ndcg_at_k(ranking, relevant, k) == pytest.approx(ndcg_score(truth, scores[None, :], k=k))


def test_precision_recall_by_hand() -> None:
    recommended, relevant = [3, 1, 7, 9], {1, 9, 42}
    assert precision_at_k(recommended, relevant, 4) == 0.5
    assert recall_at_k(recommended, relevant, 4) == pytest.approx(2 / 3)
    assert ndcg_at_k([1, 9, 42], relevant, 3) == pytest.approx(1.0)


def test_ranking_report_averages_over_users_with_relevant_items() -> None:
    report = ranking_report({1: [5, 6], 2: [7, 8], 3: [1, 2]}, {1: {5}, 2: {9}, 3: set()}, k=2)
    assert report["ranked_users"] == 2
    assert report["precision_at_2"] == pytest.approx(0.25)
    assert report["recall_at_2"] == pytest.approx(0.5)
