"""Matrix factorization evaluation: rating error and top-k ranking against its baselines, figures, recommendations.

Ranking is measured by the full-ranking protocol of `mktlab.evaluation.ranking` (every item a
user did not rate in training is a candidate; relevant: test ratings at or above
`model.eval.relevance_threshold`), and with `model.eval.sampled_negatives` > 0 also by the
sampled leave-last-out protocol. Most-popular, the rating head alone (when the model has a
ranking head) and biases-only go through exactly the same code as the model and are logged
as `baseline_test_popularity_*`, `reference_test_rating_head_*` and `baseline_test_biases_*`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mktlab.data.ratings import RatingsData
from mktlab.evaluation import plots
from mktlab.evaluation.ranking import Scorer, full_ranking, sampled_candidates, sampled_protocol
from mktlab.evaluation.regression import mae, rmse
from mktlab.evaluation.report import Report
from mktlab.models.contract import ModelImplementation
from mktlab.models.mf.baselines import best_biases, item_popularity, popularity_scorer
from mktlab.models.mf.module import MatrixFactorization
from mktlab.models.mf.training import build_tasks, module_kwargs, predict
from mktlab.train.loop import FitResult

# recommender label -> the prefix of its metrics (the model's, then its baselines')
PREFIXES = {"model": "test_", "most-popular": "baseline_test_popularity_", "rating head alone": "reference_test_rating_head_",
            "biases only": "baseline_test_biases_"}


def evaluate(cfg: Any, result: FitResult, data: RatingsData) -> Report:
    """Test RMSE/MAE and ranking metrics of the model and its baselines, figures, recommendations, the model."""
    model: MatrixFactorization = result.model
    k, threshold = cfg.model.eval.top_k, cfg.model.eval.relevance_threshold
    predictions = predict(model, data.test.users, data.test.items, scale=data.rating_scale)
    metrics = {"test_rmse": rmse(data.test.ratings, predictions), "test_mae": mae(data.test.ratings, predictions)}

    biases = best_biases(data.train, data.val, data.num_users, data.num_items, l2_grid=cfg.model.eval.biases_l2, scale=data.rating_scale)
    baseline_predictions = biases.predict(data.test.users, data.test.items, scale=data.rating_scale)
    metrics.update({"baseline_test_biases_rmse": rmse(data.test.ratings, baseline_predictions),
                    "baseline_test_biases_mae": mae(data.test.ratings, baseline_predictions), "baseline_biases_l2": biases.l2})

    popularity = item_popularity(data.train, data.num_items)
    scorers: dict[str, Scorer] = {"model": model.ranking_scores, "most-popular": popularity_scorer(popularity)}
    if model.rank_dim:  # how the rating head alone would rank: what the ranking head is for
        scorers["rating head alone"] = model.score_all_items
    lists = {}
    for label, score in scorers.items():
        ranking, lists[label] = full_ranking(score, data, k=k, threshold=threshold, popularity=popularity)
        metrics.update({f"{PREFIXES[label]}{name}": value for name, value in ranking.items()})
    if cfg.model.eval.sampled_negatives > 0:
        draw = sampled_candidates(data, num_negatives=cfg.model.eval.sampled_negatives, seed=cfg.seed)
        for label, score in scorers.items():
            metrics.update({f"{PREFIXES[label]}{name}": value for name, value in sampled_protocol(score, *draw, k).items()})
    metrics.update({"best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "fit_seconds": result.seconds})

    sample = np.sort(np.random.default_rng(cfg.seed).choice(data.num_users, size=min(cfg.model.eval.recommend_users, data.num_users), replace=False))
    figures = {
        "learning_curve": plots.learning_curves(result.history, best_epoch=result.best_epoch, title="Matrix factorization"),
        "error_histogram": plots.histogram(predictions - data.test.ratings, xlabel="predicted - actual rating",
                                           title=f"Test errors (RMSE {metrics['test_rmse']:.3f})"),
        "recommendation_popularity": plots.recommendation_popularity(
            {label: popularity[found].ravel() for label, found in lists.items()},
            {label: metrics[f"{PREFIXES[label]}coverage_at_{k}"] for label in lists},
            title=f"What the top-{k} lists recommend"),
    }
    tables = {f"recommendations_top{k}.csv": recommendations_table(model, data, sample, lists["model"], popularity),
              f"model_vs_popularity_top{k}.csv": side_by_side(data, sample, {label: lists[label] for label in ("model", "most-popular")})}
    return Report(metrics=metrics, figures=figures, tables=tables, model=(model, module_kwargs(cfg, data)))


def title_of(data: RatingsData, item: int) -> str:
    """The title of an item index (its original id when the data has no title for it)."""
    item_id = int(data.item_ids[item])
    return str(data.titles.get(item_id, item_id))


def recommendations_table(model: MatrixFactorization, data: RatingsData, users: np.ndarray, lists: np.ndarray,
                          popularity: np.ndarray) -> pd.DataFrame:
    """The model's top-k list of each of `users`, with each item's predicted rating and training popularity."""
    chosen = lists[users]
    ratings = predict(model, np.repeat(users, chosen.shape[1]).astype(np.int32), chosen.ravel().astype(np.int32),
                      scale=data.rating_scale).reshape(chosen.shape) if chosen.size else np.zeros(chosen.shape)
    rows = []
    for user, items, predicted in zip(users, chosen, ratings):
        for rank, (item, rating) in enumerate(zip(items, predicted), start=1):
            rows.append({"user_id": int(data.user_ids[user]), "rank": rank, "item_id": int(data.item_ids[item]),
                         "title": title_of(data, int(item)), "predicted_rating": round(float(rating), 3),
                         "training_ratings": int(popularity[item])})
    return pd.DataFrame(rows)


def side_by_side(data: RatingsData, users: np.ndarray, lists: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per (user, rank): the title each recommender puts there, a column per recommender."""
    rows = []
    for user in users:
        for rank in range(next(iter(lists.values())).shape[1]):
            rows.append({"user_id": int(data.user_ids[user]), "rank": rank + 1,
                         **{label: title_of(data, int(found[user, rank])) for label, found in lists.items()}})
    return pd.DataFrame(rows)


