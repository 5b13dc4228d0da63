"""Figures a sweep's job hands to the runner: drawn there as the kernel would have drawn them, logged
to the run, and put in the notebook's places for them; drawn in the kernel whenever they cannot go."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pytest  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402
from nbformat.v4 import new_code_cell, new_notebook, new_output  # noqa: E402

from helpers import Store  # noqa: E402
from mktlab.evaluation.report import PENDING_FIGURE_MIME, Report, png_output, render_png  # noqa: E402
from mktlab.tracking import Tracker, figure_handoff  # noqa: E402
from mktlab.tracking.reports import log_report  # noqa: E402
from mktlab.tracking.store import get_or_create_experiment  # noqa: E402


def a_figure(title: str = "Validation RMSE") -> plt.Figure:
    figure, (left, right) = plt.subplots(1, 2, figsize=(8, 3), layout="tight")
    left.plot([1, 2, 3], [0.99, 0.95, 0.94], label="validation")
    left.set_title(title)
    left.legend()
    right.hist([0.1, 0.5, 0.5, 0.9, 1.4], bins=4)
    right.set_xlabel("error")
    return figure


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def tracker(tmp_path: Path) -> Tracker:
    client = Store(tmp_path / "store").client
    experiment = get_or_create_experiment(client, "handoff", str(tmp_path / "artifacts"))
    return Tracker(client, client.create_run(experiment).info.run_id)  # the runner's own run: it does not own it


@pytest.fixture
def handoff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = figure_handoff.new_folder()
    monkeypatch.setenv(figure_handoff.FOLDER_ENV, str(folder))
    yield folder
    figure_handoff.remove(folder)


def logged_png(tracker: Tracker, artifact_file: str, tmp_path: Path) -> bytes:
    return Path(tracker.client.download_artifacts(tracker.run_id, artifact_file, str(tmp_path / "dl"))).read_bytes()


def test_a_handed_over_figure_is_drawn_by_the_runner_byte_for_byte_as_the_kernel_draws_it(tracker, handoff, tmp_path):
    # settings the figure is made and saved under (savefig's are read as it is drawn), changed back before the runner draws it
    with matplotlib.rc_context({"lines.linewidth": 4.0, "savefig.facecolor": "#dddddd"}):
        figure = a_figure()
        report = log_report(tracker, Report(metrics={"test_rmse": 0.9}, figures={"learning_curve": figure}))
        in_the_kernel = render_png(figure)
    assert report.images == {} and list(report.handed_off) == ["learning_curve"]
    assert tracker.client.list_artifacts(tracker.run_id, "figures") == []  # nothing drawn or logged in the kernel

    # the runner, another process without pyplot, draws and logs it
    drawn = subprocess.run([sys.executable, "-c", RUNNER_SIDE, str(handoff), tracker.client.tracking_uri],
                           capture_output=True, text=True, timeout=120)
    assert drawn.returncode == 0, drawn.stderr[-3000:]
    assert json.loads(drawn.stdout) == {"keys": [report.handed_off["learning_curve"]], "pyplot": False}
    assert logged_png(tracker, "figures/learning_curve.png", tmp_path) == in_the_kernel
    assert in_the_kernel != render_png(figure)  # the settings mattered


RUNNER_SIDE = """
import json, sys
from pathlib import Path
from mlflow.tracking import MlflowClient
from mktlab.tracking import Tracker, figure_handoff
client = MlflowClient(sys.argv[2])
drawn = figure_handoff.Drawer(Path(sys.argv[1])).finish(lambda run_id, png, name: Tracker(client, run_id).log_bytes(png, name))
print(json.dumps({"keys": list(drawn), "pyplot": "matplotlib.pyplot" in sys.modules}))
"""


def test_the_runner_fills_the_notebooks_places_with_the_pngs_a_report_shows(tracker, handoff, tmp_path):
    figure = a_figure()
    report = log_report(tracker, Report(figures={"curve": figure, "spread": a_figure("Spread")}))
    shown = [report_output(report, name) for name in ("curve", "spread")]
    assert all(PENDING_FIGURE_MIME in output.data for output in shown)
    book = new_notebook(cells=[new_code_cell("report.show('curve', 'spread')", outputs=shown),
                               new_code_cell("other()", outputs=[new_output("display_data", data={PENDING_FIGURE_MIME: {"key": "9999"}})])])

    drawn = figure_handoff.Drawer(handoff).finish(lambda run_id, png, name: Tracker(tracker.client, run_id).log_bytes(png, name))
    assert figure_handoff.fill_in(book, drawn) == 1  # a place whose figure never came stays as it is
    filled = book.cells[0].outputs
    png = logged_png(tracker, "figures/curve.png", tmp_path)
    # exactly the output a report shows when its kernel drew the figure itself
    assert (filled[0]["data"], filled[0]["metadata"]) == png_output(png, figure.dpi, "curve; Validation RMSE")
    assert filled[1]["metadata"]["image/png"]["alt"] == "spread; Spread"
    nbformat.validate(book)


def report_output(report: Report, name: str):
    """The output `report.show(name)` displays, as the notebook records it."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    published = []
    shell.display_pub.publish = lambda data, metadata=None, **_: published.append((data, metadata))
    report.show(name)
    data, metadata = published[-1]
    return new_output("display_data", data=data, metadata=metadata or {})


