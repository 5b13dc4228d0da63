"""One training epoch of the LSTM click predictor: mktlab (JAX) against PyTorch (`nn.LSTM`, CPU).

Same data (the training split of the configured click log), same architecture (item
embedding -> LSTM over the masked history -> [pooled outputs (last state, mean or the
target's DIN-style attention), target embedding, item feature columns] -> dense ReLU ->
logit, plus the user-item affinity term over the longer history and the target's attention
over it when configured), same batch size, sequence length, loss and optimizer (Adam), full
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


def torch_epoch(cfg, data, arrays, *, packed: bool, warmup_batches: int = 5):
    """`epoch()`: one PyTorch training epoch per call over the model inputs `arrays`, after a warm-up of a few batches."""
    import torch
    from torch import nn

    m = cfg.model
    torch.manual_seed(cfg.seed)
    use_labels = cfg.data.use_labels
    directions = 2 if m.bidirectional else 1
    width = m.hidden * directions
    num_features = arrays["features"].shape[1] if "features" in arrays else 0
    long = "long_history" in arrays

    class Attention(nn.Module):  # DIN-style, as mktlab.models.lstm.module.TargetAttention
        def __init__(self, width: int) -> None:
            super().__init__()
            self.query = nn.Linear(m.embed_dim, width)
            self.hidden = nn.Linear(4 * width, m.attention_units)
            self.score = nn.Linear(m.attention_units, 1)

        def forward(self, outputs, mask, target):
            q = self.query(target).unsqueeze(1).expand_as(outputs)
            logits = self.score(torch.relu(self.hidden(torch.cat([outputs, q, outputs * q, outputs - q], dim=-1)))).squeeze(-1)
            weights = torch.softmax(logits.masked_fill(~mask, -1e9), dim=-1) * mask
            return torch.einsum("bt,btd->bd", weights, outputs)

    class TorchClickLSTM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(data.num_embeddings, m.embed_dim)
            self.lstm = nn.LSTM(m.embed_dim + int(use_labels), m.hidden, num_layers=m.layers, batch_first=True,
                                bidirectional=m.bidirectional, dropout=m.dropout if m.layers > 1 else 0.0)
            pooled = width * (2 if m.pooling == "last_attention" else 1)
            self.attention = Attention(width) if "attention" in m.pooling else None
            self.long_attention = Attention(m.embed_dim + 1) if m.long_attention else None
            pooled += m.embed_dim + 1 if m.long_attention else 0
            if m.affinity_dim:
                self.affinity_history = nn.Embedding(2 * data.num_embeddings, m.affinity_dim)
                self.affinity_target = nn.Embedding(data.num_embeddings, m.affinity_dim)
            self.dense = nn.Linear(pooled + m.embed_dim + num_features, m.dense)
            self.dropout = nn.Dropout(m.dropout)
            self.out = nn.Linear(m.dense, 1)

        def forward(self, history, history_clicks, lengths, items, features=None, long_history=None, long_clicks=None, long_lengths=None):
            if long_history is None:
                long_history, long_clicks, long_lengths = history, history_clicks, lengths
            target = self.embed(items)
            x = self.embed(history)
            if use_labels:
                x = torch.cat([x, history_clicks.unsqueeze(-1)], dim=-1)
            outputs = None
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
            parts = [state]
            if m.pooling != "last":
                if outputs is None:
                    raise SystemExit(f"model.pooling={m.pooling} reads every output: run without --packed")
                mask = torch.arange(history.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
                if m.pooling == "mean":
                    parts = [(outputs * mask.unsqueeze(-1)).sum(1) / lengths.clamp(min=1).unsqueeze(-1)]
                else:
                    attended = self.attention(outputs, mask, target)
                    parts = [attended] if m.pooling == "attention" else [state, attended]
            if self.long_attention is not None:
                long_mask = torch.arange(long_history.shape[1]).unsqueeze(0) < long_lengths.unsqueeze(1)
                seen = torch.cat([self.embed(long_history), long_clicks.unsqueeze(-1)], dim=-1)
                parts.append(self.long_attention(seen, long_mask, target))
            parts.append(target)
            if features is not None:
                parts.append(features)
            z = self.dropout(torch.relu(self.dense(torch.cat(parts, dim=-1))))
            logits = self.out(z).squeeze(-1)
            if m.affinity_dim:
                long_mask = (torch.arange(long_history.shape[1]).unsqueeze(0) < long_lengths.unsqueeze(1)).float()
                rows = self.affinity_history(2 * long_history + (long_clicks > 0.5).long() * int(use_labels))
                user = (rows * long_mask.unsqueeze(-1)).sum(1) / long_lengths.clamp(min=1).float().sqrt().unsqueeze(-1)
                logits = logits + (user * self.affinity_target(items)).sum(-1)
            return logits

    model = TorchClickLSTM()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, betas=(cfg.optim.b1, cfg.optim.b2), eps=cfg.optim.eps)
    loss_fn = nn.BCEWithLogitsLoss()
    tensors = {k: torch.from_numpy(v.astype(np.int64) if v.dtype.kind in "iu" else v) for k, v in arrays.items()}
    n, batch_size = len(arrays["items"]), min(cfg.trainer.batch_size, len(arrays["items"]))
    steps = max(n // batch_size, 1)  # full batches, as mktlab's scanned epoch

    def run(num_steps: int) -> None:
        order = torch.randperm(n)
        model.train()
        for step in range(num_steps):
            rows = order[step * batch_size : (step + 1) * batch_size]
            batch = {k: v[rows] for k, v in tensors.items()}
            optimizer.zero_grad(set_to_none=True)
            logits = model(batch["history"], batch["history_clicks"], batch["lengths"], batch["items"], batch.get("features"),
                           batch.get("long_history"), batch.get("long_clicks"), batch.get("long_lengths"))
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

    from mktlab.models import registry
    from mktlab.models.lstm.training import build_task, model_inputs
    from mktlab.train.steps import training_mesh

    cfg = registry.typed(registry.compose(["model=lstm", "trainer.progress=false", *args.overrides]))
    data = registry.load_data(cfg)
    arrays = model_inputs(cfg, data, data.train)
    m = cfg.model
    print(f"data: {len(data.train)} training impressions, {data.num_embeddings} item rows, max_len {data.max_len}, "
          f"batch {cfg.trainer.batch_size}; model: embed {m.embed_dim}, hidden {m.hidden}, layers {m.layers}, "
          f"bidirectional {m.bidirectional}, dense {m.dense}, labels {cfg.data.use_labels}, pooling {m.pooling}, "
          f"item features {m.item_features}, affinity {m.affinity_dim}, long attention {m.long_attention} (long_len {cfg.data.long_len})")
    mesh = training_mesh(cfg.trainer, len(data.train))
    print(f"mktlab splits each batch over {mesh.devices.size if mesh is not None else 1} device(s)")
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform} ({1 if args.single_thread else cores} thread(s)); "
          f"PyTorch {torch.__version__} on CPU; {cores} cores")

    epochs = {"mktlab": task_epoch(build_task(cfg, data))}
    epochs["mktlab"]()  # warm-up: compiles the epoch
    for threads in sorted({int(t) for t in args.torch_threads.split(",")}):
        for packed in [True] if m.bidirectional else ([False, True] if args.packed else [False]):
            torch.set_num_threads(threads)
            epoch = torch_epoch(cfg, data, arrays, packed=packed)
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
