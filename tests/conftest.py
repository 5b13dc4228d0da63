"""Shared fixtures: a throwaway MLflow store, config composition, and running `mktlab`.

The helpers themselves live in `tests/helpers.py` (importable from every test module).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.register_assert_rewrite("helpers")

from helpers import Store, assert_rerun_reproduces, composed, run_mktlab  # noqa: E402
from mktlab.train import runtime  # noqa: E402

# The process's one JAX set-up (compile cache, one CPU device per core), before any JAX computation.
runtime.setup()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


@pytest.fixture
def cfg_for():
    """`cfg_for(["model=mf", ...])` -> typed config, as a notebook would get it."""
    return lambda overrides=(): composed(*overrides)


@pytest.fixture
def mktlab_cli(tmp_path: Path):
    return lambda args, **kw: run_mktlab(args, tmp_path, **kw)


@pytest.fixture
def rerun_reproduces(store: Store, tmp_path: Path):
    """`rerun_reproduces(run)`: see `helpers.assert_rerun_reproduces`."""
    return lambda run: assert_rerun_reproduces(store, run, tmp_path)
