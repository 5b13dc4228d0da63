"""Top-k ranking metrics over recommendation lists (binary relevance), and the protocols that score a recommender.

A recommender enters a protocol as a *scorer*: `score(users) -> (len(users), num_items)`,
every known item's score for each user index (only the order within a row matters), so the
model, its baselines and another library's factors are all evaluated by the same code.

- Full ranking (`full_ranking`): every known user gets a top-k list over every item they did
  not rate in training; precision, recall, NDCG and hit rate at k average over the users with
  a relevant test item (a test rating at or above a threshold); catalogue coverage and the
  mean popularity of the recommended items are over every user's list.
- Sampled leave-last-out (`sampled_candidates` + `sampled_protocol`), the protocol of the NCF
  papers (He et al. 2017): each user's latest test item ranked against a number of sampled
  items the user never rated; HR@k and NDCG@k.

`topk_metrics_traced` gives the full-ranking list metrics inside a compiled program (a
model's per-epoch validation).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mktlab.data.ratings import RatingsData, RatingsSplit
from mktlab.train.predict import predict_in_chunks

Scorer = Callable[[jax.Array], jax.Array]  # user indices -> (users, num_items) scores


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


def hit_rate_at_k(recommended: Sequence[int], relevant: set[int], k: int) -> float:
    """1 when any of the first k recommendations is relevant, else 0."""
    if not relevant:
        return float("nan")
    return float(any(item in relevant for item in list(recommended)[:k]))


LIST_METRICS = {"precision": precision_at_k, "recall": recall_at_k, "ndcg": ndcg_at_k, "hit_rate": hit_rate_at_k}


def ranking_report(recommendations: dict[int, Sequence[int]], relevant: dict[int, set[int]], k: int) -> dict[str, float]:
    """precision@k, recall@k, NDCG@k and hit rate@k averaged over the users with at least one relevant item."""
    users = [u for u, items in relevant.items() if items and u in recommendations]
    if not users:
        return {**{f"{name}_at_{k}": float("nan") for name in LIST_METRICS}, "ranked_users": 0}
    report = {f"{name}_at_{k}": float(np.mean([metric(recommendations[u], relevant[u], k) for u in users]))
              for name, metric in LIST_METRICS.items()}
    return {**report, "ranked_users": len(users)}


def catalogue_coverage(lists: Sequence[Sequence[int]], num_items: int) -> float:
    """Share of the catalogue's `num_items` items that appear in at least one list."""
    shown = {int(item) for items in lists for item in items}
    return len(shown) / num_items if num_items else float("nan")


def mean_popularity(lists: Sequence[Sequence[int]], popularity: np.ndarray) -> float:
    """Mean `popularity[item]` (e.g. the item's training ratings) over every recommended slot."""
    items = np.array([int(item) for items in lists for item in items], dtype=np.int64)
    return float(np.mean(popularity[items])) if len(items) else float("nan")


def topk_metrics_traced(scores: jax.Array, exclude: jax.Array, relevant: jax.Array, k: int) -> dict[str, jax.Array]:
    """precision, recall, NDCG and hit rate at k of every row's top k, traceable (jit, vmap).

    The same numbers as `ranking_report` for dense inputs: `scores` (users, items), `exclude`
    (users, items) bool, the items that may not be recommended (ties in score go to the lower
    item index, as `jax.lax.top_k` breaks them), `relevant` (users, items) bool. Averages over
    the rows with at least one relevant item.
    """
    _, top = jax.lax.top_k(jnp.where(exclude, -jnp.inf, scores), k)
    hits = jnp.take_along_axis(relevant, top, axis=1).astype(jnp.float32)
    count = jnp.sum(relevant, axis=1)
    discounts = 1.0 / jnp.log2(jnp.arange(2, k + 2, dtype=jnp.float32))
    ideal = jnp.concatenate([jnp.zeros(1), jnp.cumsum(discounts)])[jnp.minimum(count, k)]
    rows = count > 0
    found = jnp.sum(hits, axis=1)
    n = jnp.maximum(jnp.sum(rows), 1)

    def mean(values: jax.Array) -> jax.Array:
        return jnp.sum(jnp.where(rows, values, 0.0)) / n

    return {
        f"precision_at_{k}": mean(found / k),
        f"recall_at_{k}": mean(found / jnp.maximum(count, 1)),
        f"ndcg_at_{k}": mean((hits @ discounts) / jnp.where(rows, ideal, 1.0)),
        f"hit_rate_at_{k}": mean((found > 0).astype(jnp.float32)),
    }


