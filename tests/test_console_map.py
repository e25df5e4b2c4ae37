"""The console in a real browser: log in, the city map of the poles a tenant may see, a pole's
card and page, the language switch; nothing leaves the host, another tenant's pole stays out.

One server for the module (uvicorn on a free port, a started platform on SQLite) seeded with
three poles: two carry the lighting department's lamps, the third only a telecom small cell.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from browser import OfflinePage, serve
from smartpole.api import create_app
from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.model.clock import now_ms
from smartpole.model.types import Role

PASSWORD = "lamps-at-dusk-2026"
HOT_LAMP = {
    "name": "hot-lamp",
    "scope": {"kinds": ["lamp"]},
    "condition": {"key": "temperature", "op": ">", "value": 100},
    "actions": [{"alarm": {"type": "lamp_hot", "severity": "major"}}],
}
MAJOR = 4  # the state code of a pole with a major alarm
USER = "li.wei"


@dataclass(frozen=True)
class Site:
    """The served console and what was seeded."""

    url: str
    poles: dict[str, int]  # code -> id
    tokens: dict[str, str]  # code -> the access token of the device on that pole
    keys: dict[str, str]  # tenant -> admin API key


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("console"), mqtt_port=0, batch_age_ms=2)
    platform = Platform(settings)
    platform.db.upgrade()
    keys = {}
    for name, is_operator in (("city", True), ("lighting", False), ("telecom", False)):
        tenant = platform.tenants.create(name, name.title(), is_operator)
        keys[name] = platform.tenants.create_key(tenant["id"], Role.ADMIN)[1]
        if name == "lighting":
            platform.users.create(tenant["id"], USER, Role.OPERATOR, PASSWORD)
    with serve(create_app(platform.api_services(), lifecycle=platform)) as url:
        city = {"Authorization": f"Bearer {keys['city']}"}
        poles, tokens = {}, {}
        with httpx.Client(base_url=url, headers=city) as http:
            for n, (code, owner, kind) in enumerate(
                [
                    ("FT-SN-001", "lighting", "lamp"),
                    ("FT-SN-002", "lighting", "lamp"),
                    ("FT-SN-003", "telecom", "small_cell"),
                ]
            ):
                body = {"code": code, "lat": 22.54 + n * 0.001, "lon": 114.05, "road": "Shennan",
                        "district": "Futian"}  # fmt: skip
                r = http.post("/api/poles", json=body)
                assert r.status_code == 201, r.text
                poles[code] = r.json()["id"]
                device = {"kind": kind, "pole_id": poles[code], "owner": owner}
                r = http.post("/api/devices", json=device)
                assert r.status_code == 201, r.text
                tokens[code] = r.json()["token"]
        yield Site(url, poles, tokens, keys)


@pytest.fixture(scope="module")
def offline(browser: Browser) -> Iterator[OfflinePage]:
    """One page for the module, English first, every off-host request refused and recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    out = OfflinePage(context.new_page())
    context.route("**/*", out.route)
    try:
        yield out
    finally:
        context.close()


def log_in(page: Page, site: Site) -> None:
    if page.request.get(f"{site.url}/api/session").status != 200:
        r = page.request.post(f"{site.url}/api/session", data={"user": USER, "password": PASSWORD})
        assert r.status == 200, r.text()


def open_map(page: Page, site: Site) -> None:
    """Log in (unless the page's session is open) and open the map with both poles drawn."""
    log_in(page, site)
    page.goto(f"{site.url}/")
    expect(page.get_by_test_id("map-count")).to_have_attribute("data-drawn", "2", timeout=20_000)


def search(page: Page, code: str) -> None:
    """Find a pole by its code in the map's search box."""
    page.get_by_test_id("map-search").fill(code)
    page.get_by_test_id("map-search-go").click()


def test_log_in_refuses_a_wrong_password_and_lands_on_the_map(
    site: Site, offline: OfflinePage
) -> None:
    page = offline.page
    response = page.goto(f"{site.url}/")
    assert response is not None
    page.wait_for_url("**/login?next=%2F")
    page.get_by_test_id("login-user").fill(USER)
    page.get_by_test_id("login-password").fill("not-the-password")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_have_text("Wrong user name or password.")
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{site.url}/")
    expect(page.get_by_test_id("map")).to_be_visible()
    expect(page.get_by_test_id("user-menu")).to_contain_text(USER)
    assert offline.off_host == []


