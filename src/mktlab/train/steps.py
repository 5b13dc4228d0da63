"""Pure step functions and the scanned epoch.

A step is `step(state, batch, *, key) -> (state, metrics)`; an epoch is one
`jax.lax.scan` of a step over shuffled minibatches, compiled once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, PartitionSpec

from mktlab.train.state import TrainState, merge_module, split_module

Batch = Mapping[str, jax.Array]
Metrics = dict[str, jax.Array]
LossFn = Callable[..., tuple[jax.Array, Metrics]]  # loss_fn(model, batch, *, key) -> (loss, metrics)
Step = Callable[..., tuple[Any, Metrics]]  # step(state, batch, *, key) -> (state, metrics)
BATCH_AXIS = "batch"  # the mesh axis a data-parallel step splits the batch over
START_PREFIX = "start_"  # an epoch reports each loss at its first step under this prefix (the loop's divergence check)


def make_train_step(graphdef: nnx.GraphDef, loss_fn: LossFn, tx: optax.GradientTransformation, *,
                    mesh: Mesh | None = None) -> Step:
    """A supervised step: gradients of `loss_fn` w.r.t. the params, one optax update.

    `loss_fn(model, batch, *, key)` returns the scalar loss and a dict of extra scalar
    metrics; batch statistics a module updates in the forward pass are kept. With a
    `mesh` (see `data_parallel_mesh`) each device takes an equal share of the batch and
    the gradients, metrics and floating-point batch statistics are averaged over the
    devices: the mean loss of the whole batch, computed in parallel.
    """

    def gradients(params: Any, rest: Any, batch: Batch, key: jax.Array) -> tuple[jax.Array, Metrics, Any, Any]:
        def objective(params: Any) -> tuple[jax.Array, tuple[Metrics, Any]]:
            model = merge_module(graphdef, params, rest)
            loss, metrics = loss_fn(model, batch, key=key)
            return loss, (metrics, split_module(model)[2])

        (loss, (metrics, new_rest)), grads = jax.value_and_grad(objective, has_aux=True)(params)
        return loss, metrics, new_rest, grads

    if mesh is not None:
        gradients = _split_over_devices(gradients, mesh)

    def train_step(state: TrainState, batch: Batch, *, key: jax.Array) -> tuple[TrainState, Metrics]:
        loss, metrics, rest, grads = gradients(state.params, state.rest, batch, key)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = state.replace(params=params, rest=rest, opt_state=opt_state, step=state.step + 1)
        return new_state, {"loss": loss, **metrics}

    return train_step


def data_parallel_mesh(batch_size: int, devices: Sequence[jax.Device] | None = None) -> Mesh | None:
    """A one-axis mesh ("batch") over the local devices that split a batch of `batch_size` evenly.

    Uses the largest number of devices, at least two, that divides `batch_size`; None when
    there is only one device (or no such split), and steps then run on one device. On a
    CPU the devices are the host's cores (`enable_cpu_devices`).
    """
    devices = list(jax.local_devices() if devices is None else devices)
    count = next((n for n in range(len(devices), 1, -1) if batch_size % n == 0), 1)
    return Mesh(np.array(devices[:count]), (BATCH_AXIS,)) if count > 1 else None


def training_mesh(trainer: Any, num_examples: int) -> Mesh | None:
    """The mesh a model's step splits its batches over: `data_parallel_mesh` of the batch an epoch
    really uses when `trainer.data_parallel` is on, else None (one device)."""
    if not trainer.data_parallel:
        return None
    return data_parallel_mesh(min(trainer.batch_size, max(num_examples, 1)))


def _split_over_devices(gradients: Callable[..., Any], mesh: Mesh) -> Callable[..., Any]:
    """`gradients(params, rest, batch, key)` with the batch split over `mesh` and the results averaged.

    Each device draws its own dropout masks (the key folded with its index)."""

    def per_device(params: Any, rest: Any, batch: Batch, key: jax.Array) -> Any:
        key = jax.random.fold_in(key, jax.lax.axis_index(BATCH_AXIS))
        loss, metrics, new_rest, grads = gradients(params, rest, batch, key)
        mean = lambda tree: jax.tree.map(  # noqa: E731
            lambda x: jax.lax.pmean(x, BATCH_AXIS) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree
        )
        return mean(loss), mean(metrics), mean(new_rest), mean(grads)

    replicated, split = PartitionSpec(), PartitionSpec(BATCH_AXIS)
    return jax.shard_map(per_device, mesh=mesh, in_specs=(replicated, replicated, split, replicated),
                         out_specs=replicated, check_vma=False)


def num_batches(num_examples: int, batch_size: int) -> int:
    """Full minibatches per epoch (the remainder is reshuffled into later epochs)."""
    return max(num_examples // batch_size, 1)


SHUFFLE_ROUNDS = 8  # Feistel rounds of `shuffled_order`: enough for uniform positions even over a few dozen rows


def _mix32(x: jax.Array) -> jax.Array:
    """A 32-bit integer hash (an xorshift-multiply finalizer): each output bit depends on every input bit."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def shuffled_order(key: jax.Array, n: int) -> jax.Array:
    """A random permutation of `range(n)` (int32), the same for the same `key`.

    A keyed Feistel network permutes the integers of the smallest power-of-two range
    holding `n` (four at least): each round swaps the two halves of the bits and
    XORs one half with a hash of the other and the round's key, a bijection whatever the
    hash. Reading the permuted range in order and keeping the values below `n` gives the
    permutation. It is all elementwise work plus one prefix sum and one search: on a CPU,
    2.2 ms for 80k ratings where sorting random keys took 7 ms of a 21 ms
    matrix-factorization epoch. It works under `vmap` (one order per key).

    The order is pseudorandom, not a uniform draw from all `n!` orders: over keys every
    row is equally likely at every position and every pair of rows equally likely to lead
    or to sit side by side (the tests check this with chi-square tests), which is what
    minibatches need; on a few rows, some whole orders come up more often than others.
    """
    bits = max(2, math.ceil(math.log2(max(n, 2))))  # two bits at least: a one-bit Feistel network is the identity
    if bits > 31:
        raise ValueError(f"cannot shuffle {n} rows with 32-bit indices")
    left_bits, right_bits = bits // 2, bits - bits // 2
    values = jax.lax.iota(jnp.uint32, 1 << bits)
    left, right = values >> right_bits, values & jnp.uint32((1 << right_bits) - 1)
    for round_key in jax.random.bits(key, (SHUFFLE_ROUNDS,), jnp.uint32):
        # (left, right) -> (right, left ^ hash(right)): the halves trade places and widths
        left, right = right, left ^ (_mix32(right ^ round_key) & jnp.uint32((1 << left_bits) - 1))
        left_bits, right_bits = right_bits, left_bits
    permuted = (left << right_bits) | right
    kept = permuted < n
    # the k-th kept value sits where the running count of kept values first reaches k
    # (an associative scan: XLA's CPU cumsum took 1.35 ms for 131k values, this 0.37 ms)
    running = jax.lax.associative_scan(jnp.add, kept.astype(jnp.int32))
    where = jnp.searchsorted(running, jnp.arange(1, n + 1, dtype=jnp.int32))
    return permuted[where].astype(jnp.int32)


