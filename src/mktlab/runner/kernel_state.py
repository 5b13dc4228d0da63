"""The kernel's side of a job: a clean slate in a kernel that may have run other jobs before.

Runs inside the notebook kernel (the runner sends `new_job(...)` before each job). A job
in a reused kernel then starts as in a fresh one: an empty user namespace with the
execution count at 1, no open figures and the matplotlib settings of a fresh kernel, the
warnings filters it started with, the job's environment variables and working folder,
and no hand-run bookkeeping of earlier runs. What stays is what makes reuse worth it:
imported modules, the open tracking store and JAX's compiled programs.
"""

from __future__ import annotations

import gc
import os
import sys
import warnings
from collections.abc import Mapping
from typing import Any

from IPython import get_ipython

_fresh: dict[str, Any] = {}


def snapshot() -> None:
    """Remember the fresh kernel's matplotlib settings and warnings filters (once, after the warm-up), and
    exempt what the warm-up imported from garbage collection: it lives as long as the kernel, and each
    collection (one after every job, `clear`) then only walks what the jobs made."""
    if _fresh:
        return
    gc.freeze()
    _fresh["warnings"] = list(warnings.filters)
    if "matplotlib" in sys.modules:
        _fresh["rc"] = dict(sys.modules["matplotlib"].rcParams)


def clear() -> None:
    """Forget the last job: its namespace, figures, settings and hand-run bookkeeping (the runner sends
    this as the job ends, so the kernel clears itself while the runner records the run)."""
    shell = get_ipython()
    if shell is not None:
        shell.reset(new_session=True)  # user namespace, Out, history (and a garbage collection); the execution count back to 1
        for callbacks in shell.events.callbacks.values():
            callbacks[:] = [cb for cb in callbacks if not getattr(cb, "__module__", "").startswith("mktlab")]
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
    if "rc" in _fresh:
        sys.modules["matplotlib"].rcParams.update(_fresh["rc"])
    if "warnings" in _fresh:
        warnings.filters[:] = _fresh["warnings"]
        warnings._filters_mutated()  # type: ignore[attr-defined]  (the module's cache of filter decisions)
    session = sys.modules.get("mktlab.session")
    if session is not None:
        session.forget_runs()


def new_job(cwd: str, environ: Mapping[str, str] | None = None, tracking_uri: str | None = None) -> None:
    """Give the kernel the job's environment and working folder, and open its tracking store."""
    if environ is not None:
        for key in set(os.environ) - set(environ):
            del os.environ[key]
        os.environ.update(environ)
    os.chdir(cwd)
    if tracking_uri is not None:
        try:
            sys.modules["mktlab.tracking.store"].get_client({"uri": tracking_uri})
        except Exception:  # the notebook's own first cell reports a store that does not open
            pass