@functools.partial(jax.jit, static_argnames="k")
def masked_top_k(scores: jax.Array, exclude: jax.Array, *, k: int) -> tuple[jax.Array, jax.Array]:
    """Each row's k best scores and their columns, never an `exclude`d column (ties: the lower column)."""
    return jax.lax.top_k(jnp.where(exclude, -jnp.inf, scores), k)


# --------------------------------------------------------------------------- protocols on ratings data


def items_by_user(users: np.ndarray, items: np.ndarray, num_users: int) -> list[np.ndarray]:
    """For each user index below `num_users`, the items of its records, in record order."""
    order = np.argsort(users, kind="stable")
    bounds = np.searchsorted(users[order], np.arange(num_users + 1))
    return np.split(items[order], bounds[1:-1])


def seen_items(split: RatingsSplit, num_users: int, num_items: int) -> list[np.ndarray]:
    """For each user index, the known item indices rated in `split` (training: excluded from recommendations)."""
    known = (split.users < num_users) & (split.items < num_items)
    return items_by_user(split.users[known], split.items[known], num_users)


def relevant_items(split: RatingsSplit, threshold: float, num_users: int, num_items: int) -> dict[int, set[int]]:
    """Per known user, the known items rated at or above `threshold` in `split`."""
    keep = (split.ratings >= threshold) & (split.users < num_users) & (split.items < num_items)
    users = split.users[keep]
    groups = items_by_user(users, split.items[keep], num_users)
    first = np.sort(np.unique(users, return_index=True)[1])  # users in the order the split first names them
    return {int(users[i]): set(groups[users[i]].tolist()) for i in first}


