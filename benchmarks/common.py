"""Helpers shared by the benchmarks: timing and printing ratios."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """The fastest of `repeats` timed calls of `fn` (seconds), after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def report_ratio(label: str, ours: float, theirs: float, *, theirs_name: str = "PyTorch") -> str:
    line = f"{label}: mktlab {ours * 1000:.1f} ms, {theirs_name} {theirs * 1000:.1f} ms -> mktlab is {theirs / ours:.1f}x faster"
    print(line)
    return line


def median(values: list[float]) -> float:
    return statistics.median(values)


def task_epoch(task):
    """One compiled epoch of a `TrainTask` per call (`task.train_epoch`, as `fit` runs it), waiting for the result."""
    import jax

    state = task.init(jax.random.key(0))
    keys = iter(range(1_000_000))

    def epoch():
        nonlocal state
        state, metrics = task.train_epoch(state, jax.random.key(next(keys)))
        jax.block_until_ready((state, metrics))

    return epoch


def best_of_interleaved(fns: dict[str, Callable[[], object]], rounds: int = 10, *,
                        clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """The fastest call of each function (seconds) over `rounds` rounds that call each once in turn, after one
    untimed warm-up call each: on a busy machine every side meets the same load. `clock=time.process_time`
    counts the process's CPU seconds instead of wall-clock seconds."""
    for fn in fns.values():
        fn()
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = clock()
            fn()
            best[name] = min(best[name], clock() - start)
    return best