def _times(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.1f}×" if theirs > 0 else "∞×"


def reading(cfg: Any, report: Report, data: RatingsData) -> str:
    """A plain-language reading of the result against both baselines (Markdown)."""
    m, k = report.metrics, cfg.model.eval.top_k
    ndcg, base_ndcg = m[f"test_ndcg_at_{k}"], m[f"baseline_test_popularity_ndcg_at_{k}"]
    rmse_, base_rmse = m["test_rmse"], m["baseline_test_biases_rmse"]
    verdict = {(True, True): "**The model beats both baselines.**",
               (True, False): "**The model beats most-popular on ranking but not biases-only on ratings.**",
               (False, True): "**The model beats biases-only on ratings but does not beat most-popular on ranking.**",
               (False, False): "**The model beats neither baseline.**"}[(ndcg > base_ndcg, rmse_ < base_rmse)]
    text = (
        f"{verdict} "
        f"Ranked against every movie a user had not rated in training, its top {k} list holds on average "
        f"{m[f'test_precision_at_{k}'] * k:.2f} of the movies the user went on to rate "
        f"{cfg.model.eval.relevance_threshold:g} or more, against "
        f"{m[f'baseline_test_popularity_precision_at_{k}'] * k:.2f} for the most popular movies: NDCG@{k} **{ndcg:.3f}** "
        f"against {base_ndcg:.3f} ({_times(ndcg, base_ndcg)}), recall@{k} {m[f'test_recall_at_{k}']:.3f} against "
        f"{m[f'baseline_test_popularity_recall_at_{k}']:.3f}, hit rate {m[f'test_hit_rate_at_{k}']:.3f} against "
        f"{m[f'baseline_test_popularity_hit_rate_at_{k}']:.3f} (over {int(m['test_ranked_users'])} users). "
        f"Its lists use {100 * m[f'test_coverage_at_{k}']:.1f}% of the catalogue (most-popular: "
        f"{100 * m[f'baseline_test_popularity_coverage_at_{k}']:.1f}%), items with {m[f'test_mean_popularity_at_{k}']:.0f} "
        f"training ratings on average (most-popular: {m[f'baseline_test_popularity_mean_popularity_at_{k}']:.0f}). "
    )
    if f"reference_test_rating_head_ndcg_at_{k}" in m:
        text += (f"Ranked by predicted rating instead, the same model would reach NDCG@{k} only "
                 f"{m[f'reference_test_rating_head_ndcg_at_{k}']:.3f}: the ranking head is what makes the lists worth sending. ")
    if f"test_sampled_hr_at_{k}" in m:
        text += (f"In the sampled protocol (each of {int(m['test_sampled_users'])} users' latest test movie ranked against "
                 f"{cfg.model.eval.sampled_negatives} sampled movies the user never rated) HR@{k} is {m[f'test_sampled_hr_at_{k}']:.3f} "
                 f"and NDCG@{k} {m[f'test_sampled_ndcg_at_{k}']:.3f} (most-popular {m[f'baseline_test_popularity_sampled_hr_at_{k}']:.3f} "
                 f"and {m[f'baseline_test_popularity_sampled_ndcg_at_{k}']:.3f}). ")
    text += (
        f"On held-out ratings the model is off by **{rmse_:.3f} stars** (RMSE; MAE {m['test_mae']:.3f}) against "
        f"{base_rmse:.3f} for biases only (global mean plus user and item biases). "
        f"Validation error was lowest at epoch {int(m['best_epoch'])} of {int(m['epochs_run'])}; those parameters are the ones saved."
    )
    return text


def comparison_table(cfg: Any, report: Report) -> pd.DataFrame:
    """The model's test metrics beside its baselines': one row per metric, one column per recommender."""
    m, k = report.metrics, cfg.model.eval.top_k
    rows = [f"precision_at_{k}", f"recall_at_{k}", f"ndcg_at_{k}", f"hit_rate_at_{k}", f"coverage_at_{k}",
            f"mean_popularity_at_{k}", f"sampled_hr_at_{k}", f"sampled_ndcg_at_{k}", "rmse", "mae"]
    table = pd.DataFrame({label: [m.get(prefix + row, np.nan) for row in rows] for label, prefix in PREFIXES.items()}, index=rows)
    return table.dropna(how="all").dropna(axis=1, how="all")


implementation = ModelImplementation(build_tasks=build_tasks, evaluate=evaluate, reading=reading)
