"""Figures a sweep's job hands to the runner to draw, off the notebook kernel's critical path.

Drawing a report's figures (matplotlib's text layout and rendering) is most of what a short
job does beyond its fit: about 0.4 s of each tiny MF job. In a sweep whose jobs run one after
another in a kept kernel, the runner records each finished run on a background thread while
the next job runs (`mktlab.runner.background`). There it can draw the figures too, on the
other core, and the kernel goes straight on.

The runner gives such a job a private folder (the kernel's `FOLDER_ENV`). `log_report`
then hands each figure of the runner's own run over: `hand_off` pickles the figure, with the
matplotlib settings it was made under, into the folder, and `Report.show` leaves a place for
it in the notebook (`pending_output`). The runner draws each one as the kernel would have (the
same PNG, byte for byte) and logs it to the run, as soon as its thread is free of the runs before
(`Drawer.draw_while`: the last job of a sweep has its figures drawn while its last cells run), the
rest once the notebook has ended (`Drawer.finish`), and puts each in its place (`fill_in`). A figure that cannot be handed over (an object of a module the
runner need not import, a run the notebook opened itself) is drawn in the kernel as before, and
a notebook run by hand or outside a sweep never hands anything over.
"""

from __future__ import annotations

import copyreg
import io
import os
import pickle
import shutil
import tempfile
import time
import types
from collections.abc import Callable, Container, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mktlab.evaluation.report import PENDING_FIGURE_MIME, png_output, render_png

FOLDER_ENV = "MKTLAB_FIGURE_HANDOFF"

# What a handed-over figure may be made of: modules the runner imports as the kernel does. A figure
# holding anything else (a class a notebook defined, say) is drawn in the kernel.
_MODULES = frozenset({
    "builtins", "collections", "copyreg", "cycler", "datetime", "dateutil", "enum", "functools", "itertools", "matplotlib",
    "mktlab", "mpl_toolkits", "numpy", "operator", "_operator", "pandas", "PIL", "zoneinfo",
})
# Settings that choose how matplotlib is driven, not how a figure looks.
_NOT_DRAWING = frozenset({"backend", "backend_fallback", "interactive", "toolbar", "timezone"})


# ---------------------------------------------------------------- in the kernel
def folder() -> Path | None:
    """Where this job hands its figures over, if its runner takes them."""
    path = os.environ.get(FOLDER_ENV)
    return Path(path) if path and Path(path).is_dir() else None


def hand_off(tracker: Any, figure: Any, artifact_file: str) -> str | None:
    """Hand `figure` to the runner, to be logged as `artifact_file` into `tracker`'s run; returns its key,
    or None when the kernel must draw it itself (no runner takes figures, the notebook opened the run
    itself, the figure holds something the runner may not be able to load)."""
    target = folder()
    if target is None or tracker.owns_run:
        return None
    import matplotlib

    rc = {key: value for key, value in matplotlib.rcParams.items() if key not in _NOT_DRAWING}
    buffer = io.BytesIO()
    try:
        _FigurePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(
            {"run_id": tracker.run_id, "artifact_file": artifact_file, "figure": figure, "rc": rc})
    except Exception:  # noqa: BLE001 - anything unpicklable: drawn here, as without a runner
        return None
    key = f"{len(list(target.glob('*.pickle'))):04d}"
    partial = target / f"{key}.partial"
    partial.write_bytes(buffer.getvalue())
    partial.rename(target / f"{key}.pickle")
    return key


class _FigurePickler(pickle.Pickler):
    """Pickles a figure without its place among pyplot's figures (the runner has none), refusing what
    `_MODULES` does not name."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (type, types.FunctionType)):
            module = obj.__module__
        elif isinstance(obj, types.BuiltinFunctionType):  # a function, or a method bound to an object
            module = obj.__module__ or type(obj.__self__).__module__
        else:
            module = type(obj).__module__
        if (module or "").partition(".")[0] not in _MODULES:
            raise pickle.PicklingError(f"a figure holding {module}.{type(obj).__qualname__} is drawn in the kernel")
        from matplotlib.figure import Figure

        if type(obj) is Figure:
            state = obj.__getstate__()
            state.pop("_restore_to_pylab", None)
            return copyreg.__newobj__, (Figure,), state
        return NotImplemented


# ---------------------------------------------------------------- in the runner
def new_folder() -> Path:
    """A private folder for one job's figures."""
    return Path(tempfile.mkdtemp(prefix="mktlab-figures-"))


@dataclass
class DrawnFigure:
    png: bytes
    dpi: float  # the figure's own, which sets the size it is shown at


Log = Callable[[str, bytes, str], None]  # log(run_id, png, artifact_file)


class Drawer:
    """Draws the figures one job hands over in `source`, each once: as they come while the job runs
    (`draw_while`), then whatever is left once it has ended (`finish`). One thread at a time."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.drawn: dict[str, DrawnFigure] = {}
        self.failure: BaseException | None = None  # the first figure that could not be drawn or logged

    def draw_ready(self, log: Log) -> None:
        """Draw and `log` each figure handed over so far and not drawn yet, in order."""
        for key, record in _records(self.source, skipping=self.drawn):
            png, dpi = _draw(record["figure"], record["rc"])
            log(record["run_id"], png, record["artifact_file"])
            self.drawn[key] = DrawnFigure(png, dpi)

    def draw_while(self, running: Callable[[], bool], log: Log, every: float = 0.02) -> None:
        """Draw each figure as it is handed over, as long as `running()` (the job's notebook runs): the last
        job of a sweep has its figures drawn before it ends, not after. A failure is kept for `finish`."""
        try:
            while running():
                self.draw_ready(log)
                time.sleep(every)
        except Exception as failure:  # noqa: BLE001 - the run is failed with it once the job has ended
            self.failure = failure

    def finish(self, log: Log) -> dict[str, DrawnFigure]:
        """Draw and `log` the figures left, once the job has ended; returns every figure by key. Raises on a
        figure that could not be drawn or logged."""
        if self.failure is not None:
            raise self.failure
        self.draw_ready(log)
        return self.drawn


def _records(source: Path, skipping: Container[str] = ()) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for path in sorted(source.glob("*.pickle")):
        if path.stem in skipping:
            continue
        with path.open("rb") as handle:
            yield path.stem, pickle.load(handle)  # noqa: S301 - written by this user's own kernel, in a 0700 folder


def _draw(figure: Any, rc: Mapping[str, Any]) -> tuple[bytes, float]:
    import matplotlib

    with matplotlib.rc_context(dict(rc)):
        return render_png(figure), figure.dpi


def fill_in(notebook: Any, drawn: Mapping[str, DrawnFigure]) -> int:
    """Put each drawn figure in the place its notebook (an nbformat node) left for it; returns how
    many places are still empty (a figure that was never drawn)."""
    empty = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", ()):
            place = output.get("data", {}).get(PENDING_FIGURE_MIME)
            if place is None:
                continue
            figure = drawn.get(place.get("key"))
            if figure is None:
                empty += 1
                continue
            alt = output.get("metadata", {}).get(PENDING_FIGURE_MIME, {}).get("alt", "")
            output["data"], output["metadata"] = png_output(figure.png, figure.dpi, alt)
    return empty


def remove(source: Path) -> None:
    shutil.rmtree(source, ignore_errors=True)
