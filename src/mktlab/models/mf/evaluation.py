"""Matrix factorization evaluation: rating error, top-k ranking, figures, recommendations."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from mktlab.data.ratings import RatingsData, RatingsSplit
from mktlab.evaluation import plots
from mktlab.evaluation.ranking import ranking_report
from mktlab.evaluation.regression import mae, rmse
from mktlab.evaluation.report import Report
from mktlab.models.contract import ModelImplementation
from mktlab.models.mf.module import MatrixFactorization
from mktlab.models.mf.training import build_tasks, module_kwargs, predict
from mktlab.train.loop import FitResult
from mktlab.train.predict import predict_in_chunks


def seen_items(split: RatingsSplit, num_users: int, num_items: int) -> list[np.ndarray]:
    """For each user index, the item indices rated in `split` (training: excluded from recommendations)."""
    known = (split.users < num_users) & (split.items < num_items)
    users, items = split.users[known], split.items[known]
    order = np.argsort(users, kind="stable")
    bounds = np.searchsorted(users[order], np.arange(num_users + 1))
    return [items[order][bounds[u] : bounds[u + 1]] for u in range(num_users)]


def top_k(
    model: MatrixFactorization, users: np.ndarray, exclude: list[np.ndarray], k: int, *, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """The k best-scored item indices per user and their scores, excluding each user's `exclude` items.

    Users are scored in chunks of a fixed size (the last one padded) so the scoring
    function compiles once.
    """
    if len(users) == 0:
        return np.zeros((0, k), dtype=np.int32), np.zeros((0, k), dtype=np.float32)
    score = jax.jit(lambda users, mask: jax.lax.top_k(jnp.where(mask, -jnp.inf, model.score_all_items(users)), k))
    mask = np.zeros((len(users), model.num_items), dtype=bool)
    for row, user in enumerate(users):
        mask[row, exclude[user]] = True
    best_scores, best_items = predict_in_chunks(score, {"users": np.asarray(users, np.int32), "mask": mask}, chunk, padding="chunk")
    return best_items, best_scores


def relevant_items(split: RatingsSplit, threshold: float, num_users: int, num_items: int) -> dict[int, set[int]]:
    """Per known user, the known items rated at or above `threshold` in `split`."""
    keep = (split.ratings >= threshold) & (split.users < num_users) & (split.items < num_items)
    relevant: dict[int, set[int]] = {}
    for user, item in zip(split.users[keep], split.items[keep]):
        relevant.setdefault(int(user), set()).add(int(item))
    return relevant


def evaluate(cfg: Any, result: FitResult, data: RatingsData) -> Report:
    """Test RMSE/MAE, precision/recall/NDCG@k, figures, a recommendations table and the model."""
    model: MatrixFactorization = result.model
    k = cfg.model.eval.top_k
    predictions = predict(model, data.test.users, data.test.items, scale=data.rating_scale)
    metrics = {"test_rmse": rmse(data.test.ratings, predictions), "test_mae": mae(data.test.ratings, predictions)}

    exclude = seen_items(data.train, data.num_users, data.num_items)
    relevant = relevant_items(data.test, cfg.model.eval.relevance_threshold, data.num_users, data.num_items)
    ranked_users = np.array(sorted(relevant), dtype=np.int32)
    lists, _ = top_k(model, ranked_users, exclude, k)
    ranking = ranking_report({int(u): list(row) for u, row in zip(ranked_users, lists)}, relevant, k)
    metrics.update({f"test_{name}": value for name, value in ranking.items()})
    metrics.update({"best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "fit_seconds": result.seconds})

    sample = np.random.default_rng(cfg.seed).choice(data.num_users, size=min(cfg.model.eval.recommend_users, data.num_users), replace=False)
    sample_lists, sample_scores = top_k(model, np.sort(sample).astype(np.int32), exclude, k)
    rows = []
    for user, items, scores in zip(np.sort(sample), sample_lists, np.clip(sample_scores, *data.rating_scale)):
        for rank, (item, score) in enumerate(zip(items, scores), start=1):
            item_id = int(data.item_ids[item])
            rows.append({"user_id": int(data.user_ids[user]), "rank": rank, "item_id": item_id,
                         "title": data.titles.get(item_id, ""), "predicted_rating": round(float(score), 3)})

    figures = {
        "learning_curve": plots.learning_curves(result.history, best_epoch=result.best_epoch, title="Matrix factorization"),
        "error_histogram": plots.histogram(predictions - data.test.ratings, xlabel="predicted - actual rating",
                                           title=f"Test errors (RMSE {metrics['test_rmse']:.3f})"),
    }
    return Report(metrics=metrics, figures=figures, tables={f"recommendations_top{k}.csv": pd.DataFrame(rows)},
                  model=(model, module_kwargs(cfg, data)))


def reading(cfg: Any, report: Report, data: RatingsData) -> str:
    """A short plain-language reading of the result (Markdown)."""
    m, k = report.metrics, cfg.model.eval.top_k
    return (
        f"On held-out ratings the model is off by **{m['test_rmse']:.3f} stars** (RMSE; MAE {m['test_mae']:.3f}). "
        f"Ranked against every movie a user had not rated in training, its top {k} list holds on average "
        f"{m[f'test_precision_at_{k}'] * k:.2f} of the movies the user went on to rate 4 or more "
        f"(precision@{k} {m[f'test_precision_at_{k}']:.3f}, recall@{k} {m[f'test_recall_at_{k}']:.3f}, "
        f"NDCG@{k} {m[f'test_ndcg_at_{k}']:.3f}, over {int(m['test_ranked_users'])} users). "
        f"Validation error was lowest at epoch {int(m['best_epoch'])} of {int(m['epochs_run'])}; those parameters are the ones saved. "
        "Low precision@k is normal for explicit-rating models, which are trained to predict the rating, not what a user will pick: "
        "compare runs on it, not against ranking-trained models."
    )


implementation = ModelImplementation(build_tasks=build_tasks, evaluate=evaluate, reading=reading)
