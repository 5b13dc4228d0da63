"""Compiled programs kept for the life of the process, so the next fit of the same shapes reuses them.

`jax.jit` caches a program per function object: a task builder that makes new jitted
closures for every fit traces and lowers them again, even when the persistent compile cache
spares the XLA compile (for a tiny MF fit, most of its time). A sweep's next job in a warm
kernel, a notebook's second fit and the contract tests' repeated fits get them from here.

The key must name everything the programs capture (graph, hyperparameters, sizes); data and
seeds must reach them as arguments, never as captured values. A result that depends on nothing
a sweep varies (MF's ranking head, the same for every rating-head setting) may be kept here
too, keyed by a fingerprint of all its inputs.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")
CAPACITY = 16  # sets of programs kept; the least recently used go first

_programs: OrderedDict[Hashable, object] = OrderedDict()


def reused(key: Hashable, build: Callable[[], T]) -> T:
    """`build()`'s programs for `key`, built on first use and kept for the next."""
    if key in _programs:
        _programs.move_to_end(key)
        return _programs[key]  # type: ignore[return-value]
    built = _programs[key] = build()
    while len(_programs) > CAPACITY:
        _programs.popitem(last=False)
    return built


def kept() -> int:
    """How many sets of programs are kept."""
    return len(_programs)


def clear() -> None:
    """Forget every kept program (their memory goes with the last reference)."""
    _programs.clear()
