"""The `mktlab` command: Hydra composes the config, Papermill executes the model's notebook,
MLflow records the run. This package never imports JAX (the kernel does)."""

from __future__ import annotations

import os
import sys
import warnings

# jsonschema, which nbformat imports, loads `rfc3987_syntax` when it is installed (JupyterLab's
# event schemas pull it in) only to check "iri" string formats, and that package builds a parser
# grammar at import: about 1.9 s of every command. Notebook validation checks no such format, so
# the runner's processes go without it (set when this package is imported, before any module of
# it imports nbformat: an import of it then raises ImportError, which jsonschema expects).
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def setup_process() -> None:
    """The runner process's settings, applied by each command's entry point and each sweep job (idempotent)."""
    # conf/hydra/launcher/*.yaml set the launcher plugins' options (joblib workers, Ray resources,
    # SLURM defaults) under the plugins' own names, so `hydra/launcher=joblib` picks them up; Hydra
    # still validates them against the plugins' schemas but warns about the shared name.
    warnings.filterwarnings("ignore", message=r"(?s).*is validated against ConfigStore schema with the same name", category=UserWarning)
    # MLflow prints "View run ... at <server URL>" when a run on a server ends, credentials and all;
    # mktlab prints its own link, masked. Set here, the notebook kernels inherit it too.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # MLflow's usage telemetry: a thread in every process that uses MLflow (the runner, each kernel) queueing
    # and sending events, about 0.2 s of a sweep job's time. mktlab's processes go without it unless the
    # environment asks for it (MLFLOW_DISABLE_TELEMETRY=false).
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def setup_sweep_process() -> None:
    """A sweep's settings, applied before its first kernel starts (the `mktlab -m` entry point) and when the
    sweep opens: parallel jobs share a GPU, so none may grab most of its memory up front. (A variable that
    JAX reads at start-up, set after the early kernel started, would make that kernel unfit for the jobs.)"""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
