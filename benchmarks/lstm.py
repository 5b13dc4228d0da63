"""One training epoch of the LSTM click predictor: mktlab (JAX) against PyTorch (`nn.LSTM`, CPU).

Same data (the training split of the configured click log), same architecture (item
embedding -> LSTM over the masked history -> [final state, target embedding] -> dense
ReLU -> logit), same batch size, sequence length, loss and optimizer (Adam), full
minibatches of a shuffled epoch on both sides. mktlab runs as configured: by default each
core is a JAX device and takes an equal share of the batch (`trainer.data_parallel`);
`--single-thread` keeps JAX on one device and one thread. PyTorch is timed with one thread and with every core (`--torch-threads`), because
on a busy machine its OpenMP threads can slow it down several times over. All are
warmed up first (mktlab: one epoch, which compiles it; PyTorch: a few batches), then
timed in interleaved rounds so that each meets the same load; the fastest epoch counts.
PyTorch masks the padding as `nnx.RNN(seq_lengths=...)` does (run every step, keep the
state after each history's last item); `--packed` also times packed sequences, and the
fastest PyTorch variant is the reference.

    .venv/bin/python benchmarks/lstm.py                       # default config, 2 rounds
    .venv/bin/python benchmarks/lstm.py --single-thread --torch-threads 1   # one thread each side
    .venv/bin/python benchmarks/lstm.py trainer.batch_size=256 model.hidden=128 --rounds 3 --packed

Needs the bench extra: `pip install -e '.[bench]'` (torch).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import report_ratio, task_epoch  # noqa: E402


def torch_epoch(cfg, data, *, packed: bool, warmup_batches: int = 5):
    """`epoch()`: one PyTorch training epoch per call, after a warm-up of a few batches."""
    import torch
    from torch import nn

    m = cfg.model
    torch.manual_seed(cfg.seed)
    use_labels = cfg.data.use_labels
    directions = 2 if m.bidirectional else 1

    class TorchClickLSTM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(data.num_embeddings, m.embed_dim)
            self.lstm = nn.LSTM(m.embed_dim + int(use_labels), m.hidden, num_layers=m.layers, batch_first=True,
                                bidirectional=m.bidirectional, dropout=m.dropout if m.layers > 1 else 0.0)
            self.dense = nn.Linear(m.hidden * directions + m.embed_dim, m.dense)
            self.dropout = nn.Dropout(m.dropout)
            self.out = nn.Linear(m.dense, 1)

        def forward(self, history, history_clicks, lengths, items):
            x = self.embed(history)
            if use_labels:
                x = torch.cat([x, history_clicks.unsqueeze(-1)], dim=-1)
            if packed:
                seq = nn.utils.rnn.pack_padded_sequence(x, lengths.clamp(min=1), batch_first=True, enforce_sorted=False)
                _, (h, _) = self.lstm(seq)
                state = torch.cat([h[-2], h[-1]], dim=-1) if m.bidirectional else h[-1]
            else:
                outputs, _ = self.lstm(x)
                last = (lengths - 1).clamp(min=0)
                state = outputs[torch.arange(len(lengths)), last]  # forward direction: the state after the last item
                if m.bidirectional:
                    raise SystemExit("the unpacked variant masks the forward direction only; use packed for bidirectional")
            state = state * (lengths > 0).unsqueeze(-1)
            z = self.dropout(torch.relu(self.dense(torch.cat([state, self.embed(items)], dim=-1))))
            return self.out(z).squeeze(-1)

    model = TorchClickLSTM()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, betas=(cfg.optim.b1, cfg.optim.b2), eps=cfg.optim.eps)
    loss_fn = nn.BCEWithLogitsLoss()
    arrays = data.train.arrays()
    tensors = {
        "history": torch.from_numpy(arrays["history"].astype(np.int64)),
        "history_clicks": torch.from_numpy(arrays["history_clicks"]),
        "lengths": torch.from_numpy(arrays["lengths"].astype(np.int64)),
        "items": torch.from_numpy(arrays["items"].astype(np.int64)),
        "clicks": torch.from_numpy(arrays["clicks"]),
    }
    n, batch_size = len(arrays["items"]), min(cfg.trainer.batch_size, len(arrays["items"]))
    steps = max(n // batch_size, 1)  # full batches, as mktlab's scanned epoch

    def run(num_steps: int) -> None:
        order = torch.randperm(n)
        model.train()
        for step in range(num_steps):
            rows = order[step * batch_size : (step + 1) * batch_size]
            batch = {k: v[rows] for k, v in tensors.items()}
            optimizer.zero_grad(set_to_none=True)
            logits = model(batch["history"], batch["history_clicks"], batch["lengths"], batch["items"])
            loss_fn(logits, batch["clicks"]).backward()
            optimizer.step()

    run(warmup_batches)
    return lambda: run(steps)


def main() -> None:
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. trainer.batch_size=256")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds, each one epoch per variant")
    parser.add_argument("--packed", action="store_true", help="also time PyTorch with packed sequences")
    parser.add_argument("--torch-threads", default=f"1,{cores}", help=f"PyTorch thread counts to time (default: 1,{cores})")
    parser.add_argument("--single-thread", action="store_true", help="run XLA on one thread too (default: every core)")
    args = parser.parse_args()
    if args.single_thread:  # XLA reads its flags when JAX starts, so before the import below
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen=false".strip()
        os.environ["MKTLAB_CPU_DEVICES"] = "1"

    import jax
    import torch

    from mktlab.config import compose, to_dataclasses
    from mktlab.data import load
    from mktlab.train.lstm import build_task
    from mktlab.train.steps import training_mesh

    cfg = to_dataclasses(compose(["model=lstm", "trainer.progress=false", *args.overrides]))
    data = load(cfg)
    m = cfg.model
    print(f"data: {len(data.train)} training impressions, {data.num_embeddings} item rows, max_len {data.max_len}, "
          f"batch {cfg.trainer.batch_size}; model: embed {m.embed_dim}, hidden {m.hidden}, layers {m.layers}, "
          f"bidirectional {m.bidirectional}, dense {m.dense}, labels {cfg.data.use_labels}")
    mesh = training_mesh(cfg.trainer, len(data.train))
    print(f"mktlab splits each batch over {mesh.devices.size if mesh is not None else 1} device(s)")
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform} ({1 if args.single_thread else cores} thread(s)); "
          f"PyTorch {torch.__version__} on CPU; {cores} cores")

    epochs = {"mktlab": task_epoch(build_task(cfg, data))}
    epochs["mktlab"]()  # warm-up: compiles the epoch
    for threads in sorted({int(t) for t in args.torch_threads.split(",")}):
        for packed in [True] if m.bidirectional else ([False, True] if args.packed else [False]):
            torch.set_num_threads(threads)
            epoch = torch_epoch(cfg, data, packed=packed)
            epochs[f"PyTorch {'packed' if packed else 'gather'}, {threads} thr"] = (
                lambda epoch=epoch, threads=threads: (torch.set_num_threads(threads), epoch())
            )
    best = {name: float("inf") for name in epochs}
    for round_ in range(1, args.rounds + 1):
        for name, epoch in epochs.items():
            started = time.perf_counter()
            epoch()
            best[name] = min(best[name], time.perf_counter() - started)
            print(f"round {round_}: {name:28s} {time.perf_counter() - started:8.2f} s/epoch", flush=True)
    torch_name = min((n for n in best if n != "mktlab"), key=best.get)
    report_ratio(f"one training epoch, fastest of {args.rounds} (vs the fastest PyTorch: {torch_name})", best["mktlab"], best[torch_name])
    print(f"ratio PyTorch / mktlab: {best[torch_name] / best['mktlab']:.2f}x (goal >= 2x)")


if __name__ == "__main__":
    main()
