"""The kernel's side of a job: a clean slate in a kernel that may have run other jobs before.

Runs inside the notebook kernel (the runner sends `new_job(...)` before each job). A job
in a reused kernel then starts as in a fresh one: an empty user namespace with the
execution count at 1, no open figures and the matplotlib settings of a fresh kernel, the
warnings filters it started with, the job's environment variables and working folder,
and no hand-run bookkeeping of earlier runs. What stays is what makes reuse worth it:
imported modules, the open tracking store and JAX's compiled programs.

A kernel also outlives the command that started it only as long as it is asked to: it
watches the process that owns it (`watch`) and leaves when that process is gone, and a
kernel parked for the next command (`park`) leaves when no command adopts it in time, or
when a command finds that code it imported has changed since (`adopt`).
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
import warnings
from collections.abc import Mapping
from typing import Any

from IPython import get_ipython

from mktlab.runner.standby import changed_since

_fresh: dict[str, Any] = {}
_started = time.time()  # when the kernel imported this module (the warm-up): code changed since is stale here
_watch: dict[str, Any] = {"owner": None, "parked_until": None}
_watching = threading.Lock()


def snapshot() -> None:
    """Remember the fresh kernel's matplotlib settings and warnings filters (once, after the warm-up), and
    exempt what the warm-up imported from garbage collection: it lives as long as the kernel, and each
    collection (one after every job, `clear`) then only walks what the jobs made."""
    if _fresh:
        return
    gc.freeze()
    _fresh["warnings"] = list(warnings.filters)
    if "matplotlib.pyplot" in sys.modules:
        # pyplot loads its backend at the first figure: the notebook backend then turns interactive mode on, so a
        # figure a cell leaves open is shown at the cell's end. Loaded now, the settings kept are those a job in
        # a fresh kernel works under from its first figure on (taken before, every later job lost that display).
        matplotlib = sys.modules["matplotlib"]
        sys.modules["matplotlib.pyplot"].switch_backend(matplotlib.get_backend())
    if "matplotlib" in sys.modules:
        _fresh["rc"] = dict(sys.modules["matplotlib"].rcParams)


# Every this many jobs, the collection after a job walks all that earlier jobs left too (`clear`).
FULL_COLLECTION_EVERY = 16
_cleared = [0]


def clear() -> None:
    """Forget the last job: its namespace, figures, settings and hand-run bookkeeping (the runner sends
    this as the job ends, so the kernel clears itself while the runner records the run).

    The garbage collection that ends it (after the namespace is emptied) walks only what the job made: what survives it (compiled programs,
    caches kept for the next job) is exempted from later collections as the warm-up's imports are. A full
    collection walked all of that after every job, longer with each job: 40 ms after the first job of a
    tiny sweep, 140 ms after the sixth, while the next job waited. Every `FULL_COLLECTION_EVERY` jobs the
    collection walks everything again, so what earlier jobs kept and later let go of is freed too."""
    if "matplotlib.pyplot" in sys.modules:  # first: a figure's cycles are collected with the rest
        sys.modules["matplotlib.pyplot"].close("all")
    _cleared[0] += 1
    if _cleared[0] % FULL_COLLECTION_EVERY == 0:
        gc.unfreeze()
    shell = get_ipython()
    if shell is not None:
        shell.reset(new_session=True)  # user namespace, Out, history (and a garbage collection); the execution count back to 1
        for callbacks in shell.events.callbacks.values():
            callbacks[:] = [cb for cb in callbacks if not getattr(cb, "__module__", "").startswith("mktlab")]
    if "rc" in _fresh:
        sys.modules["matplotlib"].rcParams.update(_fresh["rc"])
    if "warnings" in _fresh:
        warnings.filters[:] = _fresh["warnings"]
        warnings._filters_mutated()  # type: ignore[attr-defined]  (the module's cache of filter decisions)
    session = sys.modules.get("mktlab.session")
    if session is not None:
        session.forget_runs()
    gc.collect()  # the reset's own collection runs before it empties the namespace: the job's cycles go here, before the freeze
    gc.freeze()


def new_job(cwd: str, environ: Mapping[str, str] | None = None, tracking_uri: str | None = None) -> None:
    """Give the kernel the job's environment and working folder, and open its tracking store."""
    if environ is not None:
        for key in set(os.environ) - set(environ):
            del os.environ[key]
        os.environ.update(environ)
    os.chdir(cwd)
    if tracking_uri is not None:
        open_store(tracking_uri)


