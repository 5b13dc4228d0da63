"""GAN: one training epoch of the same generator and discriminator in mktlab (JAX) and PyTorch, on the CPU.

    .venv/bin/python benchmarks/gan.py                   # needs the bench extra: pip install -e '.[bench]'
    .venv/bin/python benchmarks/gan.py --single-thread   # both on one thread, timed in CPU seconds
    .venv/bin/python benchmarks/gan.py trainer.batch_size=128   # Hydra overrides of the GAN config

Both sides run the default GAN config on the default data (8x8 digits): the same layers,
the same weights (copied from the mktlab networks into the PyTorch ones, and checked to
give the same outputs), the same batch size, Adam settings and loss (`model.loss`: hinge,
or non-saturating with label smoothing), one discriminator update then one generator
update per minibatch, and what the config adds: the generator's weight average updated
after every generator step (`model.g_ema_decay`, with `torch._foreach_lerp_` on the
PyTorch side), spectral normalization of the discriminator (`model.d_spectral_norm`,
PyTorch's `spectral_norm` parametrization with the same power iterate), the R1 penalty
(`model.r1_gamma`, double backward on both sides). The DCGAN of before is the overrides in
`conf/model/gan.yaml`'s header, e.g.

    .venv/bin/python benchmarks/gan.py --single-thread model.loss=ns model.g_ema_decay=null model.r1_gamma=0 \
        optim.generator.b1=0.5 optim.generator.b2=0.999 optim.discriminator.b1=0.5 optim.discriminator.b2=0.999

A second row repeats the comparison at 28x28 (MNIST-sized images; random pixels, since
the timing does not depend on them). Epochs of the two run in interleaved rounds after a
warm-up epoch each (the mktlab one includes XLA's compilation); each side's time is its
fastest epoch.

By default the times are wall-clock seconds with each library's default threading, and
PyTorch counts with its faster setting of {default threads, one thread} (on a busy
machine its threads can wait on each other). `--single-thread` runs both on one thread
and times CPU seconds of the process, which other processes on a shared machine barely
disturb.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

SINGLE_THREAD = "--single-thread" in sys.argv
if SINGLE_THREAD:  # must precede JAX's start
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from common import best_of_interleaved, report_ratio, task_epoch  # noqa: E402

from mktlab import session  # noqa: E402
from mktlab.data.images import ImageData, ImageSplit  # noqa: E402
from mktlab.models import registry  # noqa: E402
from mktlab.models.gan.training import build_training  # noqa: E402
from mktlab.train import runtime  # noqa: E402
from mktlab.train.ema import EMA_WARMUP  # noqa: E402
from mktlab.train.state import merge_module  # noqa: E402

ROUNDS = 7  # interleaved timed epochs per side, after one warm-up epoch each


def torch_twins(training, state):
    """PyTorch copies of the mktlab generator and discriminator, with the same weights."""
    import torch
    from torch import nn

    g_jax = merge_module(training.g_graphdef, state.g.params, state.g.rest)
    d_jax = merge_module(training.d_graphdef, state.d.params, state.d.rest)
    t = lambda a: torch.from_numpy(np.array(a, dtype=np.float32))  # noqa: E731
    conv_weight = lambda k: t(k).permute(3, 2, 0, 1).contiguous()  # (k, k, in, out) -> (out, in, k, k)  # noqa: E731
    transposed_weight = lambda k: t(k).permute(2, 3, 0, 1).contiguous()  # -> (in, out, k, k)  # noqa: E731
    latent, base = g_jax.latent_dim, g_jax.base
    wide = g_jax.norm0.scale.shape[0]
    features = g_jax.norm1.scale.shape[0]

    class G(nn.Module):
        def __init__(self):
            super().__init__()
            self.project = nn.Linear(latent, base * base * wide, bias=False)
            self.norm0 = nn.BatchNorm2d(wide, momentum=0.1, eps=1e-5)  # flax momentum 0.9 = torch 0.1
            self.up1 = nn.ConvTranspose2d(wide, features, 4, 2, 1, bias=False)
            self.norm1 = nn.BatchNorm2d(features, momentum=0.1, eps=1e-5)
            self.up2 = nn.ConvTranspose2d(features, 1, 4, 2, 1)

        def forward(self, z):
            x = self.project(z).view(-1, base, base, wide).permute(0, 3, 1, 2)  # mktlab reshapes channels-last
            x = torch.relu(self.norm0(x))
            x = torch.relu(self.norm1(self.up1(x)))
            return torch.tanh(self.up2(x))

    d_features = d_jax.down1.kernel.shape[-1]
    spectral = d_jax.down1.spectral_v is not None

    class D(nn.Module):
        def __init__(self):
            super().__init__()
            self.down1 = nn.Conv2d(1, d_features, 4, 2, 1)
            self.down2 = nn.Conv2d(d_features, 2 * d_features, 4, 2, 1)
            self.logit = nn.Linear(base * base * 2 * d_features, 1)
            if spectral:  # one power iteration per training forward, as mktlab's layers
                for name in ("down1", "down2", "logit"):
                    setattr(self, name, nn.utils.parametrizations.spectral_norm(getattr(self, name)))

        def forward(self, x):
            x = nn.functional.leaky_relu(self.down1(x), 0.2)
            x = nn.functional.leaky_relu(self.down2(x), 0.2)
            return self.logit(x.permute(0, 2, 3, 1).reshape(x.shape[0], -1))[:, 0]  # flattened channels-last

    g, d = G(), D()
    with torch.no_grad():
        g.project.weight.copy_(t(g_jax.project.kernel[...]).T)
        for name in ("norm0", "norm1"):
            norm_t, norm_j = getattr(g, name), getattr(g_jax, name)
            norm_t.weight.copy_(t(norm_j.scale[...]))
            norm_t.bias.copy_(t(norm_j.bias[...]))
        g.up1.weight.copy_(transposed_weight(g_jax.up1.kernel[...]))
        g.up2.weight.copy_(transposed_weight(g_jax.up2.kernel[...]))
        g.up2.bias.copy_(t(g_jax.up2.bias[...]))
        weights = {name: conv_weight(getattr(d_jax, name).kernel[...]) for name in ("down1", "down2")}
        weights["logit"] = t(d_jax.logit.kernel[...]).T
        for name, weight in weights.items():
            layer = getattr(d, name)
            if spectral:  # the unnormalized weight, and mktlab's power iterate (torch's v, in torch's input order)
                layer.parametrizations.weight.original.copy_(weight)
                v = np.asarray(getattr(d_jax, name).spectral_v[...])
                if name != "logit":  # mktlab flattens (k, k, in), torch (in, k, k)
                    k, channels = getattr(d_jax, name).kernel.shape[0], getattr(d_jax, name).kernel.shape[2]
                    v = v.reshape(k, k, channels).transpose(2, 0, 1).reshape(-1)
                layer.parametrizations.weight[0]._v.copy_(t(v))
            else:
                layer.weight.copy_(weight)
            layer.bias.copy_(t(getattr(d_jax, name).bias[...]))
    return g, d, g_jax, d_jax


def check_same_networks(g, d, g_jax, d_jax, latent: int, size: int) -> float:
    """Largest output difference of the twins on the same inputs (both in training mode: the mktlab
    generator called with a key, batch norm on the batch's statistics)."""
    import torch

    z = np.random.default_rng(0).normal(size=(16, latent)).astype(np.float32)
    x = np.random.default_rng(1).uniform(-1, 1, size=(16, size, size, 1)).astype(np.float32)
    with torch.no_grad():
        g_out = g(torch.from_numpy(z)).permute(0, 2, 3, 1).numpy()
        d_out = d(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    # on copies: the check's forward passes must not move the twins' batch statistics or power iterates
    g_jax, d_jax = nnx.clone(g_jax), nnx.clone(d_jax)
    ours_g, ours_d = np.asarray(g_jax(z, key=jax.random.key(0))), np.asarray(d_jax(x))
    return float(max(np.abs(g_out - ours_g).max(), np.abs(d_out - ours_d).max()))


def torch_epoch(cfg, training, state, images: np.ndarray):
    """One epoch of the PyTorch twins as a callable, and the twins' largest output difference from mktlab's networks."""
    import torch
    from torch.nn.functional import binary_cross_entropy_with_logits as bce, softplus

    torch.manual_seed(0)
    g, d, g_jax, d_jax = torch_twins(training, state)
    difference = check_same_networks(g, d, g_jax, d_jax, cfg.model.latent_dim, images.shape[1])
    g, d, _, _ = torch_twins(training, state)  # fresh twins: the check's passes moved their running statistics
    m, g_opt, d_opt = cfg.model, cfg.optim.generator, cfg.optim.discriminator
    opt_g = torch.optim.Adam(g.parameters(), lr=g_opt.lr, betas=(g_opt.b1, g_opt.b2), eps=g_opt.eps)
    opt_d = torch.optim.Adam(d.parameters(), lr=d_opt.lr, betas=(d_opt.b1, d_opt.b2), eps=d_opt.eps)
    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    batch, steps, latent = training.batch_size, training.steps_per_epoch, m.latent_dim
    real_target = torch.full((batch,), 1.0 - m.label_smoothing)
    fake_target = torch.zeros(batch)
    # the generator's average: its parameters and batch-norm running statistics, as mktlab's `g_ema`
    averaged = [v for v in [*g.parameters(), *g.buffers()] if v.dtype.is_floating_point]
    ema = [v.detach().clone() for v in averaged]
    g_updates = 0

    def d_objective(real, fake):
        if m.r1_gamma > 0:
            real = real.detach().requires_grad_(True)
        logits = d(torch.cat([real, fake]))  # one pass for both halves, as mktlab does
        if m.loss == "hinge":
            loss = torch.relu(1 - logits[:batch]).mean() + torch.relu(1 + logits[batch:]).mean()
        else:
            loss = bce(logits[:batch], real_target) + bce(logits[batch:], fake_target)
        if m.r1_gamma > 0:
            (grad,) = torch.autograd.grad(logits[:batch].sum(), real, create_graph=True)
            loss = loss + 0.5 * m.r1_gamma * grad.pow(2).flatten(1).sum(1).mean()
        return loss

    def epoch():
        nonlocal g_updates
        order = torch.randperm(len(data))
        for s in range(steps):
            real = data[order[s * batch : (s + 1) * batch]]
            fake = g(torch.randn(batch, latent)).detach()
            d_loss = d_objective(real, fake)
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            d.requires_grad_(False)  # the generator step needs no discriminator gradients
            logits = d(g(torch.randn(batch, latent)))
            g_loss = -logits.mean() if m.loss == "hinge" else softplus(-logits).mean()
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            d.requires_grad_(True)
            if m.g_ema_decay is not None:
                decay = min(m.g_ema_decay, (1 + g_updates) / (EMA_WARMUP + g_updates))  # mktlab.train.ema.ema_decay
                with torch.no_grad():
                    torch._foreach_lerp_(ema, averaged, 1 - decay)
            g_updates += 1

    return epoch, difference


def compare(cfg, data: ImageData, label: str) -> float:
    """Interleaved rounds of one mktlab epoch and one PyTorch epoch at each thread setting.

    PyTorch counts with its faster thread setting (its default, or one thread: on a busy
    machine its default threads can wait on each other). Returns the ratio of the fastest
    epochs, PyTorch / mktlab.
    """
    import torch

    training = build_training(cfg, data)
    state = training.init(jax.random.key(0))  # the same key as task_epoch's: the twins start from these weights
    theirs, difference = torch_epoch(cfg, training, state, data.train.images)
    default_threads = torch.get_num_threads()
    settings = [1] if SINGLE_THREAD else sorted({default_threads, 1}, reverse=True)

    def torch_with(threads: int):
        def epoch():
            torch.set_num_threads(threads)
            theirs()
        return epoch

    fns = {"mktlab": task_epoch(SimpleNamespace(init=training.init, train_epoch=training.epoch)),
           **{f"torch_{n}": torch_with(n) for n in settings}}
    times = best_of_interleaved(fns, ROUNDS, clock=time.process_time if SINGLE_THREAD else time.perf_counter)
    torch.set_num_threads(default_threads)
    best_torch = min(settings, key=lambda n: times[f"torch_{n}"])
    ours, theirs_s = times["mktlab"], times[f"torch_{best_torch}"]
    unit = "CPU ms, one thread" if SINGLE_THREAD else "ms"
    print(f"{label}: {len(data.train)} images of {data.image_size}x{data.image_size}, batch {training.batch_size}, "
          f"{training.steps_per_epoch} D+G steps per epoch; twins' largest output difference {difference:.1e}")
    print("  fastest of %d epochs (%s): %s" % (ROUNDS, unit, ", ".join(f"{k} {v * 1000:.1f}" for k, v in times.items())))
    report_ratio(f"  one epoch ({label}; PyTorch with {best_torch} thread{'s' if best_torch > 1 else ''})", ours, theirs_s)
    return theirs_s / ours


def main() -> None:
    import torch

    overrides = [a for a in sys.argv[1:] if a != "--single-thread"]
    runtime.setup()  # before the first JAX computation: the compile cache and one CPU device per core
    cfg = registry.typed(registry.compose(["model=gan", "trainer.progress=false", *overrides]))
    data = session.load(cfg)
    m = cfg.model
    print(f"config: loss {m.loss}, R1 {m.r1_gamma}, generator average {m.g_ema_decay}, spectral norm {m.d_spectral_norm}, "
          f"Adam b1/b2 {cfg.optim.generator.b1}/{cfg.optim.generator.b2}")
    print(f"devices: {jax.devices()}  torch {torch.__version__}, threads: {torch.get_num_threads()}")
    ratio = compare(cfg, data, f"default config on {cfg.data.name}")
    rng = np.random.default_rng(0)
    mnist_sized = rng.uniform(-1, 1, size=(1024, 28, 28, 1)).astype(np.float32)
    split = ImageSplit(mnist_sized, np.zeros(len(mnist_sized), np.int32))
    compare(cfg, ImageData(split, split, split, split, split, ("0",), source="random 28x28"), "28x28 images")
    print(f"goal (mktlab at least 2x faster on the default config): {'met' if ratio >= 2 else 'not met'} ({ratio:.1f}x)")


if __name__ == "__main__":
    main()
