"""Several seeds at once: `trainer.num_seeds=8` (one compiled program) against 8 separate `fit()` runs.

    .venv/bin/python benchmarks/seeds.py [mf] [mlp]

For each model, in one process: the wall time of 8 separate fits and of the 8 seeds in
one program, both with the default `trainer.seed_batch` (1 on a CPU: the seeds take turns
calling the compiled epoch) and with all 8 under `jax.vmap` (`trainer.seed_batch=8`, the
default on an accelerator); each ratio; and the largest difference of any seed's
validation history from its separate run (they should agree to float tolerance).
"""

from __future__ import annotations

import dataclasses
import sys
import time

from mktlab.config import compose, to_dataclasses
from mktlab.data import load
from mktlab.train import fit, seed_list

SEEDS = 8
SETTINGS = {
    "mf": ["model=mf", "trainer.epochs=20", "trainer.patience=null"],
    "mlp": ["model=mlp", "trainer.epochs=20", "trainer.patience=null"],
}


def compare(model: str) -> None:
    cfg = to_dataclasses(compose([*SETTINGS[model], "trainer.progress=false", f"trainer.num_seeds={SEEDS}"]))
    data = load(cfg)
    single = dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, num_seeds=1))
    fit(dataclasses.replace(single, seed=max(seed_list(cfg)) + 1), data)  # untimed: the process's one-off costs (first compile) fall on neither side
    start = time.perf_counter()
    apart = [fit(dataclasses.replace(single, seed=seed), data) for seed in seed_list(cfg)]
    separate = time.perf_counter() - start
    print(f"{model}: {SEEDS} separate fit() runs {separate:.1f} s")

    for label, seed_batch in (("one program, default seed_batch", cfg.trainer.seed_batch), (f"one program, all {SEEDS} under vmap", SEEDS)):
        start = time.perf_counter()
        together = fit(dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, seed_batch=seed_batch)), data)
        seconds = time.perf_counter() - start
        gap = 0.0
        for a, b in zip(together.results, apart):
            for row_a, row_b in zip(a.history, b.history):
                gap = max(gap, max(abs(row_a[k] - row_b[k]) for k in row_a if k.startswith("val_")))
        print(f"{model}: {SEEDS} seeds, {label}: {seconds:.1f} s -> {separate / seconds:.2f}x faster than separate runs;"
              f" largest validation-metric gap {gap:.2e}")


if __name__ == "__main__":
    for name in sys.argv[1:] or list(SETTINGS):
        compare(name)
