"""The console's pages in a real browser (Debian's Chromium, headless, nothing off the host):
the pole page's live values and commands, the live alarm list, the work-order board, the rule
editor and what a viewer may not do, against one served platform seeded with two tenants."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import Browser, Page, expect

from browser import OfflinePage, serve
from helpers import BAD_RULE
from mosquitto import free_port
from smartpole.api import create_app
from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.model.clock import now_ms
from smartpole.model.types import Role

PASSWORD = "a long enough console password"
LIVE_MS = 2_000  # a reading must show on the pole page this soon, without a reload
WAIT_MS = 10_000
TILT_RULE = {
    "name": "tilt",
    "scope": {"kinds": ["tilt"]},
    "condition": {"key": "tilt", "op": ">", "value": 5},
    "actions": [{"alarm": {"type": "pole_tilt", "severity": "critical"}}],
}


class Lamp:
    """A street lamp connected over MQTT (paho) that answers every command it is sent."""

    def __init__(self, port: int, token: str) -> None:
        self.calls: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.username_pw_set(token)
        self.client.on_connect = lambda c, *_: c.subscribe("v1/devices/me/rpc/request/+", 1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self.answer
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(10), "the lamp did not connect"

    def answer(self, client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        request = orjson.loads(message.payload)
        self.calls.append(request)
        request_id = message.topic.rsplit("/", 1)[1]
        level = (request.get("params") or {}).get("level", 100)
        reply = orjson.dumps({"on": level > 0, "dim": level})
        client.publish(f"v1/devices/me/rpc/response/{request_id}", reply, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Site:
    """The served console and what was seeded: poles, devices, keys."""

    url: str
    keys: dict[tuple[str, Role], str]
    p1: int = 0  # a lighting pole: a lamp (over MQTT) and a tilt sensor
    p2: int = 0  # a telecom pole: lighting may not see it
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    lamp: Lamp | None = None

    def auth(self, tenant: str, role: Role = Role.ADMIN) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[tenant, role]}"}

    def api(self, method: str, path: str, tenant: str, role: Role = Role.ADMIN, **kw: Any) -> Any:
        r = httpx.request(method, f"{self.url}{path}", headers=self.auth(tenant, role), **kw)
        assert r.is_success, r.text
        return r.json() if r.content else None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data: Path = tmp_path_factory.mktemp("console-pages")
    mqtt_port = free_port()
    platform = Platform(Settings(data_dir=data, mqtt_port=mqtt_port, batch_age_ms=2))
    platform.db.upgrade()
    keys: dict[tuple[str, Role], str] = {}
    for name, is_operator in (("city", True), ("lighting", False), ("telecom", False)):
        tenant_id = platform.tenants.create(name, name.title(), is_operator)["id"]
        for role in Role:
            keys[name, role] = platform.tenants.create_key(tenant_id, role)[1]
    with serve(create_app(platform.api_services(), lifecycle=platform)) as url:
        s = Site(url, keys)
        s.p1 = s.api("POST", "/api/poles", "city", json=_pole("FT-001-001"))["id"]
        s.p2 = s.api("POST", "/api/poles", "city", json=_pole("FT-001-002"))["id"]
        for name, tenant, kind, pole in (
            ("lamp", "lighting", "lamp", s.p1),
            ("tilt", "lighting", "tilt", s.p1),
            ("cell", "telecom", "small_cell", s.p2),
        ):
            body = {"kind": kind, "pole_id": pole, "name": f"{name}-1"}
            s.devices[name] = s.api("POST", "/api/devices", tenant, json=body)
        for user, role in (("ops-li", "operator"), ("view-wu", "viewer")):
            body = {"name": user, "role": role, "password": PASSWORD}
            s.api("POST", "/api/users", "lighting", json=body)
        s.api("POST", "/api/rules", "lighting", Role.OPERATOR, json=TILT_RULE)
        s.lamp = Lamp(mqtt_port, s.devices["lamp"]["token"])
        try:
            yield s
        finally:
            s.lamp.close()


def _pole(code: str) -> dict[str, Any]:
    return {"code": code, "lat": 22.54, "lon": 114.05, "district": "Futian", "road": "Shennan"}


def log_in(browser: Browser, site: Site, user: str, errors: list[str]) -> OfflinePage:
    """A fresh page (nothing off the host) with ``user``'s session cookie; the page's script
    errors go to ``errors``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = OfflinePage(context.new_page())
    page.page.on("pageerror", lambda err: errors.append(str(err)))
    context.route("**/*", page.route)
    r = page.page.request.post(f"{site.url}/api/session", data={"user": user, "password": PASSWORD})
    assert r.ok, r.text()
    return page


