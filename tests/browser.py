"""Browser fixtures: Debian's Chromium driven by Playwright, with the network cut off the host.

No ``playwright install``: the browser is the system's ``/usr/bin/chromium``
(``scripts/system-deps.sh test`` installs it). Pages are served by a real uvicorn on a free
port (:func:`serve`); :class:`OfflinePage` lets only requests to that host through and keeps the
address of every other one, so a test can say that nothing left the machine.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, Playwright, Route, expect, sync_playwright
from starlette.types import ASGIApp

from mosquitto import free_port

__all__ = ["OfflinePage", "browser", "offline_page", "screenshot", "serve"]

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
# How long a page may take to show what a test waits for. Playwright's defaults (5 s for an
# expectation, 30 s for an action) are tight on a slow CI machine whose cores are all busy with
# other tests; these are waits, never timings: a page that is quick passes at once.
EXPECT_WAIT_MS = 30_000
ACTION_WAIT_MS = 90_000
expect.set_options(timeout=EXPECT_WAIT_MS)


def find_chromium() -> str:
    """Debian's Chromium (``CHROMIUM`` overrides the path)."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(path).exists(), "no chromium: run `scripts/system-deps.sh test`"
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for a test module.

    Not for the session: Playwright's sync API runs an event loop in this thread while it is
    open, and pytest-asyncio cannot start the loop of a later async test in the same worker
    ("Runner.run() cannot be called from a running event loop"). pytest tears a module's
    fixtures down before it runs a test of another module, so the loop is gone by then."""
    with sync_playwright() as pw:
        chromium = _launch(pw)
        try:
            yield chromium
        finally:
            chromium.close()


def _launch(pw: Playwright) -> Browser:
    return pw.chromium.launch(executable_path=find_chromium(), headless=True, args=CHROMIUM_FLAGS)


@dataclass
class OfflinePage:
    """A page whose requests off the local host are refused and recorded."""

    page: Page
    off_host: list[str] = field(default_factory=list)

    def route(self, route: Route) -> None:
        url = route.request.url
        host = urlsplit(url).hostname or ""
        if url.startswith(("data:", "blob:", "about:")) or host in LOCAL_HOSTS:
            route.continue_()
        else:
            self.off_host.append(url)
            route.abort("internetdisconnected")


@pytest.fixture
def offline_page(browser: Browser) -> Iterator[OfflinePage]:
    """A fresh page (own context, 1280x800) with the network cut off the local host."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(ACTION_WAIT_MS)
    page = context.new_page()
    out = OfflinePage(page)
    context.route("**/*", out.route)
    try:
        yield out
    finally:
        context.close()


@contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free local port (lifespan on); yield its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def screenshot(page: Page, name: str) -> None:
    """Write ``docs/screenshots/<name>.png`` when ``UPDATE_SCREENSHOTS=1`` (they are committed)."""
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
