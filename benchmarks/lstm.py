"""One training epoch of the LSTM click predictor: mktlab (JAX) against PyTorch (`nn.LSTM`, CPU).

Same data (the training split of the configured click log), same architecture (item
embedding -> LSTM over the masked history -> [final state, target embedding] -> dense
ReLU -> logit), same batch size, sequence length, loss and optimizer (Adam). Both run
after a warm-up (mktlab: one epoch, which compiles it; PyTorch: a few batches). PyTorch
masks the padding two ways, as `nnx.RNN(seq_lengths=...)` does (run every step, take
the state at each history's last item) and with packed sequences; the faster one is
the reference.

    .venv/bin/python benchmarks/lstm.py                       # default config
    .venv/bin/python benchmarks/lstm.py trainer.batch_size=256 model.hidden=128 --epochs 2

Needs the bench extra: `pip install -e '.[bench]'` (torch).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np


def mktlab_epoch_seconds(cfg, data, epochs: int) -> float:
    from mktlab.train.lstm import build_task

    task = build_task(cfg, data)
    state = task.init(jax.random.key(cfg.seed))
    state, metrics = task.train_epoch(state, jax.random.key(1))  # warm-up: compiles the epoch
    jax.block_until_ready(metrics)
    started = time.perf_counter()
    for epoch in range(epochs):
        state, metrics = task.train_epoch(state, jax.random.key(2 + epoch))
        jax.block_until_ready(metrics)
    return (time.perf_counter() - started) / epochs


def torch_epoch_seconds(cfg, data, epochs: int, *, packed: bool, warmup_batches: int = 5) -> float:
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
    started = time.perf_counter()
    for _ in range(epochs):
        run(steps)
    return (time.perf_counter() - started) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. trainer.batch_size=256")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs (after the warm-up)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="PyTorch CPU threads (default: every core)")
    args = parser.parse_args()

    import torch

    from mktlab.config import compose, to_dataclasses
    from mktlab.data import load

    torch.set_num_threads(args.threads)
    cfg = to_dataclasses(compose(["model=lstm", "trainer.progress=false", *args.overrides]))
    data = load(cfg)
    m = cfg.model
    print(f"data: {len(data.train)} training impressions, {data.num_embeddings} item rows, max_len {data.max_len}, "
          f"batch {cfg.trainer.batch_size}; model: embed {m.embed_dim}, hidden {m.hidden}, layers {m.layers}, "
          f"bidirectional {m.bidirectional}, dense {m.dense}, labels {cfg.data.use_labels}")
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform} ({len(jax.devices())} device(s)); "
          f"PyTorch {torch.__version__} on CPU, {torch.get_num_threads()} threads")

    jax_seconds = mktlab_epoch_seconds(cfg, data, args.epochs)
    print(f"mktlab (JAX, scanned epoch):        {jax_seconds:8.3f} s/epoch")
    torch_times = {}
    for packed in ([True] if m.bidirectional else [False, True]):
        name = "packed sequences" if packed else "last-state gather"
        torch_times[name] = torch_epoch_seconds(cfg, data, args.epochs, packed=packed)
        print(f"PyTorch nn.LSTM ({name}): {torch_times[name]:8.3f} s/epoch")
    best_name = min(torch_times, key=torch_times.get)
    ratio = torch_times[best_name] / jax_seconds
    print(f"ratio PyTorch ({best_name}) / mktlab: {ratio:.2f}x  ({'mktlab faster' if ratio > 1 else 'PyTorch faster'}; goal >= 2x)")


if __name__ == "__main__":
    main()
