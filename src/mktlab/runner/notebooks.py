"""Which notebook a run executes: the model's own, or a notebook of one's own (`notebook=...`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mktlab.models import registry


def notebook_path(config: Mapping[str, Any]) -> Path:
    """The notebook a run executes: `notebook=...` when set, else the model's own."""
    if config.get("notebook"):
        notebook = Path(config["notebook"]).expanduser().resolve()
    else:
        notebook = registry.get(config["model"]["name"]).notebook_path()
    if not notebook.is_file():
        raise FileNotFoundError(f"the notebook {notebook} does not exist")
    return notebook
