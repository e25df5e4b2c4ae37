"""The console's lighting page in a real browser (Debian's Chromium, headless, nothing off the
host): tonight's plan of a group and its reasons, holding a group and ending the override, what
a viewer may not do, the page in Chinese, and an invalid document's located problem."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from browser import OfflinePage, serve
from mosquitto import free_port
from smartpole.api import create_app
from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.lighting.service import night_date
from smartpole.model.clock import now_ms
from smartpole.model.types import Reading, Role
from smartpole.model.writes import WriteBatch

PASSWORD = "a long enough console password"
WAIT_MS = 10_000
HOUR_MS = 3_600_000
METERED_DAYS = 45  # the lamp's meter: two or three months
DOCUMENT = """\
programs:
  - name: night
    steps:
      - {at: sunset, level: 100}
      - {at: "virtual_midnight-60", level: 50, fade_s: 300}
      - {at: sunrise, level: 0}
groups:
  - {name: shennan, roads: [Shennan]}
calendar:
  - name: every-night
    program: night
    group: shennan
    weekdays: [mon, tue, wed, thu, fri, sat, sun]
"""
# level 150 on line 5 (a level is 0 to 100)
BAD_DOCUMENT = DOCUMENT.replace("level: 50,", "level: 150,")


@dataclass
class Site:
    """The served console, its API keys, and the lighting tenant's lamp."""

    url: str
    keys: dict[tuple[str, Role], str]

    def api(self, method: str, path: str, role: Role = Role.OPERATOR, **kw: Any) -> Any:
        headers = {
            "Authorization": f"Bearer {self.keys['lighting', role]}",
            **kw.pop("headers", {}),
        }
        r = httpx.request(method, f"{self.url}{path}", headers=headers, **kw)
        assert r.is_success, r.text
        return r.json() if r.content else None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data: Path = tmp_path_factory.mktemp("console-lighting")
    platform = Platform(Settings(data_dir=data, mqtt_port=free_port(), batch_age_ms=2))
    platform.db.upgrade()
    keys: dict[tuple[str, Role], str] = {}
    for name, is_operator in (("city", True), ("lighting", False)):
        tenant_id = platform.tenants.create(name, name.title(), is_operator)["id"]
        for role in Role:
            keys[name, role] = platform.tenants.create_key(tenant_id, role)[1]
    with serve(create_app(platform.api_services(), lifecycle=platform)) as url:
        s = Site(url, keys)
        city = {"Authorization": f"Bearer {keys['city', Role.ADMIN]}"}
        pole = {"code": "FT-SN-001", "lat": 22.54, "lon": 114.05, "district": "Futian"}
        r = httpx.post(f"{url}/api/poles", json={**pole, "road": "Shennan"}, headers=city)
        assert r.is_success, r.text
        lamp = {"kind": "lamp", "pole_id": r.json()["id"], "name": "lamp-sn-1"}
        lamp_id = s.api("POST", "/api/devices", Role.ADMIN, json=lamp)["id"]
        # its energy meter counts 0.02 kWh an hour (20 W, less than the 100 W baseline)
        start = now_ms() - METERED_DAYS * 24 * HOUR_MS
        meter = [
            Reading(lamp_id, "energy", start + h * HOUR_MS, 0.02 * h)
            for h in range(METERED_DAYS * 24)
        ]
        platform.series.write(WriteBatch(readings=meter))
        for user, role in (("ops-li", "operator"), ("view-wu", "viewer")):
            body = {"name": user, "role": role, "password": PASSWORD}
            s.api("POST", "/api/users", Role.ADMIN, json=body)
        yaml = {"Content-Type": "application/yaml"}
        s.api("PUT", "/api/lighting/document", content=DOCUMENT, headers=yaml)
        yield s


def open_lighting(
    browser: Browser, site: Site, user: str, errors: list[str], lang: str = "en"
) -> Page:
    """The lighting page, logged in as ``user``, in ``lang``; script errors go to ``errors``."""
    locale = "zh-CN" if lang == "zh-CN" else "en-US"
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale=locale)
    offline = OfflinePage(context.new_page())
    page = offline.page
    page.on("pageerror", lambda err: errors.append(str(err)))
    context.route("**/*", offline.route)
    r = page.request.post(f"{site.url}/api/session", data={"user": user, "password": PASSWORD})
    assert r.ok, r.text()
    page.goto(f"{site.url}/login")
    page.evaluate("lang => localStorage.setItem('smartpole.lang', lang)", lang)
    page.goto(f"{site.url}/lighting")
    expect(page.get_by_test_id("lighting-page")).to_be_visible(timeout=WAIT_MS)
    return page


