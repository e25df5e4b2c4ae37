"""The API docs (/docs, /redoc) render in a real browser with no internet: nothing is fetched
off the host, as in a control room cut off from the internet."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from browser import OfflinePage, screenshot, serve
from smartpole.api import create_app
from smartpole.app import Platform
from smartpole.config import Settings

# an operation every reader of the docs looks for, by its summary
OPERATION = "Time series"
# Redoc lays out all ~190 operations before it shows the first: seconds alone, but half a
# minute and more on a slow CI machine with every core busy with other tests (seen: 20 s was
# not enough). This waits for the page, it does not time it.
RENDER_WAIT_MS = 120_000


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API of a fresh platform, served by uvicorn on a free local port."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("docs"), mqtt_port=0)
    platform = Platform(settings)
    platform.db.upgrade()
    with serve(create_app(platform.api_services(), lifecycle=platform)) as url:
        yield url


def test_swagger_ui_renders_the_operations_offline(site: str, offline_page: OfflinePage) -> None:
    page = offline_page.page
    page.goto(f"{site}/docs")
    expect(page.get_by_text(OPERATION, exact=True).first).to_be_visible(timeout=RENDER_WAIT_MS)
    expect(page.locator(".validator-badge, img[src*='validator']")).to_have_count(0)
    screenshot(page, "swagger-ui")
    assert offline_page.off_host == []


def test_redoc_renders_the_operations_offline(site: str, offline_page: OfflinePage) -> None:
    page = offline_page.page
    page.goto(f"{site}/redoc")
    expect(page.get_by_role("heading", name=OPERATION).first).to_be_visible(timeout=RENDER_WAIT_MS)
    page.wait_for_load_state("networkidle")
    screenshot(page, "redoc")
    assert offline_page.off_host == []


def test_the_docs_assets_are_served_from_the_package(site: str, offline_page: OfflinePage) -> None:
    html = offline_page.page.request.get(f"{site}/docs").text()
    assert "/docs-assets/swagger-ui-bundle.js" in html
    assert "cdn." not in html
    assert "fonts.googleapis" not in offline_page.page.request.get(f"{site}/redoc").text()
