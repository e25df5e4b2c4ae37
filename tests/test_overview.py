"""The operations overview: devices by kind, active alarms, today's lamp energy and the
districts' air quality, each from what the caller's tenant may see."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import httpx

from fixtures_api import City, make_device, make_pole
from helpers import add_rule, send, settle
from smartpole.app import Platform
from smartpole.model.clock import now_ms
from smartpole.model.types import Role

TILT_RULE = {
    "name": "tilt",
    "scope": {"kinds": ["tilt"]},
    "condition": {"key": "tilt", "op": ">", "value": 5},
    "actions": [{"alarm": {"type": "pole_tilt", "severity": "major"}}],
}


async def test_overview_counts_what_the_tenant_sees(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    futian = await make_pole(client, city, "FT-001-001")
    luohu = await make_pole(client, city, "LH-001-001", district="Luohu")
    lamp = await make_device(client, city, "lighting", "lamp", futian)
    air_ft = await make_device(client, city, "city", "air", futian)
    air_lh = await make_device(client, city, "city", "air", luohu)
    tilt = await make_device(client, city, "telecom", "tilt", luohu)
    await make_device(client, city, "telecom", "camera", luohu)
    await add_rule(client, city, "telecom", TILT_RULE)
    now = now_ms()
    first = (await client.get("/api/overview", headers=city.auth("city"))).json()
    start = first["day_start"]
    assert start <= now
    # "today" is the tenant's: it starts at midnight in the zone the answer names
    midnight = datetime.fromtimestamp(start / 1000, ZoneInfo(first["timezone"]))
    assert (midnight.hour, midnight.minute, midnight.second) == (0, 0, 0)
    assert now - start < 86_400_000
    await send(client, lamp["token"], start + 1000, energy=100.0)
    await send(client, lamp["token"], now, energy=102.5)
    await send(client, air_ft["token"], now, aqi=40)
    await send(client, air_lh["token"], now, aqi=160)
    await send(client, tilt["token"], now, tilt=9.0)
    await settle(platform)

    r = await client.get("/api/overview", headers=city.auth("city", Role.VIEWER))
    assert r.status_code == 200, r.text
    body = r.json()
    kinds = {k["kind"]: k for k in body["devices"]}
    assert set(kinds) == {"lamp", "air", "tilt", "camera"}
    assert kinds["air"]["online"] + kinds["air"]["offline"] == 2
    assert body["alarms"]["major"] == 1
    assert body["alarms"]["critical"] == 0
    assert body["lamp_energy_kwh"] == 2.5
    assert body["air"] == [
        {"district": "Futian", "aqi": 40.0, "level": 1, "devices": 1},
        {"district": "Luohu", "aqi": 160.0, "level": 4, "devices": 1},
    ]

    lighting = (await client.get("/api/overview", headers=city.auth("lighting"))).json()
    assert [k["kind"] for k in lighting["devices"]] == ["lamp"]
    assert lighting["alarms"]["major"] == 0  # the telecom's tilt alarm is not the lighting's
    assert lighting["lamp_energy_kwh"] == 2.5
    assert lighting["air"] == []


async def test_overview_needs_a_key(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/overview")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