def test_an_operator_sees_tonights_plan_holds_a_group_and_ends_the_override(
    browser: Browser, site: Site
) -> None:
    errors: list[str] = []
    page = open_lighting(browser, site, "ops-li", errors)
    expect(page.get_by_test_id("nav-lighting")).to_have_attribute("aria-current", "page")
    expect(page.get_by_test_id("plan-group")).to_have_value("shennan")
    # tonight as the service counts it: before local noon, the night begun yesterday
    zone = ZoneInfo(page.get_by_test_id("lighting-zone").inner_text())
    expect(page.get_by_test_id("plan-date")).to_have_value(night_date(now_ms(), zone).isoformat())
    chart = page.get_by_test_id("plan-chart")
    expect(chart).to_have_attribute("data-steps", "3", timeout=WAIT_MS)
    expect(chart.locator("canvas")).to_have_count(1)
    steps = page.get_by_test_id("plan-steps")
    expect(steps.get_by_test_id("step-0")).to_contain_text("100 %")
    expect(steps.get_by_test_id("step-0")).to_contain_text("night · every-night")
    expect(steps.get_by_test_id("step-1")).to_contain_text("300 s")
    expect(page.get_by_test_id("entry-every-night")).to_contain_text("shennan")
    expect(page.get_by_test_id("program-night")).to_contain_text("sunset 100 %")

    # the lamp search answers the level the lamp should have now, and why
    page.get_by_test_id("lamp-search").fill("lamp-sn-1")
    page.get_by_test_id("lamp-go").click()
    lamp_now = page.get_by_test_id("lamp-now")
    expect(lamp_now).to_have_attribute("data-level", re.compile(r"^\d"), timeout=WAIT_MS)
    expect(lamp_now).to_contain_text("lamp-sn-1 should be at")
    # by day the night's program no longer applies: the API says which it is now
    now = site.api("GET", "/api/lighting/plan", params={"lamp": "lamp-sn-1", "at": now_ms()})
    why = "night · every-night" if now["reason"]["program"] else "no program"
    expect(lamp_now).to_contain_text(f"{now['level']:g} % now: {why}")

    # hold the group at 80 % for 10 minutes: the override is listed, and ends on "End now"
    page.get_by_test_id("hold-level").fill("80")
    page.get_by_test_id("hold-minutes").fill("10")
    page.get_by_test_id("hold-reason").fill("festival test")
    page.get_by_test_id("hold").click()
    row = page.locator("[data-testid^=override-][data-group=shennan]")
    expect(row).to_have_count(1, timeout=WAIT_MS)
    expect(row).to_contain_text("80 %")
    expect(row).to_contain_text("festival test")
    expect(row).to_contain_text("ops-li")
    [held] = site.api("GET", "/api/lighting/overrides?running=true")
    assert (held["level"], held["until"] - held["start"]) == (80, 600_000)
    page.get_by_test_id(f"end-{held['id']}").click()
    expect(row).to_have_count(0, timeout=WAIT_MS)
    assert site.api("GET", "/api/lighting/overrides?running=true") == []

    # a level out of range is refused, its message next to the level field
    page.get_by_test_id("hold-level").fill("150")
    page.get_by_test_id("hold").click()
    expect(page.get_by_test_id("error-level")).to_be_visible(timeout=WAIT_MS)
    assert site.api("GET", "/api/lighting/overrides?running=true") == []

    # the energy card: the metered months as bars, what was saved, the exports
    energy = page.get_by_test_id("energy-chart")
    expect(energy).to_have_attribute("data-months", re.compile(r"^[23]$"))
    expect(energy.locator("canvas")).to_have_count(1)
    expect(page.get_by_test_id("energy-year-actual")).to_contain_text(re.compile(r"[1-9].* kWh"))
    expect(page.get_by_test_id("energy-year-saved-pct")).to_contain_text(re.compile(r"\d+(\.\d)?%"))
    csv = page.get_by_test_id("energy-csv")
    expect(csv).to_have_attribute("href", re.compile(r"by=month&format=csv"))
    assert page.request.get(f"{site.url}{csv.get_attribute('href')}").text().startswith("group,")
    assert errors == []


def test_an_invalid_document_shows_its_problem_at_its_line_and_saves_nothing(
    browser: Browser, site: Site
) -> None:
    errors: list[str] = []
    page = open_lighting(browser, site, "ops-li", errors)
    page.get_by_test_id("import-text").fill(BAD_DOCUMENT)
    page.get_by_test_id("import-submit").click()
    problem = page.get_by_test_id("problem-line-5")
    expect(problem).to_be_visible(timeout=WAIT_MS)
    expect(problem).to_contain_text("programs.0.steps.1.level")
    expect(page.get_by_test_id("import-line-5")).to_have_attribute("data-error", "true")
    expect(page.get_by_test_id("import-line-4")).not_to_have_attribute("data-error", "true")
    [night] = site.api("GET", "/api/lighting/programs")
    assert night["steps"][1]["level"] == 50
    assert errors == []


def test_a_viewer_sees_the_plan_but_no_write_control(browser: Browser, site: Site) -> None:
    errors: list[str] = []
    page = open_lighting(browser, site, "view-wu", errors)
    expect(page.get_by_test_id("plan-chart")).to_have_attribute("data-steps", "3", timeout=WAIT_MS)
    site.api(
        "POST", "/api/lighting/overrides", json={"group": "shennan", "level": 30, "duration_s": 60}
    )
    page.reload()
    row = page.locator("[data-testid^=override-][data-group=shennan]")
    expect(row).to_have_count(1, timeout=WAIT_MS)
    expect(page.locator("[data-testid^=end-]")).to_have_count(0)
    expect(page.get_by_test_id("hold-form")).to_have_count(0)
    expect(page.get_by_test_id("import")).to_have_count(0)
    expect(page.get_by_test_id("export")).to_be_visible()
    [held] = site.api("GET", "/api/lighting/overrides?running=true")
    site.api("DELETE", f"/api/lighting/overrides/{held['id']}")
    assert errors == []


def test_the_page_speaks_chinese(browser: Browser, site: Site) -> None:
    errors: list[str] = []
    page = open_lighting(browser, site, "ops-li", errors, lang="zh-CN")
    expect(page.get_by_test_id("nav-lighting")).to_have_text("照明")
    expect(page.locator("h1")).to_have_text("照明")
    expect(page.get_by_test_id("hold")).to_have_text("保持")
    expect(page.get_by_test_id("energy")).to_contain_text("能耗")
    expect(page.get_by_test_id("energy-year-actual")).to_contain_text("实际用电")
    expect(page.get_by_test_id("plan-chart")).to_have_attribute("data-steps", "3", timeout=WAIT_MS)
    assert errors == []