def test_what_cannot_be_handed_over_is_drawn_in_the_kernel(tracker, handoff, tmp_path):
    local = a_figure()
    local.axes[0].yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.1f}"))  # a function of this module
    report = log_report(tracker, Report(figures={"local": local}))
    assert report.handed_off == {} and report.images["local"] == logged_png(tracker, "figures/local.png", tmp_path)

    owned = Tracker(tracker.client, tracker.client.create_run(tracker.client.get_run(tracker.run_id).info.experiment_id).info.run_id,
                    owns_run=True)  # a run the notebook opened itself is never left to a runner
    assert log_report(owned, Report(figures={"mine": a_figure()})).handed_off == {}
    assert list(handoff.iterdir()) == []


def test_without_a_runner_that_takes_figures_the_kernel_draws_them(tracker, tmp_path, monkeypatch):
    monkeypatch.delenv(figure_handoff.FOLDER_ENV, raising=False)
    report = log_report(tracker, Report(figures={"curve": a_figure()}))
    assert report.handed_off == {} and report.images["curve"] == logged_png(tracker, "figures/curve.png", tmp_path)


def test_a_figure_the_runner_cannot_draw_fails_its_run_with_the_reason(tracker, handoff, tmp_path):
    from mktlab.runner.app import finalize
    from mktlab.runner.execute import Outcome
    from mktlab.tracking.store import StoreError

    log_report(tracker, Report(figures={"curve": a_figure()}))
    (next(handoff.glob("*.pickle"))).write_bytes(b"cut off")
    notebook = tmp_path / "run" / "mf.ipynb"
    notebook.parent.mkdir()
    nbformat.write(new_notebook(cells=[new_code_cell("report.show('curve')")]), notebook)

    with pytest.raises(StoreError, match="could not be drawn"):
        finalize(tracker, notebook, Outcome("FINISHED"), figures=figure_handoff.Drawer(handoff))
    run = tracker.client.get_run(tracker.run_id)
    assert run.info.status == "FAILED" and "a figure the notebook made could not be drawn" in run.data.tags["mktlab.error"]
    assert not handoff.exists()  # the handed-over figures are gone with the run's end
    assert "notebook/mf.ipynb" in {a.path for a in tracker.client.list_artifacts(tracker.run_id, "notebook")}


def test_figures_are_drawn_as_they_are_handed_over_while_the_job_runs_each_once(tracker, handoff, tmp_path):
    """`Drawer.draw_while` draws each figure as it comes while the job runs (a sweep's last job then ends with its
    figures drawn); `finish` draws what came after and gives every figure, each logged once."""
    import threading

    logged: list[str] = []

    def log(run_id: str, png: bytes, name: str) -> None:
        logged.append(name)
        Tracker(tracker.client, run_id).log_bytes(png, name)

    drawer, running = figure_handoff.Drawer(handoff), threading.Event()
    running.set()
    drawing = threading.Thread(target=drawer.draw_while, args=(running.is_set, log))
    drawing.start()
    first = log_report(tracker, Report(figures={"curve": a_figure()})).handed_off["curve"]
    deadline = time.monotonic() + 30
    while first not in drawer.drawn and time.monotonic() < deadline:  # drawn while the "job" still runs
        time.sleep(0.01)
    assert list(drawer.drawn) == [first] and logged == ["figures/curve.png"]
    running.clear()
    drawing.join(timeout=30)
    second = log_report(tracker, Report(figures={"spread": a_figure("Spread")})).handed_off["spread"]  # after the loop ended
    drawn = drawer.finish(log)
    assert list(drawn) == [first, second] and logged == ["figures/curve.png", "figures/spread.png"]
    assert logged_png(tracker, "figures/spread.png", tmp_path) == drawn[second].png


def test_a_figure_that_fails_while_the_job_runs_fails_it_once_it_has_ended(tracker, handoff):
    log_report(tracker, Report(figures={"curve": a_figure()}))
    next(handoff.glob("*.pickle")).write_bytes(b"cut off")
    drawer = figure_handoff.Drawer(handoff)
    drawer.draw_while(iter([True, False]).__next__, lambda *_: None)  # returns: the failure is kept, not raised here
    assert drawer.failure is not None
    with pytest.raises(Exception) as failure:
        drawer.finish(lambda *_: None)
    assert failure.value is drawer.failure
