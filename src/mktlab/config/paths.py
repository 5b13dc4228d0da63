"""Where the project lives: every path mktlab writes is computed from the project root,
never from the working directory, so a notebook in JupyterLab, a test and the runner
all see the same tracking store."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

ROOT_ENV = "MKTLAB_ROOT"


@cache
def project_root() -> Path:
    """The folder holding `conf/` and `pyproject.toml`.

    `MKTLAB_ROOT` wins when set; otherwise the folder above `src/` of this
    (editable) install, then the working directory and its parents.
    """
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).resolve()
    candidates = [Path(__file__).resolve().parents[3], Path.cwd().resolve(), *Path.cwd().resolve().parents]
    for candidate in candidates:
        if (candidate / "conf" / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        "cannot find the mktlab project root (a folder with conf/config.yaml); "
        f"set {ROOT_ENV} to the repository folder"
    )


def conf_dir() -> Path:
    return project_root() / "conf"


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def notebook_stem(notebook: str) -> str:
    """`path/to/analysis.ipynb` -> `analysis` (the experiment a notebook run logs into)."""
    return Path(str(notebook)).stem
