"""Headless Chromium for the browser tests: Debian's `/usr/bin/chromium` driven by Playwright.

Playwright never downloads a browser here (`playwright install` needs the internet): it drives
the Chromium that `make browser` installs. The flags keep it from reaching for Google's
services (this machine's network is closed) and from needing a sandbox (CI runs as root).
A test that fails with a page open leaves a screenshot of it (`tests/conftest.py`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("MKTLAB_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 900}
TIMEOUT_MS = 90_000  # a page of a loaded two-core machine may take its time


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A Chromium with a fresh, empty profile (`--user-data-dir` of its own: a new user, no remembered view or
    settings); yields its context."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM}: `make browser` installs Debian's chromium (or set MKTLAB_CHROMIUM)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)

    with tempfile.TemporaryDirectory(prefix="mktlab-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=FLAGS, headless=True, viewport=VIEWPORT)
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


def timed(record: Callable[[str, Any], None], what: str, load: Callable[[], Any]) -> Any:
    """Run `load` (open a page and wait for what a user looks for on it); record how long it took."""
    start = time.perf_counter()
    result = load()
    record("page load", f"{what}: {time.perf_counter() - start:.1f} s")
    return result


def save_screenshot(page: Any, folder: Path, name: str) -> Path:
    """A full-page screenshot of `page` as `folder/name.png`."""
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