def post_reading(site: Site, device: str, **values: Any) -> None:
    token = site.devices[device]["token"]
    body = {"ts": now_ms(), "values": values}
    r = httpx.post(f"{site.url}/api/v1/{token}/telemetry", json=body)
    assert r.status_code == 200, r.text


def go(page: Page, nav: str) -> None:
    """Follow a header link: the router changes the page without a reload."""
    page.get_by_test_id(f"nav-{nav}").click()


def test_an_operator_works_the_pole_alarms_board_and_rules(browser: Browser, site: Site) -> None:
    errors: list[str] = []
    offline = log_in(browser, site, "ops-li", errors)
    page = offline.page
    lamp, tilt = site.devices["lamp"]["id"], site.devices["tilt"]["id"]
    page.goto(f"{site.url}/poles/{site.p1}")
    expect(page.get_by_test_id("pole-code")).to_have_text("FT-001-001", timeout=WAIT_MS)
    expect(page.get_by_test_id(f"online-{lamp}")).to_have_attribute("data-online", "true")
    page.wait_for_timeout(300)  # the live socket has asked for this pole

    # a reading posted over the HTTP device API shows within 2 s, no reload
    post_reading(site, "lamp", temperature=41.5)
    expect(page.get_by_test_id(f"value-{lamp}-temperature")).to_contain_text(
        "41.5", timeout=LIVE_MS
    )
    kinds = site.api("GET", "/api/catalog", "lighting", params={"lang": "en"})["kinds"]
    [spec] = [
        k
        for kind in kinds
        if kind["kind"] == "lamp"
        for k in kind["keys"]
        if k["key"] == "temperature"
    ]
    row = page.get_by_test_id(f"value-{lamp}-temperature").locator("xpath=..")
    expect(row).to_contain_text(spec["label"])  # the catalog's label and unit
    expect(row).to_contain_text(spec["unit"])

    # the chart draws the key's history; 1 h is raw readings
    page.get_by_test_id("chart-key").select_option(f"{lamp}:temperature")
    page.get_by_test_id("range-1h").click()
    chart = page.get_by_test_id("chart")
    expect(chart).to_have_attribute("data-range", "1h")
    expect(chart).to_have_attribute("data-points", "1")
    expect(chart.locator("canvas")).to_have_count(1)

    # a lamp command reaches the lamp over MQTT; its lifecycle ends in succeeded
    page.get_by_test_id(f"dim-level-{lamp}").fill("35")
    page.get_by_test_id(f"cmd-dim-{lamp}").click()
    command = page.get_by_test_id(f"commands-{lamp}").locator("li").first
    expect(command).to_have_attribute("data-status", "succeeded", timeout=WAIT_MS)
    assert site.lamp is not None
    assert site.lamp.calls[-1] == {"method": "setDim", "params": {"level": 35}}

    # an alarm raised by a rule appears in the list live; acknowledging it changes it in the API
    go(page, "alarms")
    expect(page.get_by_test_id("alarms-page")).to_be_visible()
    page.wait_for_timeout(300)
    post_reading(site, "tilt", tilt=9.0)
    row = page.locator("[data-testid^=alarm-][data-type=pole_tilt]")
    expect(row).to_have_count(1, timeout=WAIT_MS)
    expect(page.get_by_test_id("alarm-badge")).to_have_attribute("data-count", "1")
    [alarm] = site.api("GET", "/api/alarms", "lighting", params={"type": "pole_tilt"})
    assert alarm["originator_id"] == tilt
    page.get_by_test_id(f"ack-{alarm['id']}").click()
    expect(page.get_by_test_id(f"status-{alarm['id']}")).to_have_text("active, acknowledged")
    assert site.api("GET", f"/api/alarms/{alarm['id']}", "lighting")["status"] == "active_ack"
    expect(page.get_by_test_id(f"map-link-{alarm['id']}")).to_have_attribute(
        "href", f"/?pole={site.p1}"
    )
    page.get_by_test_id(f"comments-toggle-{alarm['id']}").click()
    page.get_by_test_id(f"comment-text-{alarm['id']}").fill("crew on the way")
    page.get_by_test_id(f"comment-{alarm['id']}").click()
    comments = page.get_by_test_id(f"comments-{alarm['id']}")
    expect(comments).to_contain_text("crew on the way")
    expect(comments).to_contain_text("ops-li (lighting, operator)")  # signed by the person
    page.get_by_test_id("filter-severity").select_option("minor")
    expect(row).to_have_count(0)
    page.get_by_test_id("filter-severity").select_option("critical")
    expect(row).to_have_count(1)

    # the board steps a work order: assigned to a team, then in progress
    team = site.api("POST", "/api/teams", "lighting", json={"name": "crew-1", "title": "Crew 1"})
    order = site.api(
        "POST",
        "/api/work-orders",
        "lighting",
        Role.OPERATOR,
        json={"pole_id": site.p1, "title": "Replace the lamp driver"},
    )
    go(page, "work-orders")
    card = page.get_by_test_id(f"wo-{order['id']}")
    expect(page.get_by_test_id("column-open").get_by_test_id(f"wo-{order['id']}")).to_be_visible()
    expect(page.get_by_test_id(f"sla-{order['id']}")).to_have_attribute("data-overdue", "false")
    page.get_by_test_id(f"team-{order['id']}").select_option(str(team["id"]))
    page.get_by_test_id(f"assign-{order['id']}").click()
    expect(
        page.get_by_test_id("column-assigned").get_by_test_id(f"wo-{order['id']}")
    ).to_be_visible()
    page.get_by_test_id(f"step-{order['id']}-in_progress").click()
    expect(card).to_have_attribute("data-status", "in_progress")
    got = site.api("GET", f"/api/work-orders/{order['id']}", "lighting")
    assert got["status"] == "in_progress"
    assert got["history"][-1]["actor"] == "ops-li (lighting, operator)"  # the person who stepped it

    # the rule editor shows a YAML problem at its line
    go(page, "rules")
    expect(page.get_by_test_id("rule-tilt")).to_be_visible()
    [rule] = site.api("GET", "/api/rules", "lighting")
    page.get_by_test_id(f"enabled-{rule['id']}").uncheck()
    expect(page.get_by_test_id("rule-tilt")).to_have_attribute("data-enabled", "false")
    assert site.api("GET", f"/api/rules/{rule['id']}", "lighting")["enabled"] is False
    page.get_by_test_id("rule-editor").fill(BAD_RULE)
    page.get_by_test_id("rule-check").click()
    expect(page.get_by_test_id("problem-line-6")).to_contain_text("condition.op")
    expect(page.get_by_test_id("line-6")).to_have_attribute("data-error", "true")
    expect(page.get_by_test_id("line-5")).not_to_have_attribute("data-error", "true")

    # the overview counts what lighting sees
    go(page, "overview")
    expect(page.get_by_test_id("online-lamp")).to_have_text("1")
    expect(page.get_by_test_id("alarms-critical").locator("a")).to_have_text("1")
    assert offline.off_host == []
    assert errors == []
    page.context.close()


