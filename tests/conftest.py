"""Shared fixtures: a throwaway MLflow store, config composition, and running `mktlab`.

The helpers themselves live in `tests/helpers.py` (importable from every test module).
"""

from __future__ import annotations

import os
from pathlib import Path

# Before JAX starts, in this process and every command, kernel and worker it starts: the suite's programs are
# tiny, so XLA's backend optimizations cost more compile time than they save (a fresh clone's suite spends most
# of its JAX time compiling); and one compile cache for every test, those that run a copy of the project included.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")
os.environ.setdefault("MKTLAB_JAX_CACHE", str(Path(__file__).resolve().parents[1] / "experiments" / "jax-cache"))
# No kernel waits for a next command after the suite's commands (tests/runner/test_kernel_parking.py tests that wait).
os.environ.setdefault("MKTLAB_KERNEL_IDLE", "0")

import pytest  # noqa: E402

pytest.register_assert_rewrite("helpers", "browser")

from helpers import Store, assert_rerun_reproduces, composed, run_mktlab  # noqa: E402
from browser import chromium, save_screenshot  # noqa: E402
from mktlab.train import runtime  # noqa: E402

# The process's one JAX set-up (compile cache, one CPU device per core), before any JAX computation.
runtime.setup()


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One empty store's SQLite file per test process; each test's `store` starts as a copy of it.
    (Creating a store's tables on first use is tested by tests/tracking/test_store.py.)"""
    return Store.empty(tmp_path_factory.mktemp("empty-store"))


@pytest.fixture
def store(tmp_path: Path, empty_store: Path) -> Store:
    return Store(tmp_path / "store", template=empty_store)


@pytest.fixture
def cfg_for():
    """`cfg_for(["model=mf", ...])` -> typed config, as a notebook would get it."""
    return lambda overrides=(): composed(*overrides)


@pytest.fixture
def mktlab_cli(tmp_path: Path):
    return lambda args, **kw: run_mktlab(args, tmp_path, **kw)


@pytest.fixture
def rerun_reproduces(store: Store, tmp_path: Path):
    """`rerun_reproduces(run)`: see `helpers.assert_rerun_reproduces`."""
    return lambda run: assert_rerun_reproduces(store, run, tmp_path)


@pytest.fixture(scope="module")
def browser_context():
    """Headless Chromium with a fresh profile, shared by a module's browser tests."""
    with chromium() as context:
        yield context


@pytest.fixture
def page(browser_context, tmp_path: Path):
    """A new tab; a failing test leaves `tmp_path/screenshot.png` of it (see `pytest_runtest_makereport`)."""
    tab = browser_context.new_page()
    yield tab
    tab.close()


HEAVY_MARKERS = {"slow": 1, "browser": 3, "postgres": 3}
# files of one or a few tests of one to three minutes each (`--durations`): they start first of all
LONGEST = ("scaffold/test_scaffold.py", "/tests/test_secrets.py", "models/test_contract.py", "runner/test_sweep_mf.py",
           "runner/test_sweep_parallel.py", "runner/test_sweep_ray.py", "runner/test_sweep_server.py", "tracking/test_postgres.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The heaviest test files first (`make test` hands whole files to its two workers): the long
    kernel, sweep, browser and server tests start at once, and the quick ones fill in behind them,
    so no worker is left alone with a long file at the end."""
    weight: dict[Path, int] = {}
    for item in items:
        weight[item.path] = weight.get(item.path, 0) + sum(w for m, w in HEAVY_MARKERS.items() if item.get_closest_marker(m))
    for path in weight:
        if path.as_posix().endswith(LONGEST):
            weight[path] += 100
    items.sort(key=lambda item: -weight[item.path])  # stable: a file's tests keep their order


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A browser test that fails leaves a screenshot of its page (`page` fixture) in its `tmp_path`; the path is in the report."""
    outcome = yield
    report = outcome.get_result()
    page = item.funcargs.get("page") if report.failed and report.when == "call" else None
    if page is None or not hasattr(page, "screenshot"):
        return
    try:
        path = save_screenshot(page, Path(item.funcargs["tmp_path"]), "screenshot")
        report.sections.append(("browser", f"screenshot of the page at the failure ({page.url}): {path}"))
    except Exception as error:  # the browser itself broke: the failure says so already
        report.sections.append(("browser", f"no screenshot: {type(error).__name__}: {error}"))


def pytest_terminal_summary(terminalreporter) -> None:
    """Page load times, server start-ups and the PostgreSQL sweep's figures that the tests recorded (`record_property`)."""
    lines = [f"{report.nodeid.split('::')[-1]}: {name}: {value}"
             for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", [])
             if report.when == "call" for name, value in report.user_properties if name in ("page load", "timing")]
    if lines:
        terminalreporter.write_sep("-", "timings recorded by the browser and PostgreSQL tests")
        for line in lines:
            terminalreporter.write_line(line)
