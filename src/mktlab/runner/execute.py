"""Executing a notebook with Papermill and turning the outcome into a run status."""

from __future__ import annotations

import signal
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import papermill as pm
from jupyter_client import KernelManager
from papermill.exceptions import PapermillExecutionError
from traitlets import CaselessStrEnum

# Longest Unix socket path the kernel can bind (sun_path is 108 bytes on Linux).
_MAX_SOCKET_PATH = 100
# Seconds a kernel may take to start: parallel jobs on a loaded machine start slowly.
KERNEL_START_TIMEOUT = 180


@dataclass
class Outcome:
    status: str  # FINISHED | FAILED | KILLED
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.status == "FINISHED"


def describe_error(error: BaseException) -> str:
    """One paragraph naming the failing cell and the error."""
    if isinstance(error, PapermillExecutionError):
        source = "\n".join("    " + line for line in (error.source or "").strip().splitlines()[:8])
        return f"cell {error.cell_index} (execution {error.exec_count}) raised {error.ename}: {error.evalue}\n{source}"
    return f"{type(error).__name__}: {error}"


class _TerminateAsInterrupt:
    """Within the block, SIGTERM raises KeyboardInterrupt like Ctrl-C does."""

    def __enter__(self) -> None:
        self._previous = signal.getsignal(signal.SIGTERM)
        try:
            signal.signal(signal.SIGTERM, self._raise)
        except ValueError:  # not the main thread (e.g. a launcher worker thread)
            self._previous = None

    @staticmethod
    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


class UnixSocketKernelManager(KernelManager):
    """A kernel reached over Unix sockets with a name of its own in the temp folder.

    Over TCP each kernel is handed free ports that are only reserved once it binds them,
    so jobs starting kernels at the same moment (a parallel sweep) can be handed the same
    port and one kernel dies at start. Socket files under a fresh random name cannot
    collide; the kernel removes them when it shuts down.
    """

    transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

    def _ip_default(self) -> str:
        return _socket_prefix()


def _socket_prefix() -> str:
    return str(Path(tempfile.gettempdir()) / f"mktlab-kernel-{uuid.uuid4().hex}")


def kernel_manager_class() -> type[KernelManager]:
    """Unix sockets where the platform has them and the socket paths fit; TCP otherwise."""
    if sys.platform == "win32" or len(_socket_prefix()) + len("-65535") > _MAX_SOCKET_PATH:
        return KernelManager
    return UnixSocketKernelManager


def execute(notebook: Path, output: Path, *, parameters: dict[str, Any], cwd: Path, progress: bool = True) -> Outcome:
    """Run `notebook` into `output` with `parameters` injected after its `parameters` cell.

    The kernel's stdout/stderr stream to this terminal (training progress bars), and
    Papermill shows its cell progress bar. The output notebook is written even when a
    cell raises or the run is interrupted.
    """
    try:
        with _TerminateAsInterrupt():
            pm.execute_notebook(
                str(notebook),
                str(output),
                parameters=parameters,
                cwd=str(cwd),
                progress_bar=progress,
                stdout_file=sys.stdout,
                stderr_file=sys.stderr,
                report_mode=False,
                kernel_manager_class=kernel_manager_class(),
                start_timeout=KERNEL_START_TIMEOUT,
                # Every cell has run and the run's records are flushed by then; a graceful
                # shutdown only waits for the kernel's native teardown (JAX, MLflow) to time out:
                # 2.5 s of every run.
                shutdown_kernel="immediate",
            )
    except PapermillExecutionError as error:
        return Outcome("FAILED", error)
    except KeyboardInterrupt as error:
        return Outcome("KILLED", error)
    except Exception as error:  # kernel died, notebook unreadable, ...
        return Outcome("FAILED", error)
    return Outcome("FINISHED")


def export_html(notebook: Path) -> Path | None:
    """An HTML copy of an executed notebook beside it (None when it cannot be read)."""
    import nbformat
    from nbconvert import HTMLExporter

    try:
        node = nbformat.read(notebook, as_version=4)
        body, _ = HTMLExporter().from_notebook_node(node)
    except Exception:  # a notebook cut off mid-write still gets its .ipynb logged
        return None
    html = notebook.with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html
