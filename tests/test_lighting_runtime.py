"""Lighting at work in a running platform: a change through the API reaches the pole gateway as
its ``lightingPlan``, an SOS press holds the lamps nearby in their plans, and a lamp that does
not follow its plan raises ``out_of_program`` (over real MQTT, on both engines)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures_api import City, make_device, make_pole, started
from mqtt_client import V5, Device
from smartpole.app import Platform
from smartpole.hub.rules.documents import default_rules
from smartpole.lighting.plan import level_at
from smartpole.model.clock import now_ms
from smartpole.model.gateway_plan import PLAN_ATTRIBUTE, plan_level, read_plan_attribute
from smartpole.model.types import Role
from smartpole.store import Database

DOCUMENT = {
    "programs": [
        {"name": "night", "steps": [{"at": "sunset", "level": 80}, {"at": "sunrise", "level": 0}]}
    ],
    "groups": [{"name": "street"}],
    "calendar": [
        {
            "name": "every-night",
            "program": "night",
            "group": "street",
            "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        }
    ],
}


@pytest.fixture
async def platform(database: Database, tmp_path: Path) -> AsyncIterator[Platform]:
    """A started platform whose lighting works every 0.1 s and raises out of program at once."""
    async with started(database, tmp_path, lighting_tick_s=0.1, lighting_out_of_program_s=0) as p:
        yield p


@dataclass
class Street:
    """Two poles 50 m apart with the city's gateways, the lighting department's lamps, and an
    SOS button (the police's) on the first."""

    gateways: list[dict[str, Any]]
    lamps: list[dict[str, Any]]
    sos: dict[str, Any]


@pytest.fixture
async def street(client: httpx.AsyncClient, city: City) -> Street:
    poles = [
        await make_pole(client, city, "FT-LR-0001", lat=22.5400, lon=114.0500),
        await make_pole(client, city, "FT-LR-0002", lat=22.5404, lon=114.0502),
    ]
    gateways, lamps = [], []
    for i, pole in enumerate(poles, 1):
        gateways.append(
            await make_device(client, city, "city", "gateway", pole, name=f"gw-{i}", port=1)
        )
        lamps.append(
            await make_device(client, city, "lighting", "lamp", pole, name=f"lamp-{i}", port=2)
        )
    sos = await make_device(client, city, "lighting", "sos", poles[0], name="sos-1", port=3)
    return Street(gateways, lamps, sos)


async def light(client: httpx.AsyncClient, city: City) -> dict[str, str]:
    """The lighting tenant's document imported; its operator's headers."""
    op = city.auth("lighting", Role.OPERATOR)
    r = await client.put("/api/lighting/document", json=DOCUMENT, headers=op)
    assert r.status_code == 200, r.text
    return op


async def plan_pushed(gateway: Device, lamp: str, ts: int, level: float) -> dict[str, Any]:
    """The first ``lightingPlan`` pushed to the gateway that gives ``lamp`` ``level`` at ``ts``."""
    for _ in range(20):
        topic, body = await gateway.receive()
        if topic == "v1/devices/me/attributes" and PLAN_ATTRIBUTE in body:
            plan = read_plan_attribute(body[PLAN_ATTRIBUTE])
            if lamp in plan.lamps and plan_level(plan.lamps[lamp], ts) == level:
                return dict(body[PLAN_ATTRIBUTE])
    raise AssertionError(f"no plan with {lamp} at {level} %")


async def test_an_override_reaches_the_pole_gateway_as_its_lighting_plan(
    platform: Platform, client: httpx.AsyncClient, city: City, street: Street
) -> None:
    gateway = Device(platform.mqtt[0].mqtt_port, street.gateways[0]["token"], V5, client_id="g1")
    assert await gateway.connect() == 0
    try:
        await gateway.subscribe("v1/devices/me/attributes")
        op = await light(client, city)
        body = {"group": "street", "level": 37, "duration_s": 600, "reason": "road works"}
        r = await client.post("/api/lighting/overrides", json=body, headers=op)
        assert r.status_code == 201, r.text
        pushed = await plan_pushed(gateway, "lamp-1", now_ms() + 1000, 37)
    finally:
        await gateway.close()
    # the city's gateway carries the lighting department's lamp on its pole, and only that one
    assert set(read_plan_attribute(pushed).lamps) == {"lamp-1"}
    r = await client.get(
        f"/api/devices/{street.gateways[0]['id']}/attributes",
        params={"scope": "shared"},
        headers=city.auth("city"),
    )
    assert r.status_code == 200, r.text
    assert PLAN_ATTRIBUTE in str(r.json())  # kept: a gateway that reconnects asks for it


async def test_an_sos_press_holds_the_lamps_nearby_at_full_light_in_their_plans(
    platform: Platform, client: httpx.AsyncClient, city: City, street: Street
) -> None:
    r = await client.post("/api/rules/import", json=default_rules(), headers=city.auth("city"))
    assert r.status_code == 200, r.text
    op = await light(client, city)
    gateway = Device(platform.mqtt[0].mqtt_port, street.gateways[0]["token"], V5, client_id="g1")
    assert await gateway.connect() == 0
    try:
        press = {"sos-1": [{"ts": now_ms(), "values": {"pressed": True}}]}
        assert await gateway.publish("v1/gateway/telemetry", press) == 0
        held: list[dict[str, Any]] = []
        for _ in range(200):
            r = await client.get("/api/lighting/overrides", headers=op)
            held = [o for o in r.json() if o["lamps"]]
            if held:
                break
            await asyncio.sleep(0.05)
    finally:
        await gateway.close()
    [hold] = held
    assert hold["lamps"] == ["lamp-1", "lamp-2"]  # both poles are within 100 m of the press
    assert hold["level"] == 100
    assert hold["until"] - hold["start"] == pytest.approx(30 * 60_000, abs=5_000)
    assert "rule sos" in hold["reason"]
    for lamp in ("lamp-1", "lamp-2"):
        q = {"lamp": lamp, "at": now_ms()}
        r = await client.get("/api/lighting/plan", params=q, headers=op)
        assert r.status_code == 200, r.text
        assert r.json()["level"] == 100


async def test_a_lamp_off_its_plan_raises_out_of_program_and_clears_when_back(
    platform: Platform, client: httpx.AsyncClient, city: City, street: Street
) -> None:
    op = await light(client, city)
    body = {"group": "street", "level": 50, "duration_s": 600}
    assert (await client.post("/api/lighting/overrides", json=body, headers=op)).status_code == 201
    lamp = Device(platform.mqtt[0].mqtt_port, street.lamps[1]["token"], V5, client_id="l2")
    assert await lamp.connect() == 0

    async def out_of_program() -> list[dict[str, Any]]:
        await platform.pipeline.drain()
        r = await client.get(
            "/api/alarms", params={"type": "out_of_program"}, headers=city.auth("lighting")
        )
        return [a for a in r.json() if a["originator_id"] == street.lamps[1]["id"]]

    try:
        for dim in (100, 100):  # stuck at full light: not what its plan says
            assert await lamp.publish("v1/devices/me/telemetry", {"dim": dim}) == 0
            await asyncio.sleep(0.01)
        raised = await until(out_of_program, lambda a: a and a[0]["status"].startswith("active"))
        assert raised[0]["details"]["commanded"] == 50
        assert raised[0]["details"]["actual"] == 100
        assert await lamp.publish("v1/devices/me/telemetry", {"dim": 50}) == 0
        await until(out_of_program, lambda a: a and a[0]["status"].startswith("cleared"))
    finally:
        await lamp.close()
    plan = platform.lighting.compiled(city.ids["lighting"])["lamp-2"]
    assert level_at(plan, now_ms())[0] == 50


async def until(read: Any, ok: Any) -> Any:
    """Poll ``read`` (bounded) until ``ok`` says yes; its last answer."""
    for _ in range(200):
        found = await read()
        if ok(found):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {found}")