def test_a_viewer_sees_no_control_and_a_forged_command_is_refused(
    browser: Browser, site: Site
) -> None:
    errors: list[str] = []
    offline = log_in(browser, site, "view-wu", errors)
    page = offline.page
    lamp = site.devices["lamp"]["id"]
    page.goto(f"{site.url}/poles/{site.p1}")
    expect(page.get_by_test_id(f"device-{lamp}")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_test_id(f"controls-{lamp}")).to_have_count(0)
    expect(page.locator("[data-testid^=cmd-]")).to_have_count(0)
    session = page.request.get(f"{site.url}/api/session").json()
    forged = page.request.post(
        f"{site.url}/api/devices/{lamp}/rpc",
        data={"method": "setDim", "params": {"level": 0}},
        headers={"X-CSRF-Token": session["csrf"]},
    )
    assert forged.status == 403
    assert forged.headers["content-type"] == "application/problem+json"

    if not site.api("GET", "/api/alarms", "lighting"):  # run without the operator's test
        post_reading(site, "tilt", tilt=9.0)
    go(page, "alarms")
    expect(page.locator("[data-testid^=alarm-][data-type]")).not_to_have_count(0, timeout=WAIT_MS)
    expect(page.locator("[data-testid^=ack-], [data-testid^=clear-]")).to_have_count(0)
    go(page, "work-orders")
    expect(page.get_by_test_id("board")).to_be_visible()
    expect(page.locator("[data-testid^=step-], [data-testid^=assign-]")).to_have_count(0)
    go(page, "rules")
    expect(page.get_by_test_id("rule-editor")).to_have_attribute("readonly", "")
    expect(page.get_by_test_id("rule-save")).to_have_count(0)

    # the labels follow the language switch
    page.get_by_test_id("lang").select_option("zh-CN")
    expect(page.get_by_test_id("rules-page").locator("h1")).to_have_text("规则")
    go(page, "alarms")
    expect(page.get_by_test_id("alarms-page").locator("h1")).to_have_text("告警")

    # another tenant's pole is not reachable by its address
    page.goto(f"{site.url}/poles/{site.p2}")
    expect(page.get_by_test_id("not-found")).to_be_visible(timeout=WAIT_MS)
    assert offline.off_host == []
    assert errors == []
    page.context.close()
