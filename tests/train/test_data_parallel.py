"""Data-parallel steps: one CPU device per core, batches split over them, the same update as on one device."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from helpers import VOCAB, click_batch, optim_config, trainer_config
from mktlab.models.lstm.module import ClickLSTM
from mktlab.models.lstm.training import click_loss
from mktlab.train.optim import build_optimizer
from mktlab.train.state import init_state
from mktlab.train.steps import data_parallel_mesh, make_train_step, training_mesh

needs_two_devices = pytest.mark.skipif(len(jax.local_devices()) < 2, reason="one device: this host has a single core")


def test_cpu_devices_follow_the_cores() -> None:
    """`mktlab.train.runtime.setup()` (called once by conftest, before any JAX computation) shows JAX one CPU device per core."""
    import os

    cores = len(os.sched_getaffinity(0))
    assert len(jax.devices("cpu")) == min(cores, 8)


@needs_two_devices
def test_mesh_uses_the_devices_that_split_the_batch() -> None:
    devices = jax.local_devices()[:2]
    assert data_parallel_mesh(1024, devices).devices.size == 2
    assert data_parallel_mesh(7, devices) is None  # 7 rows cannot be halved
    assert data_parallel_mesh(8, devices[:1]) is None
    trainer = trainer_config(batch_size=64, data_parallel=True)
    assert training_mesh(trainer, 1000) is not None
    assert training_mesh(trainer, 33) is None  # the epoch's batch is all 33 rows
    assert training_mesh(dataclasses.replace(trainer, data_parallel=False), 1000) is None


def lstm_state_and_batch():
    model = ClickLSTM(VOCAB, 8, 6, dense=5, use_labels=True, rngs=nnx.Rngs(0))
    tx = build_optimizer(optim_config(lr=0.01))
    graphdef, state = init_state(model, tx)
    history, clicks, lengths, items = click_batch()
    rows = np.arange(6).repeat(2)  # 12 rows: six per device
    arrays = {"history": history[rows], "history_clicks": clicks[rows], "lengths": lengths[rows], "items": items[rows],
              "clicks": np.tile([1.0, 0.0], 6).astype(np.float32)}
    return graphdef, tx, state, jax.tree.map(jnp.asarray, arrays)


@needs_two_devices
def test_split_step_equals_the_one_device_step() -> None:
    graphdef, tx, state, arrays = lstm_state_and_batch()
    mesh = data_parallel_mesh(12)
    assert mesh is not None and mesh.devices.size == 2
    key = jax.random.key(0)
    one, one_metrics = jax.jit(lambda s, b: make_train_step(graphdef, click_loss, tx)(s, b, key=key))(state, arrays)
    split, split_metrics = jax.jit(lambda s, b: make_train_step(graphdef, click_loss, tx, mesh=mesh)(s, b, key=key))(state, arrays)
    np.testing.assert_allclose(split_metrics["loss"], one_metrics["loss"], rtol=1e-6)
    for a, b in zip(jax.tree.leaves(split.params), jax.tree.leaves(one.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    moved = sum(float(jnp.abs(a - b).sum()) for a, b in zip(jax.tree.leaves(split.params), jax.tree.leaves(state.params)))
    assert moved > 0

