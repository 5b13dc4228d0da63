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