def scan_epoch(step: Step, state: Any, arrays: Batch, *, key: jax.Array, batch_size: int) -> tuple[Any, Metrics]:
    """One epoch: shuffle with `key`, run `step` on each full minibatch inside `lax.scan`.

    Returns the new state and each metric averaged over the epoch's steps, plus each loss
    (a metric named `loss` or `*_loss`) at the epoch's first step as `start_<name>`.
    """
    n = jax.tree.leaves(arrays)[0].shape[0]
    batch_size = min(batch_size, n)
    steps = num_batches(n, batch_size)
    shuffle_key, step_key = jax.random.split(key)
    order = shuffled_order(shuffle_key, n)[: steps * batch_size].reshape(steps, batch_size)

    def body(carry: Any, inputs: tuple[jax.Array, jax.Array]) -> tuple[Any, Metrics]:
        index, rows = inputs
        batch = jax.tree.map(lambda a: jnp.take(a, rows, axis=0), arrays)
        return step(carry, batch, key=jax.random.fold_in(step_key, index))

    state, metrics = jax.lax.scan(body, state, (jnp.arange(steps), order))
    means = jax.tree.map(jnp.mean, metrics)
    starts = {f"{START_PREFIX}{name}": values[0] for name, values in metrics.items() if name == "loss" or name.endswith("_loss")}
    return state, {**means, **starts}


def compile_epoch(step: Step, batch_size: int) -> Callable[[Any, Batch, jax.Array], tuple[Any, Metrics]]:
    """`epoch(state, arrays, key)`, jitted, with the arrays passed (not baked in as constants)."""
    return jax.jit(lambda state, arrays, key: scan_epoch(step, state, arrays, key=key, batch_size=batch_size))


__all__ = ["make_train_step", "data_parallel_mesh", "training_mesh", "shuffled_order", "scan_epoch", "compile_epoch", "num_batches", "START_PREFIX"]