def test_pages_are_served_with_a_strict_content_security_policy(
    site: Site, offline: OfflinePage
) -> None:
    for path in ("/login", "/"):
        response = offline.page.request.get(f"{site.url}{path}")
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy
        assert "unsafe-inline" not in policy


def test_the_map_shows_the_poles_of_the_tenant_and_only_those(
    site: Site, offline: OfflinePage
) -> None:
    page = offline.page
    open_map(page, site)
    count = page.get_by_test_id("map-count")
    expect(count).to_have_attribute("data-total", "2")
    expect(count).to_have_text("2 of 2 poles")
    # the telecom pole is neither drawn nor found by its code
    search(page, "FT-SN-003")
    expect(page.get_by_test_id("map-search-error")).to_have_text("No pole FT-SN-003")
    assert offline.off_host == []


def test_a_pole_found_by_code_opens_its_card_and_its_page(site: Site, offline: OfflinePage) -> None:
    page = offline.page
    open_map(page, site)
    search(page, "ft-sn-002")
    card = page.get_by_test_id("pole-card")
    expect(card.get_by_test_id("pole-card-code")).to_have_text("FT-SN-002")
    card.get_by_test_id("pole-card-open").click()
    page.wait_for_url(f"{site.url}/poles/{site.poles['FT-SN-002']}")
    expect(page.get_by_test_id("page")).to_have_attribute("data-page", "pole")
    assert offline.off_host == []


def test_clicking_a_pole_on_the_map_opens_its_card(site: Site, offline: OfflinePage) -> None:
    page = offline.page
    open_map(page, site)
    search(page, "FT-SN-001")  # centres the map on it
    page.get_by_test_id("pole-card").get_by_role("button").click()  # close the card
    box = page.get_by_test_id("map").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.get_by_test_id("pole-card-code")).to_have_text("FT-SN-001")


def test_another_tenants_pole_is_not_found_by_its_address(site: Site, offline: OfflinePage) -> None:
    page = offline.page
    log_in(page, site)
    other = site.poles["FT-SN-003"]
    assert page.request.get(f"{site.url}/api/poles/{other}").status == 404
    page.goto(f"{site.url}/poles/{other}")
    expect(page.get_by_test_id("not-found")).to_be_visible(timeout=10_000)
    assert offline.off_host == []


def test_switching_the_language_changes_the_labels_and_is_kept(
    site: Site, offline: OfflinePage
) -> None:
    page = offline.page
    open_map(page, site)
    expect(page.get_by_test_id("nav-alarms")).to_have_text("Alarms")
    page.get_by_test_id("lang").select_option("zh-CN")
    expect(page.get_by_test_id("nav-alarms")).to_have_text("告警")
    expect(page.get_by_test_id("map-count")).to_have_text("显示 2 / 共 2 根灯杆")
    page.reload()
    expect(page.get_by_test_id("nav-map")).to_have_text("地图")
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    page.get_by_test_id("lang").select_option("en")
    expect(page.get_by_test_id("nav-map")).to_have_text("Map")
    assert offline.off_host == []


def test_a_state_change_reaches_the_open_map_without_a_reload(
    site: Site, offline: OfflinePage
) -> None:
    page = offline.page
    open_map(page, site)
    count = page.get_by_test_id("map-count")
    before = [int(n) for n in (count.get_attribute("data-states") or "").split(",")]
    assert sum(before) == 2
    assert before[MAJOR] == 0
    page.evaluate("window.__sameDocument = true")
    lighting = {"Authorization": f"Bearer {site.keys['lighting']}"}
    with httpx.Client(base_url=site.url) as http:
        assert http.post("/api/rules", json=HOT_LAMP, headers=lighting).status_code == 201
        reading = {"ts": now_ms(), "values": {"temperature": 110.0}}
        r = http.post(f"/api/v1/{site.tokens['FT-SN-001']}/telemetry", json=reading)
        assert r.status_code == 200, r.text
    page.wait_for_function(
        "major => (document.querySelector('[data-testid=map-count]').dataset.states || '')"
        ".split(',')[major] === '1'",
        arg=MAJOR,
        timeout=10_000,
    )
    assert page.evaluate("window.__sameDocument") is True  # no reload
    search(page, "FT-SN-001")
    expect(page.get_by_test_id("pole-card-state")).to_have_attribute("data-state", "major")
    assert offline.off_host == []
