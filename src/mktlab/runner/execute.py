"""Executing a notebook with Papermill and turning the outcome into a run status."""

from __future__ import annotations

import functools
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import papermill as pm
from nbclient.exceptions import DeadKernelError
from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines
from papermill.exceptions import PapermillExecutionError

from mktlab.runner.background import waiting_on_notebook
from mktlab.runner.kernel import KERNEL_START_TIMEOUT, WarmKernel, kernel_manager_class, release


class KernelDied(RuntimeError):
    """The notebook's kernel died while a cell ran (out of memory, a crash, a kill)."""


@dataclass
class Outcome:
    status: str  # FINISHED | FAILED | KILLED
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.status == "FINISHED"


def describe_error(error: BaseException) -> str:
    """One paragraph naming the failing cell and the error."""
    if isinstance(error, KernelDied):
        return str(error)
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


SAVE_EVERY = 10.0  # seconds between two writes of a running notebook at its cells' starts and ends


class SparingExecutionManager(NotebookExecutionManager):
    """Papermill's execution manager, writing the output notebook at the start and the end of the run,
    and in between at a cell's start or end only when `SAVE_EVERY` seconds have passed since the
    last write (and, as in Papermill, every 30 s within a long cell).

    Papermill writes the whole notebook, figures and all, at every cell's start and end: for the
    short jobs of a sweep, some 30 writes of about 15 ms each, a third of the runner's own work per
    job. A notebook followed while it runs still shows progress every few seconds, and one that
    stops (an error, Ctrl-C, a dead kernel) is written whole when it stops, as before.
    """

    _always = False

    def save(self, **kwargs: Any) -> None:
        if self._always or (self.now() - self.last_save_time).total_seconds() >= SAVE_EVERY:
            super().save(**kwargs)

    def _saving_always(self, step: Any, **kwargs: Any) -> None:
        self._always = True
        try:
            step(**kwargs)
        finally:
            self._always = False

    def notebook_start(self, **kwargs: Any) -> None:
        self._saving_always(super().notebook_start, **kwargs)

    def notebook_complete(self, **kwargs: Any) -> None:
        self._saving_always(super().notebook_complete, **kwargs)


class SparingEngine(NBClientEngine):
    """Papermill's nbclient engine with the `SparingExecutionManager` (Papermill's `Engine.execute_notebook`
    names its manager class, so this repeats those few lines)."""

    @classmethod
    def execute_notebook(cls, nb: Any, kernel_name: str, output_path: str | None = None, progress_bar: bool = True,
                         log_output: bool = False, autosave_cell_every: int = 30, **kwargs: Any) -> Any:
        nb_man = SparingExecutionManager(nb, output_path=output_path, progress_bar=progress_bar, log_output=log_output,
                                         autosave_cell_every=autosave_cell_every)
        nb_man.notebook_start()
        try:
            cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
        finally:
            nb_man.cleanup_pbar()
            nb_man.notebook_complete()
        return nb_man.nb


ENGINE = "mktlab"
papermill_engines.register(ENGINE, SparingEngine)


def execute(notebook: Path, output: Path, *, parameters: dict[str, Any], cwd: Path, progress: bool = True,
            kernel: WarmKernel | None = None, reuse: bool = False, park: bool = False) -> Outcome:
    """Run `notebook` into `output` with `parameters` injected after its `parameters` cell.

    The kernel's stdout/stderr stream to this terminal (training progress bars), and
    Papermill shows its cell progress bar. The output notebook is written even when a
    cell raises or the run is interrupted. With `kernel` (a `WarmKernel`, already
    importing) the notebook runs in it, and it is released here: kept for the next job with
    `reuse` (unless interrupted or dead), parked for the next command with `park` (`kernel.release`),
    else shut down. Without one, Papermill starts a kernel of its own in `cwd`.
    """
    if "nbconvert" not in sys.modules:  # the jobs of a sweep in one process load it once
        threading.Thread(target=_load_html_exporter, name="mktlab-html-exporter", daemon=True).start()
    keep = True  # a kernel interrupted mid-job is not kept for the next one
    try:
        with _TerminateAsInterrupt():
            with waiting_on_notebook() as cells_started:  # earlier jobs of a sweep are recorded while its cells run
                manager = kernel.ready(cwd) if kernel is not None else None
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
                    on_cell_execute=cells_started,
                    engine_name=ENGINE,
                    **({"km": manager} if manager is not None else {}),
                )
    except PapermillExecutionError as error:
        # An interrupt can stop the kernel anywhere, e.g. inside a store's write transaction, whose lock
        # its traceback keeps held: the kernel is stopped (releasing it) before the run is closed.
        keep = error.ename != "KeyboardInterrupt"
        return Outcome("FAILED", error)
    except KeyboardInterrupt as error:
        mark_unfinished(output, interrupted=True)
        reuse = keep = False  # the whole sweep stops
        return Outcome("KILLED", error)
    except DeadKernelError:
        how = kernel.manager.exit_description() if kernel is not None else ""
        cell = mark_unfinished(output, interrupted=False)
        return Outcome("FAILED", KernelDied(f"the notebook kernel died during {cell or 'a cell'}" + (f": {how}" if how else "")))
    except Exception as error:  # notebook unreadable, kernel would not start, ...
        return Outcome("FAILED", error)
    finally:
        if kernel is not None:
            release(kernel, reuse=reuse, keep=keep, park=park)
    return Outcome("FINISHED")


