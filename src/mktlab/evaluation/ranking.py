"""Top-k ranking metrics over recommendation lists (binary relevance)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def precision_at_k(recommended: Sequence[int], relevant: set[int], k: int) -> float:
    """Share of the first k recommendations that are relevant (denominator k)."""
    return sum(item in relevant for item in list(recommended)[:k]) / k


def recall_at_k(recommended: Sequence[int], relevant: set[int], k: int) -> float:
    """Share of the relevant items found in the first k recommendations."""
    if not relevant:
        return float("nan")
    return sum(item in relevant for item in list(recommended)[:k]) / len(relevant)


def ndcg_at_k(recommended: Sequence[int], relevant: set[int], k: int) -> float:
    """Normalized discounted cumulative gain with binary gains and log2 discounts."""
    if not relevant:
        return float("nan")
    gains = np.array([item in relevant for item in list(recommended)[:k]], dtype=np.float64)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float(np.sum(gains * discounts[: len(gains)]))
    ideal = float(np.sum(discounts[: min(len(relevant), k)]))
    return dcg / ideal


def ranking_report(recommendations: dict[int, Sequence[int]], relevant: dict[int, set[int]], k: int) -> dict[str, float]:
    """precision@k, recall@k and NDCG@k averaged over the users with at least one relevant item."""
    users = [u for u, items in relevant.items() if items and u in recommendations]
    if not users:
        return {f"precision_at_{k}": float("nan"), f"recall_at_{k}": float("nan"), f"ndcg_at_{k}": float("nan"), "ranked_users": 0}
    return {
        f"precision_at_{k}": float(np.mean([precision_at_k(recommendations[u], relevant[u], k) for u in users])),
        f"recall_at_{k}": float(np.mean([recall_at_k(recommendations[u], relevant[u], k) for u in users])),
        f"ndcg_at_{k}": float(np.mean([ndcg_at_k(recommendations[u], relevant[u], k) for u in users])),
        "ranked_users": len(users),
    }
