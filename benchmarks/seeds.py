"""Several seeds at once: `trainer.num_seeds=8` (one vectorized program) against 8 separate `fit()` runs.

    .venv/bin/python benchmarks/seeds.py [mf] [mlp]

For each model, in one process: wall time of both ways, their ratio, and the largest
difference of any seed's validation history between the two (they should agree to
float tolerance).
"""

from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np

from mktlab.config import compose, to_dataclasses
from mktlab.data import load
from mktlab.train import fit

SEEDS = 8
SETTINGS = {
    "mf": ["model=mf", "trainer.epochs=20", "trainer.patience=null"],
    "mlp": ["model=mlp", "trainer.epochs=20", "trainer.patience=null"],
}


def compare(model: str) -> None:
    cfg = to_dataclasses(compose([*SETTINGS[model], "trainer.progress=false", f"trainer.num_seeds={SEEDS}"]))
    data = load(cfg)
    start = time.perf_counter()
    together = fit(cfg, data)
    vectorized = time.perf_counter() - start

    single = dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, num_seeds=1))
    start = time.perf_counter()
    apart = [fit(dataclasses.replace(single, seed=seed), data) for seed in together.seeds]
    separate = time.perf_counter() - start

    gap = 0.0
    for a, b in zip(together.results, apart):
        for row_a, row_b in zip(a.history, b.history):
            gap = max(gap, max(abs(row_a[k] - row_b[k]) for k in row_a if k.startswith("val_")))
    print(f"{model}: {SEEDS} seeds vectorized {vectorized:.1f} s, {SEEDS} separate fit() runs {separate:.1f} s "
          f"-> vectorized is {separate / vectorized:.2f}x faster; largest validation-metric gap {gap:.2e}")


if __name__ == "__main__":
    for name in sys.argv[1:] or list(SETTINGS):
        compare(name)
