"""What produced a run: code, environment, data and randomness, recorded as tags and artifacts.

Nothing secret leaves the process: config values under keys that name credentials, and
passwords inside URIs, are masked before anything is logged; environment variables are
never logged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import platform
import re
import subprocess
import time
from functools import cache
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mktlab.config.secrets import MASK, mask_secrets, scrub_text, secret_values

VERSIONED_PACKAGES = ("jax", "jaxlib", "flax", "optax", "mlflow", "papermill", "hydra-core", "numpy", "scikit-learn")


# --------------------------------------------------------------------------- code


def _git(root: Path, *args: str, ok_codes: tuple[int, ...] = (0,)) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode in ok_codes else None


# Untracked files that look like credentials never reach the provenance diff (listed as left out instead).
SECRET_FILES = re.compile(
    r"(^|/)(\.env(\..*)?|\.netrc|\.pgpass|\.pypirc|id_(rsa|dsa|ecdsa|ed25519)[^/]*|[^/]*\.(pem|key|p12|pfx|keystore|jks)"
    r"|[^/]*(credential|secret|password|token)[^/]*)$",
    re.I,
)
MAX_UNTRACKED_BYTES = 1_000_000  # an untracked file larger than this is left out of the diff (data, not code)


def untracked_files(root: Path) -> tuple[list[str], list[str]]:
    """Untracked, not git-ignored files: (those the diff holds, `name (why)` of those left out)."""
    listed = _git(root, "ls-files", "--others", "--exclude-standard", "-z") or ""
    kept, left_out = [], []
    for name in filter(None, listed.split("\0")):
        path = root / name
        if SECRET_FILES.search(name):
            left_out.append(f"{name} (looks like a secret)")
        elif path.is_file() and path.stat().st_size > MAX_UNTRACKED_BYTES:
            left_out.append(f"{name} (over {MAX_UNTRACKED_BYTES // 1_000_000} MB)")
        else:
            kept.append(name)
    return kept, left_out


CODE_STATE_SECONDS = 60.0  # a sweep's jobs, a minute apart at most, share one reading of the code
_code_states: dict[Path, tuple[float, tuple[dict[str, str], str]]] = {}


def code_state(root: Path) -> tuple[dict[str, str], str]:
    """`read_code_state(root)`, read again when older than a minute (the jobs of a sweep share it)."""
    root = Path(root)
    cached = _code_states.get(root)
    if cached is None or time.monotonic() - cached[0] > CODE_STATE_SECONDS:
        _code_states[root] = (time.monotonic(), read_code_state(root))
    tags, diff = _code_states[root][1]
    return dict(tags), diff


def read_code_state(root: Path) -> tuple[dict[str, str], str]:
    """Git tags (commit, branch, dirty flag) and the uncommitted diff of the project at `root`.

    The diff holds tracked changes against HEAD and the content of untracked files, except
    git-ignored ones, ones that look like credentials (`.env*`, keys, credentials files) and
    large ones: those are named at the top of the diff as left out.
    """
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return {"mktlab.git.commit": "none"}, ""
    branch = (_git(root, "rev-parse", "--abbrev-ref", "HEAD") or "").strip()
    status = _git(root, "status", "--porcelain") or ""
    diff = _git(root, "diff", "HEAD", "--binary") or ""
    kept, left_out = untracked_files(root)
    for name in kept:
        diff += _git(root, "diff", "--no-index", "--binary", "/dev/null", name, ok_codes=(0, 1)) or ""  # 1: they differ
        if not diff.endswith("\n"):
            diff += "\n"
    if left_out:
        diff = "".join(f"# left out of this diff: {entry}\n" for entry in left_out) + diff
    tags = {
        "mlflow.source.git.commit": commit.strip(),
        "mktlab.git.commit": commit.strip(),
        "mktlab.git.branch": branch,
        "mktlab.git.dirty": str(bool(status.strip())).lower(),
    }
    return tags, diff


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"


# --------------------------------------------------------------------------- environment


@cache
def package_versions() -> dict[str, str]:
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def environment_tags() -> dict[str, str]:
    """Python, key package versions, platform and CPU (no JAX import: see `jax_tags`)."""
    tags = {f"mktlab.version.{name}": version for name, version in package_versions().items()}
    tags.update(
        {
            "mktlab.version.python": platform.python_version(),
            "mktlab.platform": platform.platform(),
            "mktlab.cpu": _cpu_name(),
        }
    )
    return tags


@cache
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@cache
def frozen_requirements() -> str:
    """`pip freeze`-style list of every installed distribution (from package metadata, no subprocess)."""
    lines = set()
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            lines.add(f"{name}=={dist.version}")
    return "\n".join(sorted(lines, key=str.lower)) + "\n"


def jax_tags(seed: int) -> dict[str, str]:
    """JAX backend, devices, PRNG implementation and the seed (called where JAX already runs)."""
    import jax

    return {
        "mktlab.jax.backend": jax.default_backend(),
        "mktlab.jax.devices": ", ".join(str(d) for d in jax.devices()),
        "mktlab.prng_impl": str(jax.config.jax_default_prng_impl),
        "mktlab.seed": str(seed),
    }


# --------------------------------------------------------------------------- data


def fingerprint(value: Any) -> str:
    """sha256 over the content of a split: arrays, frames and dataclasses of them, field by field."""
    digest = hashlib.sha256()
    _update(digest, value)
    return digest.hexdigest()


def _update(digest: Any, value: Any) -> None:
    import pandas as pd

    if isinstance(value, np.ndarray):
        digest.update(f"{value.dtype}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes() if value.dtype != object else repr(value.tolist()).encode())
    elif isinstance(value, (pd.DataFrame, pd.Series)):
        digest.update(pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes())
        digest.update(repr(list(getattr(value, "columns", [value.name]))).encode())
    elif dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            digest.update(field.name.encode())
            _update(digest, getattr(value, field.name))
    elif isinstance(value, Mapping):
        for key in sorted(value, key=str):
            digest.update(str(key).encode())
            _update(digest, value[key])
    elif isinstance(value, (list, tuple)):
        for item in value:
            _update(digest, item)
    else:
        digest.update(repr(value).encode())


SPLITS = ("train", "val", "test")


def split_fingerprints(data: Any) -> dict[str, str]:
    """Fingerprint of each split a data set has (`train`, `val`, `test` attributes)."""
    return {name: fingerprint(getattr(data, name)) for name in SPLITS if getattr(data, name, None) is not None}


def _num_records(split: Any) -> int | None:
    try:
        return len(split)
    except TypeError:
        return None


UNIQUE_VIOLATIONS = ("IntegrityError", "UniqueViolation", "unique constraint")  # SQLite's, PostgreSQL's and MySQL's words for it


def _log_inputs(client: Any, run_id: str, inputs: list, attempts: int = 3) -> None:
    """`client.log_inputs`, again when a parallel job of the same experiment added the same data set
    between the store's check for it and its insert (the store rolls the loser back; the next
    attempt finds the data set and links it)."""
    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            client.log_inputs(run_id, datasets=inputs)
            return
        except MlflowException as error:
            lost_a_race = any(word.lower() in str(error).lower() for word in UNIQUE_VIOLATIONS)
            if not lost_a_race or attempt == attempts - 1:
                raise


def log_data(tracker: Any, data: Any, *, name: str) -> dict[str, str]:
    """`mlflow.log_input` for each split of `data`, with its content fingerprint and source."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    source = str(getattr(data, "source", "unknown"))
    prints = split_fingerprints(data)
    inputs = []
    for split, digest in prints.items():
        tags = {"source": mask_secrets(source), "sha256": digest, "split": split}
        records = _num_records(getattr(data, split))
        if records is not None:
            tags["records"] = str(records)
        dataset = MetaDataset(source=CodeDatasetSource(tags=tags), name=f"{name}-{split}", digest=digest[:32])
        inputs.append(DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", split)]))
    if inputs:
        _log_inputs(tracker.client, tracker.run_id, inputs)
    tracker.set_tags({f"mktlab.data.sha256.{split}": digest for split, digest in prints.items()} | {"mktlab.data.source": mask_secrets(source)})
    return prints