def mark_unfinished(output: Path, *, interrupted: bool) -> str | None:
    """Make an executed notebook that stopped midway say so; returns `cell N (first line)` of the cell
    that was running.

    Papermill marks the running cell, and every cell after it, completed when execution
    stops for anything but an error in a cell. Here the running cell (the last one that
    started) is marked `interrupted` (Ctrl-C, SIGTERM) or `failed` (the kernel died), and
    the cells after it are `pending` with no outputs, as cells that never ran.
    """
    try:
        book = nbformat.read(output, as_version=4)
    except Exception:  # no notebook written yet: nothing to correct
        return None
    started = [i for i, cell in enumerate(book.cells) if cell.metadata.get("papermill", {}).get("start_time")]
    if not started:
        return None
    running = started[-1]
    cell = book.cells[running]
    cell.metadata.papermill.update(status="interrupted" if interrupted else "failed", exception=not interrupted)
    reason = "interrupted (KeyboardInterrupt)" if interrupted else "the kernel died while this cell ran"
    if cell.cell_type == "code":
        cell.outputs.append(nbformat.v4.new_output("error", ename="KeyboardInterrupt" if interrupted else "DeadKernelError",
                                                   evalue=reason, traceback=[reason]))
    for later in book.cells[running + 1 :]:
        later.metadata.setdefault("papermill", {}).update(status="pending", start_time=None, end_time=None, duration=None,
                                                          exception=None)
        if later.cell_type == "code":
            later.outputs, later.execution_count = [], None
    book.metadata.setdefault("papermill", {})["exception"] = True
    nbformat.write(book, output)
    first = next((line.strip() for line in "".join(cell.source).splitlines() if line.strip() and not line.startswith("#")), "")
    return f"cell {running}" + (f" (`{first[:60]}`)" if first else "")


# nbconvert's `lab` template without the scripts it fetches from a CDN: the HTML opens offline.
HTML_TEMPLATES = Path(__file__).with_name("templates")
HTML_TEMPLATE = "mktlab_offline"


@functools.cache
def html_exporter() -> Any:
    """nbconvert's HTML exporter as mktlab uses it: JupyterLab's look, images embedded, no CDN script.

    One per process: an exporter compiles its Jinja templates once, on first use (a quarter of
    a second); a sweep's later jobs convert with the compiled templates. `_exporting` keeps
    conversions one at a time."""
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name=HTML_TEMPLATE, extra_template_basedirs=[str(HTML_TEMPLATES)], embed_images=True)


_exporting = threading.Lock()


def _load_html_exporter() -> None:
    """Import nbconvert and load its HTML templates and highlighter while the notebook runs
    (this process only waits meanwhile), so `export_html` afterwards only converts."""
    try:
        from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

        with _exporting:
            html_exporter().from_notebook_node(new_notebook(cells=[new_markdown_cell("*loading*"), new_code_cell("print(1)")]))
    except Exception:  # export_html reports nothing either: the .ipynb is logged all the same
        pass


def export_html(notebook: Path) -> Path | None:
    """An HTML copy of an executed notebook beside it, readable offline (None when it cannot be read)."""
    import nbformat

    try:
        node = nbformat.read(notebook, as_version=4)
        with _exporting:
            body, _ = html_exporter().from_notebook_node(node, resources={"metadata": {"path": str(notebook.parent)}})
    except Exception:  # a notebook cut off mid-write still gets its .ipynb logged
        return None
    html = notebook.with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html
