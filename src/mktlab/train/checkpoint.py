"""Saving and restoring module parameters: `params.npz` plus `module.json` (how to rebuild)."""

from __future__ import annotations

import json
from pathlib import Path
from pkgutil import resolve_name
from typing import Any

import jax
import numpy as np
from flax import nnx

PARAMS_FILE = "params.npz"
META_FILE = "module.json"


def _flat_state(module: nnx.Module) -> tuple[list[str], list[Any], Any]:
    leaves, treedef = jax.tree_util.tree_flatten_with_path(nnx.state(module))
    return [jax.tree_util.keystr(path) for path, _ in leaves], [leaf for _, leaf in leaves], treedef


def save_module(module: nnx.Module, directory: str | Path, *, kwargs: dict[str, Any]) -> Path:
    """Write the module's variables and the constructor call that rebuilds it.

    Args:
        module: the module to save.
        directory: created if missing.
        kwargs: the JSON-serializable constructor arguments (without `rngs`).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names, leaves, _ = _flat_state(module)
    np.savez(directory / PARAMS_FILE, **{name: np.asarray(leaf) for name, leaf in zip(names, leaves)})
    cls = type(module)
    (directory / META_FILE).write_text(json.dumps({"class": f"{cls.__module__}:{cls.__qualname__}", "kwargs": kwargs}, indent=2))
    return directory


def load_module(directory: str | Path) -> nnx.Module:
    """Rebuild a module saved by `save_module`."""
    directory = Path(directory)
    meta = json.loads((directory / META_FILE).read_text())
    module = resolve_name(meta["class"])(**meta["kwargs"], rngs=nnx.Rngs(0))
    names, _, treedef = _flat_state(module)
    with np.load(directory / PARAMS_FILE) as stored:
        missing = [n for n in names if n not in stored]
        if missing:
            raise ValueError(f"{directory / PARAMS_FILE} lacks {missing[:3]}: it was saved from another module")
        leaves = [stored[n] for n in names]
    nnx.update(module, jax.tree_util.tree_unflatten(treedef, leaves))
    return module