def open_store(tracking_uri: str) -> None:
    """Open the tracking store at `tracking_uri` (once: the client is kept), as the notebook's first cell will."""
    try:
        sys.modules["mktlab.tracking.store"].get_client({"uri": tracking_uri})
    except Exception:  # the notebook's own first cell reports a store that does not open
        pass


def watch(owner: int) -> None:
    """Leave when process `owner` (the runner that started or adopted this kernel) is gone, unless parked.

    The kernel runs in a session of its own and is not tied to its runner's life (a parked kernel must
    outlive it), so it watches that process itself, every second, on a thread of its own."""
    _watch["owner"] = owner
    if _watching.acquire(blocking=False):
        threading.Thread(target=_watch_owner, name="mktlab-owner-watch", daemon=True).start()


def _watch_owner() -> None:
    while True:
        time.sleep(1.0)
        parked_until, owner = _watch["parked_until"], _watch["owner"]
        if parked_until is not None:
            if time.time() > parked_until:
                leave()
        elif owner is not None and not _alive(owner):
            leave()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's (the pid was reused)
        return False
    return True


def park(seconds: float) -> None:
    """Wait `seconds` for a command to adopt this kernel (`adopt`), then leave; the owner may go meanwhile.

    The kernel lets go of the output it inherited from the command that started it (a terminal, or a pipe
    that `mktlab ... | tee log` reads to its end): its cells' output reaches each command as messages."""
    clear()
    _let_go_of_output()
    _watch["parked_until"] = time.time() + seconds


def _let_go_of_output() -> None:
    """Point the kernel's inherited standard output and error at the null device: ipykernel keeps a copy of
    each (`_original_stdstream_copy`) when it captures them, else they are file descriptors 1 and 2 themselves."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):
            copy = getattr(stream, "_original_stdstream_copy", None)
            os.dup2(null, copy if copy is not None else fd)
    finally:
        os.close(null)


def adopt(owner: int) -> str:
    """Serve process `owner` from now on; returns `ok`, or why this kernel cannot (it then leaves at once):
    `leaving` (its wait is over) or `stale: <file>` (a module it imported changed on disk since it started)."""
    parked_until = _watch["parked_until"]
    if parked_until is not None and time.time() > parked_until - 0.5:
        threading.Timer(0.2, leave).start()
        return "leaving"
    changed = stale_module_file()
    if changed is not None:
        threading.Timer(0.2, leave).start()
        return f"stale: {changed}"
    _watch["owner"], _watch["parked_until"] = owner, None
    forget_command()
    return "ok"


def forget_command() -> None:
    """Forget what this kernel looked up for the command it served, which a later command must look up
    again: the project's root (its working folder may differ), the installed models and the open tracking
    stores (a store's file may have been removed and made anew since)."""
    for name, functions in (("mktlab.config.paths", ("project_root",)), ("mktlab.models.registry", ("specs", "schemas"))):
        module = sys.modules.get(name)
        for function in functions if module is not None else ():
            getattr(module, function).cache_clear()
    store = sys.modules.get("mktlab.tracking.store")
    if store is not None:
        store.forget_clients()


def stale_module_file() -> str | None:
    """A source file of a module this kernel imported, or a folder of its import path (a package installed
    or removed there), that changed (or went) since the kernel started; None if none did."""
    return changed_since(_started, sys.path, list(sys.modules.values()))


def leave() -> None:
    """End this kernel now, removing its sockets and connection file (no runner is there to do it)."""
    try:
        from ipykernel.kernelapp import IPKernelApp

        app = IPKernelApp.instance()
        app.cleanup_ipc_files()
        app.cleanup_connection_file()
    finally:
        os._exit(0)
