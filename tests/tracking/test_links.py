"""Links into the MLflow UI: the model-training view, the query inside the UI's route, the UI's address."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, unquote

import pytest

from mktlab.tracking import links

RUN = "0123456789abcdef0123456789abcdef"


def query(route: str) -> dict[str, list[str]]:
    assert route.startswith("#/") and route.count("?") == 1  # the query lives inside the route, after the `#`
    return parse_qs(route.split("?", 1)[1])


def test_every_route_opens_in_the_model_training_view() -> None:
    routes = [links.run_route("3", RUN), links.run_route("3", RUN, artifact="notebook/mf.html"), links.runs_route("3"),
              links.runs_route("3", search=links.sweep_search("20260105-141503-a3f9")), links.compare_route("3", [RUN, RUN[::-1]])]
    for route in routes:
        assert query(route)["workflowType"] == ["machine_learning"]
    assert routes[0] == f"#/experiments/3/runs/{RUN}?workflowType=machine_learning"
    assert routes[1].startswith(f"#/experiments/3/runs/{RUN}/artifacts/notebook/mf.html?")
    assert query(routes[3])["searchFilter"] == ["tags.`mktlab.sweep_id` = '20260105-141503-a3f9'"]


def test_the_comparison_names_its_runs_first() -> None:
    route = links.compare_route("3", [RUN, RUN[::-1]])
    assert route.startswith("#/compare-runs?runs=")  # MLflow's comparison page reads them from the start of the query
    assert json.loads(query(route)["runs"][0]) == [RUN, RUN[::-1]] and json.loads(query(route)["experiments"][0]) == ["3"]
    assert "[" not in route and '"' not in route and " " not in route  # safe inside a Markdown link


@pytest.mark.parametrize("uri, env, address", [
    ("sqlite:////tmp/mlflow.db", None, "http://127.0.0.1:5000"),
    ("http://mlflow-host:5000/", None, "http://mlflow-host:5000"),
    ("https://analyst:s3cret@mlflow-host", None, "https://analyst:****@mlflow-host"),
    ("sqlite:////tmp/mlflow.db", "http://127.0.0.1:5005/", "http://127.0.0.1:5005"),
])
def test_the_ui_address(uri: str, env: str | None, address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if env is None:
        monkeypatch.delenv(links.UI_ENV, raising=False)
    else:
        monkeypatch.setenv(links.UI_ENV, env)
    assert links.ui_address(uri) == address
    assert links.url(uri, links.runs_route("1")) == f"{address}/#/experiments/1/runs?workflowType=machine_learning"


def test_a_sqlite_store_says_how_to_start_its_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(links.UI_ENV, raising=False)
    text = links.how_to_open("sqlite:////tmp/mlflow.db", links.run_route("1", RUN))
    assert text.startswith("make mlflow-ui (or .venv/bin/mlflow ui --backend-store-uri sqlite:////tmp/mlflow.db), then http://127.0.0.1:5000/#/")
    assert links.how_to_open("http://host:5000", links.run_route("1", RUN)) == f"http://host:5000/#/experiments/1/runs/{RUN}?workflowType=machine_learning"
    assert unquote(links.run_route("1", RUN, artifact="review/review_runs.html")).endswith("/artifacts/review/review_runs.html?workflowType=machine_learning")
