"""The review as a new user meets it: a tiny sweep, then the MLflow UI in headless Chromium, reached from
the links mktlab printed.

One sweep (`mktlab -m debug=tiny model.dim=8,16`) and one `mlflow ui` over its SQLite store serve every
test of the module (the UI starts while the sweep runs). Each test opens a page as a user would and
checks what they look for; page load times (until that content shows) are recorded and printed at the
end of the run, and a failing test leaves a screenshot of its page.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import MKTLAB, Store, sweep_runs
from playwright.sync_api import expect
from servers import mlflow_ui

from browser import save_screenshot, timed
from mktlab.config import flatten
from mktlab.tracking import links

pytestmark = [pytest.mark.slow, pytest.mark.browser]

TINY = ["debug=tiny", "data.subsample=2000", "trainer.progress=false"]
DIMS = (8, 16)


@dataclass
class Sweep:
    store: Store
    ui: str  # the MLflow UI's address
    output: str  # what the sweep printed
    parent: Any
    children: list
    folder: Path  # screenshots of the pages the tests looked at

    def printed(self, label: str) -> str:
        """The link the sweep printed after `label`."""
        found = re.search(rf"{re.escape(label)}:?\s+(http\S+)", self.output)
        assert found, f"the sweep printed no link after {label!r}:\n{self.output[-3000:]}"
        return found.group(1)

    def child(self, dim: int) -> Any:
        return next(run for run in self.children if run.data.params["model.dim"] == str(dim))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory, empty_store: Path) -> Sweep:
    root = tmp_path_factory.mktemp("mlflow_ui")
    store = Store(root / "store", template=empty_store)  # the tables exist before the UI and the sweep open the store together
    ui = mlflow_ui(root, store_uri=store.uri, artifacts=store.artifacts)
    with ui.running(wait=False):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", links.UI_ENV: ui.url}  # the links name this UI
        done = subprocess.run([MKTLAB, "-m", *TINY, *store.overrides, f"model.dim={','.join(map(str, DIMS))}",
                               f"hydra.sweep.dir={root / 'multirun'}"], cwd=root, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        ui.wait()
        parent, children = sweep_runs(store, "mf")
        yield Sweep(store, ui.url, done.stdout + done.stderr, parent, children, root)


def test_the_printed_sweep_link_opens_its_runs_with_the_jobs_nested(sweep: Sweep, page: Any, record_property: Any) -> None:
    link = sweep.printed("the sweep in MLflow")
    assert link.startswith(f"{sweep.ui}/#/experiments/{sweep.parent.info.experiment_id}/runs?") and "workflowType=machine_learning" in link
    parent_name = sweep.parent.info.run_name
    parent_row = page.get_by_role("link", name=parent_name)
    timed(record_property, "the sweep's runs table", lambda: (page.goto(link), expect(parent_row).to_be_visible()))
    # the model-training view (runs, models), not the GenAI one (traces overview, evaluations)
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    expect(page.get_by_text("Detect Issues")).to_have_count(0)
    assert "workflowType=machine_learning" in page.url
    expect(page.get_by_text(f"{len(DIMS) + 1} matching runs")).to_be_visible()
    # the jobs are nested under the parent: hidden until its row is expanded
    names = [f"model.dim={dim}" for dim in DIMS]
    for name in names:
        expect(page.get_by_role("link", name=name, exact=True)).to_have_count(0)
    page.get_by_role("gridcell").filter(has=parent_row).get_by_role("button").first.click()
    for name in names:
        expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
    save_screenshot(page, sweep.folder, "sweep_runs")
    # the UI's own navigation: the experiment is of the model-training kind (MLflow 3.17's UI goes by the view the
    # browser remembers, which the link above does not change)
    assert sweep.store.client.get_experiment(sweep.parent.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"


def test_the_parent_describes_the_sweep_and_links_its_best_job(sweep: Sweep, page: Any, record_property: Any) -> None:
    best = min(sweep.children, key=lambda run: run.data.metrics["best_val_rmse"])
    assert sweep.parent.data.tags["mktlab.best_run_id"] == best.info.run_id
    url = links.url(sweep.ui, links.run_route(sweep.parent.info.experiment_id, sweep.parent.info.run_id))
    # the description's link to the best job (the UI opens a description's links in a new tab)
    best_link = page.locator(f"a[target='_blank'][href*='/runs/{best.info.run_id}']")
    timed(record_property, "the sweep's parent run", lambda: (page.goto(url), expect(best_link).to_be_visible()))
    expect(best_link).to_have_text(best.info.run_name)
    more = page.get_by_text("Show more", exact=True)  # a long description shows its first lines until asked
    if more.is_visible():
        more.click()
    expect(page.get_by_text("varies model.dim (8,16): the columns to compare")).to_be_visible()
    save_screenshot(page, sweep.folder, "parent_run")
    with page.context.expect_page() as opened:
        best_link.click()
    tab = opened.value
    try:
        expect(tab.get_by_role("heading", name=best.info.run_name)).to_be_visible()
        assert best.info.run_id in tab.url and "workflowType=machine_learning" in tab.url
    finally:
        tab.close()
    # the comparison of the jobs plots the swept key
    with page.context.expect_page() as opened:
        page.get_by_role("link", name=f"Compare the {len(DIMS)} jobs").click()
    tab = opened.value
    try:
        timed(record_property, "the comparison of the jobs", lambda: expect(tab.get_by_text(f"Comparing {len(DIMS)} Runs")).to_be_visible())
        expect(tab.get_by_text("Parallel Coordinates Plot").first).to_be_visible()
        expect(tab.get_by_text("model.dim").first).to_be_visible()
        save_screenshot(tab, sweep.folder, "compare_jobs")
    finally:
        tab.close()


def test_a_job_shows_its_per_epoch_chart_its_figure_and_its_notebook(sweep: Sweep, page: Any, record_property: Any) -> None:
    best_link = sweep.printed("its best run")
    best = sweep.store.client.get_run(sweep.parent.data.tags["mktlab.best_run_id"])
    assert best_link.endswith(links.run_route(best.info.experiment_id, best.info.run_id))
    timed(record_property, "the best job's run page", lambda: (page.goto(best_link), expect(page.get_by_role("heading", name=best.info.run_name)).to_be_visible()))

    # the per-epoch validation metric as a line chart over steps (epochs)
    page.get_by_role("tab", name="Model metrics").or_(page.get_by_text("Model metrics", exact=True)).first.click()
    page.get_by_placeholder("Search metric charts").fill("val_rmse")
    chart = page.locator(".js-plotly-plot").filter(has_text="Step")
    timed(record_property, "the job's val_rmse chart", lambda: expect(chart.first).to_be_visible())
    expect(page.get_by_text("val_rmse", exact=True).first).to_be_visible()
    save_screenshot(page, sweep.folder, "val_rmse_chart")

    # a figure artifact, drawn
    page.get_by_role("tab", name="Artifacts").or_(page.get_by_text("Artifacts", exact=True)).first.click()
    page.get_by_text("figures", exact=True).click()
    page.get_by_text("learning_curve.png", exact=True).click()
    image = page.locator("img[src^='blob:']").first
    timed(record_property, "the learning-curve figure", lambda: expect(image).to_be_visible())
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    save_screenshot(page, sweep.folder, "learning_curve")

    # the executed notebook's HTML, through the artifact's own link, fetching nothing from outside
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url) if not request.url.startswith((sweep.ui, "blob:", "data:", "about:")) else None)
    html = links.url(sweep.ui, links.run_route(best.info.experiment_id, best.info.run_id, artifact="notebook/mf.html"))
    frame = page.frame_locator("iframe").first
    timed(record_property, "the executed notebook (HTML)", lambda: (page.goto(html), page.reload(),
                                                                     expect(frame.get_by_text("Matrix factorization on MovieLens ratings")).to_be_visible()))
    expect(frame.get_by_text("best epoch 2 of 2").first).to_be_visible()
    save_screenshot(page, sweep.folder, "notebook_html")
    assert outside == [], f"the notebook's HTML fetched from outside: {outside}"


def test_params_hold_the_config_only(sweep: Sweep, tmp_path: Path) -> None:
    client = sweep.store.client
    for run in sweep.children:
        config = yaml.safe_load(Path(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path / run.info.run_id))).read_text())
        assert set(run.data.params) <= set(flatten(config)), set(run.data.params) - set(flatten(config))
        assert not any(key.startswith("data.stats") for key in run.data.params)
        assert any(key.startswith("mktlab.data.stats.") for key in run.data.tags)  # the data's statistics are tags
    assert set(sweep.parent.data.params) == {"sweep.model.dim", "sweep.sweeper", "sweep.launcher"}
    assert sweep.parent.data.tags["mktlab.swept"] == "model.dim"
    assert [run.info.run_name for run in sweep.children] == [f"model.dim={dim}" for dim in DIMS]  # the jobs keep their names


def test_once_the_browser_chose_model_training_the_experiments_list_opens_the_runs_table(sweep: Sweep, page: Any, record_property: Any) -> None:
    """The UI's own navigation (README, *Reviewing runs*): MLflow 3.17 opens an experiment in the view the
    browser remembers (GenAI at first, whatever `mlflow.experimentKind` says); one switch is remembered."""
    experiment = page.locator(f"a[href='#/experiments/{sweep.parent.info.experiment_id}']").filter(has_text="mf")  # in the list
    timed(record_property, "the experiments list", lambda: (page.goto(f"{sweep.ui}/#/experiments"), expect(experiment).to_be_visible()))
    page.get_by_role("button", name="Model training").click()
    experiment.click()
    expect(page.get_by_role("link", name=sweep.parent.info.run_name)).to_be_visible()
    assert "/runs" in page.url and "workflowType=machine_learning" in page.url
    page.goto(f"{sweep.ui}/#/experiments")  # remembered: the next visit lands on the runs table too
    experiment.click()
    expect(page.get_by_role("link", name=sweep.parent.info.run_name)).to_be_visible()
    save_screenshot(page, sweep.folder, "experiments_list_to_runs")