def top_k(score: Scorer, users: np.ndarray, exclude: list[np.ndarray], k: int, *, num_items: int,
          chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The k best-scored item indices per user and their scores, excluding each user's `exclude` items.

    `score(users)` gives every item's score for each user (e.g. a model's `ranking_scores`).
    Ties go to the lower item index. Users are scored in chunks of a fixed size (the last one
    padded), so the selection compiles once per chunk shape and k, whatever the scorer.
    """
    if len(users) == 0:
        return np.zeros((0, k), dtype=np.int32), np.zeros((0, k), dtype=np.float32)
    mask = np.zeros((len(users), num_items), dtype=bool)
    for row, user in enumerate(users):
        mask[row, exclude[user]] = True
    select = lambda users, mask: masked_top_k(score(users), mask, k=k)  # noqa: E731
    best_scores, best_items = predict_in_chunks(select, {"users": np.asarray(users, np.int32), "mask": mask}, chunk, padding="chunk")
    return best_items, best_scores


def full_ranking(score: Scorer, data: RatingsData, *, k: int, threshold: float,
                 popularity: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """The full-ranking protocol's metrics of one scorer, and every known user's top-k list.

    Candidates: every item the user did not rate in training; relevant: the user's test items
    rated at least `threshold`. Metrics: precision, recall, NDCG and hit rate at k over the users
    with a relevant test item, `ranked_users`, and over every known user's list `coverage_at_k`
    and `mean_popularity_at_k` (of `popularity`, e.g. each item's training ratings).
    """
    exclude = seen_items(data.train, data.num_users, data.num_items)
    lists, _ = top_k(score, np.arange(data.num_users, dtype=np.int32), exclude, k, num_items=data.num_items)
    relevant = relevant_items(data.test, threshold, data.num_users, data.num_items)
    metrics = ranking_report({u: list(lists[u]) for u in relevant}, relevant, k)
    metrics[f"coverage_at_{k}"] = catalogue_coverage(lists, data.num_items)
    metrics[f"mean_popularity_at_{k}"] = mean_popularity(lists, popularity)
    return metrics, lists


def sample_unrated(rated: Sequence[np.ndarray], users: np.ndarray, num_items: int, num_negatives: int,
                   rng: np.random.Generator) -> np.ndarray:
    """For each of `users`, `num_negatives` distinct items drawn uniformly from those the user never rated.

    Args:
        rated: per user index, every item index the user rated (in any split).
        users: the users to draw for, in order; the draws are made in this order from `rng`.
        num_items: items are 0..num_items-1.
        num_negatives: items per user (fewer when the user left fewer unrated; the row is then
            padded with -1).
        rng: the seeded generator.

    Returns:
        (len(users), num_negatives) int64 item indices.
    """
    out = np.full((len(users), num_negatives), -1, dtype=np.int64)
    for row, user in enumerate(users):
        open_ = np.ones(num_items, dtype=bool)
        open_[rated[user]] = False
        unrated = np.flatnonzero(open_)
        take = min(num_negatives, len(unrated))
        out[row, :take] = rng.choice(unrated, size=take, replace=False)
    return out


def sampled_ranking_report(positive_scores: np.ndarray, negative_scores: np.ndarray, k: int) -> dict[str, float]:
    """HR@k and NDCG@k of the sampled protocol: one held-out item per user ranked among that user's sampled negatives.

    A negative scored equal to the held-out item ranks above it (ties count against the model).
    Negative scores of -inf (padding) never rank above it.

    Args:
        positive_scores: (users,) the held-out item's score.
        negative_scores: (users, negatives) the sampled items' scores.
    """
    if len(positive_scores) == 0:
        return {f"sampled_hr_at_{k}": float("nan"), f"sampled_ndcg_at_{k}": float("nan"), "sampled_users": 0}
    rank = np.sum(negative_scores >= positive_scores[:, None], axis=1)  # 0: the held-out item comes first
    hit = rank < k
    return {
        f"sampled_hr_at_{k}": float(np.mean(hit)),
        f"sampled_ndcg_at_{k}": float(np.mean(np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0))),
        "sampled_users": int(len(rank)),
    }


def sampled_candidates(data: RatingsData, *, num_negatives: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sampled leave-last-out protocol's draw: for each user with a known test item, that user's latest
    test item (by timestamp, then record order) and `num_negatives` items the user rated in no split,
    drawn uniformly with a generator seeded by `seed`.

    Returns:
        users (n,), held-out items (n,), negatives (n, num_negatives), -1 where a user left fewer unrated.
    """
    test = data.test
    known = np.flatnonzero((test.users < data.num_users) & (test.items < data.num_items))
    order = known[np.lexsort((known, test.timestamps[known], test.users[known]))]  # by user, then time, then position
    last = order[np.r_[np.flatnonzero(np.diff(test.users[order])), len(order) - 1]] if len(order) else order
    users, positives = test.users[last], test.items[last]
    per_split = (seen_items(part, data.num_users, data.num_items) for part in (data.train, data.val, data.test))
    rated = [np.concatenate(parts) for parts in zip(*per_split)]
    negatives = sample_unrated(rated, users, data.num_items, num_negatives, np.random.default_rng((seed, 100)))
    return users, positives, negatives


def sampled_protocol(score: Scorer, users: np.ndarray, positives: np.ndarray, negatives: np.ndarray, k: int, *,
                     chunk: int = 256) -> dict[str, float]:
    """HR@k and NDCG@k of one scorer on the draw of `sampled_candidates` (users scored in chunks of `chunk`)."""
    if len(users) == 0:
        return sampled_ranking_report(np.zeros(0), np.zeros((0, negatives.shape[1])), k)

    def gather(users: jax.Array, positives: jax.Array, negatives: jax.Array) -> tuple[jax.Array, jax.Array]:
        scores = score(users)
        negative_scores = jnp.take_along_axis(scores, jnp.maximum(negatives, 0), axis=1)
        return jnp.take_along_axis(scores, positives[:, None], axis=1)[:, 0], jnp.where(negatives >= 0, negative_scores, -jnp.inf)

    inputs = {"users": np.asarray(users, np.int32), "positives": np.asarray(positives, np.int32), "negatives": np.asarray(negatives, np.int32)}
    positive_scores, negative_scores = predict_in_chunks(gather, inputs, chunk, padding="chunk")
    return sampled_ranking_report(positive_scores, negative_scores, k)
