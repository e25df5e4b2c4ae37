"""The hub end to end: readings through real HTTP ingest become alarms, commands, webhooks."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fixtures_api import City, make_device, make_pole, started
from helpers import TILT_RULE, add_rule, alarms_of, send, settle
from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.hub.rules.tables import rule_state
from smartpole.hub.webhooks.store import SIGNATURE_HEADER, sign
from smartpole.model.types import Role
from smartpole.registry.access import Principal
from smartpole.store import Database

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
MIN = 60_000


@pytest.fixture(params=[0, 1], ids=["in-process", "worker"])
async def platform(
    database: Database, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Platform]:
    """A started platform evaluating its rules in-process, or in a worker process (#16); its
    timer runs only when a test calls ``hub.tick`` (on the wall clock, past T0, it would
    complete the durations the tests count from T0)."""
    async with started(database, tmp_path, hub_workers=request.param, hub_tick_ms=3_600_000) as p:
        yield p


async def test_threshold_raises_counts_and_clears_an_alarm(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    await add_rule(client, city, "city", TILT_RULE)
    pole = await make_pole(client, city, "P-1")
    tilt = await make_device(client, city, "lighting", "tilt", pole)
    await send(client, tilt["token"], T0, tilt=2.0)
    await send(client, tilt["token"], T0 + 1000, tilt=7.5)
    await settle(platform)
    [alarm] = await alarms_of(client, city, "lighting")
    assert (alarm["originator_type"], alarm["originator_id"]) == ("pole", pole)
    assert (alarm["status"], alarm["severity"], alarm["count"]) == ("active_unack", "major", 1)
    assert alarm["details"]["values"] == {"tilt": 7.5}
    await send(client, tilt["token"], T0 + 2000, tilt=8.0)  # still tilted: no new raise
    await send(client, tilt["token"], T0 + 3000, tilt=1.0)
    await settle(platform)
    [alarm] = await alarms_of(client, city, "lighting")
    assert (alarm["status"], alarm["cleared_ts"]) == ("cleared_unack", T0 + 3000)
    assert await alarms_of(client, city, "telecom") == []


async def test_duration_holds_across_batches_and_the_timer(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    rule = {
        "name": "pm25",
        "scope": {"kinds": ["air"]},
        "condition": {"key": "pm25", "op": ">", "value": 75, "for": "10m"},
        "actions": [{"alarm": {"type": "air_quality", "severity": "minor"}}],
    }
    await add_rule(client, city, "city", rule)
    air = await make_device(client, city, "telecom", "air", await make_pole(client, city, "P-2"))
    await send(client, air["token"], T0, pm25=80)
    await send(client, air["token"], T0 + 5 * MIN, pm25=90)
    await settle(platform)
    assert await alarms_of(client, city, "telecom") == []
    await platform.hub.tick(now=T0 + 11 * MIN)  # no reading needed: time alone completes it
    await settle(platform)
    [alarm] = await alarms_of(client, city, "telecom")
    assert alarm["type"] == "air_quality"
    assert alarm["first_ts"] == T0 + 11 * MIN


async def test_rule_state_survives_a_restart(
    database: Database, client: httpx.AsyncClient, city: City, platform: Platform, tmp_path: Any
) -> None:
    rule = {
        "name": "flood",
        "condition": {"key": "water_level", "op": ">=", "value": 15, "for": "5m"},
        "actions": [{"alarm": {"type": "flood", "severity": "critical"}}],
    }
    await add_rule(client, city, "city", rule)
    flood = await make_device(client, city, "lighting", "flood", await make_pole(client, city, "F"))
    await send(client, flood["token"], T0, water_level=20)
    await settle(platform)
    await platform.hub.tick(now=T0 + MIN)  # writes the state: holding since T0
    await asyncio.to_thread(platform.series.flush)  # as stopping the first node would
    # A second hub on the same database, as after a restart: it knows nothing in memory.
    second = Platform(Settings(data_dir=tmp_path, batch_age_ms=2, mqtt_port=-1), db=database)
    await second.hub.start()
    try:
        await second.hub.tick(now=T0 + 4 * MIN)
        await second.hub.settle()
        assert second.hub.alarms.find(city_principal(second, city)) == []
        await second.hub.tick(now=T0 + 5 * MIN)  # five minutes since T0, not since restart
        await second.hub.settle()
        [alarm] = second.hub.alarms.find(city_principal(second, city))
        assert (alarm.type, alarm.first_ts) == ("flood", T0 + 5 * MIN)
    finally:
        await second.hub.stop()
        second.series.close()


def city_principal(p: Platform, city: City) -> Principal:
    """The city operator as a principal."""
    return Principal(city.ids["city"], "city", Role.ADMIN, True)


async def test_sos_commands_nearby_lamps_and_the_display_and_alerts_police(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    police = platform.tenants.create("police", "Police")["id"]
    police_key = platform.tenants.create_key(police, Role.VIEWER)[1]
    here = await make_pole(client, city, "SOS-1", lat=22.5400, lon=114.0500)
    near = await make_pole(client, city, "N-1", lat=22.5405, lon=114.0500)  # ~55 m
    far = await make_pole(client, city, "FAR", lat=22.5500, lon=114.0500)  # ~1.1 km
    sos = await make_device(client, city, "lighting", "sos", here)
    lamps = {
        p: await make_device(client, city, "lighting", "lamp", p, port=1) for p in (here, near, far)
    }
    display = await make_device(client, city, "lighting", "display", here, port=2)
    rule = {
        "name": "sos",
        "scope": {"kinds": ["sos"]},
        "condition": {"key": "pressed", "op": "==", "value": True},
        "actions": [
            {"alarm": {"type": "sos", "severity": "critical", "propagate": ["police"]}},
            {
                "command": {
                    "kind": "lamp",
                    "target": {"within_m": 100},
                    "method": "setDim",
                    "params": {"level": 100},
                    "persistent": True,
                }
            },
            {
                "command": {
                    "kind": "display",
                    "target": "pole",
                    "method": "showMessage",
                    "params": {"text": "Help is on the way"},
                    "persistent": True,
                }
            },
        ],
    }
    await add_rule(client, city, "city", rule)
    await send(client, sos["token"], T0, pressed=True)
    await settle(platform)

    async def methods(device: dict[str, Any]) -> list[str]:
        r = await client.get(f"/api/devices/{device['id']}/commands", headers=city.auth("city"))
        return [c["method"] for c in r.json()]

    assert await methods(lamps[here]) == ["setDim"]
    assert await methods(lamps[near]) == ["setDim"]
    assert await methods(lamps[far]) == []
    assert await methods(display) == ["showMessage"]
    seen = await client.get("/api/alarms", headers={"Authorization": f"Bearer {police_key}"})
    assert [a["type"] for a in seen.json()] == ["sos"]
    assert await alarms_of(client, city, "telecom") == []
    alarm_id = seen.json()[0]["id"]
    r = await client.get(f"/api/alarms/{alarm_id}", headers=city.auth("telecom"))
    assert r.status_code == 404


@dataclass
class HookServer:
    """A local HTTP server that checks signatures and fails its first call."""

    secret: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0
    got: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        headers = {}
        for line in head.decode().split("\r\n")[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        body = await reader.readexactly(int(headers["content-length"]))
        self.calls += 1
        good = hmac.compare_digest(headers[SIGNATURE_HEADER.lower()], sign(self.secret, body))
        status = b"500 Try Again" if self.calls == 1 or not good else b"204 No Content"
        if status.startswith(b"204"):
            self.bodies.append(orjson.loads(body))
            self.got.set()
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()


@pytest.fixture
async def hook_server() -> AsyncIterator[tuple[HookServer, int]]:
    """The server and its port."""
    hook = HookServer(secret="s3cret-for-the-test-0123456789")
    server = await asyncio.start_server(hook.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield hook, port
    finally:
        server.close()
        await server.wait_closed()


async def test_webhook_is_signed_retried_and_its_attempts_are_visible(
    platform: Platform, client: httpx.AsyncClient, city: City, hook_server: Any
) -> None:
    hook, port = hook_server
    platform.hub.webhooks.backoff_ms = 10
    r = await client.post(
        "/api/webhooks",
        json={"name": "ops", "url": f"http://127.0.0.1:{port}/hook", "secret": hook.secret},
        headers=city.auth("lighting"),
    )
    assert r.status_code == 201, r.text
    hook_id = r.json()["id"]
    rule = {
        "name": "manhole",
        "scope": {"kinds": ["manhole"]},
        "condition": {"key": "open", "op": "==", "value": True},
        "actions": [
            {"alarm": {"type": "manhole_open", "severity": "major"}},
            {"webhook": {"name": "ops", "on": "raise"}},
        ],
    }
    await add_rule(client, city, "lighting", rule)
    cover = await make_device(
        client, city, "lighting", "manhole", await make_pole(client, city, "M")
    )
    await send(client, cover["token"], T0, open=True)
    await settle(platform)
    await asyncio.wait_for(hook.got.wait(), 30)
    [body] = hook.bodies
    assert (body["event"], body["rule"], body["alarm"]["type"]) == (
        "rule.raised",
        "manhole",
        "manhole_open",
    )
    r = await client.get(f"/api/webhooks/{hook_id}/deliveries", headers=city.auth("lighting"))
    [delivery] = r.json()
    async with asyncio.timeout(30):
        while delivery["status"] != "delivered":  # the record lands just after the answer
            await asyncio.sleep(0.01)
            r = await client.get(
                f"/api/webhooks/{hook_id}/deliveries", headers=city.auth("lighting")
            )
            [delivery] = r.json()
    assert (delivery["attempts"], delivery["last_code"]) == (2, 204)
    listing = await client.get("/api/webhooks", headers=city.auth("lighting"))
    assert hook.secret not in listing.text
    r = await client.get(f"/api/webhooks/{hook_id}/deliveries", headers=city.auth("telecom"))
    assert r.status_code == 404


async def test_a_rule_added_while_its_condition_holds_raises_at_once(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    pole = await make_pole(client, city, "NEW-1")
    tilt = await make_device(client, city, "lighting", "tilt", pole)
    await add_rule(client, city, "city", {**TILT_RULE, "name": "unrelated"})  # keys kept: tilt
    await send(client, tilt["token"], T0, tilt=9.0)
    await settle(platform)
    rule = {
        "name": "tilt-hard",
        "condition": {"key": "tilt", "op": ">", "value": 8},
        "actions": [{"alarm": {"type": "tilt_hard", "severity": "critical"}}],
    }
    await add_rule(client, city, "city", rule)  # no reading since: the pole leans already
    await platform.hub.settle()
    alarms = {a["type"]: a for a in await alarms_of(client, city, "lighting")}
    assert alarms["tilt_hard"]["first_ts"] == T0  # as of the reading that shows it
    assert alarms["tilt_hard"]["details"]["values"] == {"tilt": 9.0}


async def test_a_new_combination_rule_sees_a_key_no_rule_read_before(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    await add_rule(client, city, "city", TILT_RULE)  # the only rule: only tilt is kept
    pole = await make_pole(client, city, "NEW-2")
    sensor = await make_device(client, city, "lighting", "tilt", pole)
    await send(client, sensor["token"], T0, tilt=1.0, water_level=30)
    await settle(platform)
    rule = {
        "name": "flood-tilt",
        "condition": {
            "all": [
                {"key": "water_level", "op": ">=", "value": 20},
                {"key": "tilt", "op": ">", "value": 3},
            ]
        },
        "actions": [{"alarm": {"type": "flood_tilt", "severity": "critical"}}],
    }
    await add_rule(client, city, "city", rule)
    await send(client, sensor["token"], T0 + MIN, tilt=4.0)  # water_level stands at 30
    await settle(platform)
    types = {a["type"] for a in await alarms_of(client, city, "lighting")}
    assert "flood_tilt" in types


async def test_a_rule_deleted_before_the_state_is_written_loses_no_other_state(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    timed = {
        "condition": {"key": "water_level", "op": ">=", "value": 15, "for": "5m"},
        "actions": [{"alarm": {"type": "flood", "severity": "critical"}}],
    }
    kept = await add_rule(client, city, "city", {**timed, "name": "kept"})
    doomed = await add_rule(client, city, "city", {**timed, "name": "doomed"})
    flood = await make_device(client, city, "lighting", "flood", await make_pole(client, city, "D"))
    await send(client, flood["token"], T0, water_level=20)
    await settle(platform)
    # Deleted in the store as by another node, before this one reloads and writes its state.
    hub = platform.hub
    await asyncio.to_thread(hub.rules.delete, city_principal(platform, city), doomed)
    hub._flush_state()
    with platform.db.engine.connect() as conn:
        rows = conn.execute(rule_state.select()).all()
    assert {(r.rule_id, r.device_id) for r in rows} == {(kept, flood["id"])}
    assert orjson.loads(rows[0].state)["active"] is False


async def test_a_rule_whose_alarm_type_changes_clears_the_old_alarm_and_raises_the_new(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    tilt = await make_device(client, city, "lighting", "tilt", await make_pole(client, city, "C"))
    await add_rule(client, city, "city", TILT_RULE)
    await send(client, tilt["token"], T0, tilt=9.0)
    await settle(platform)
    renamed = {**TILT_RULE, "actions": [{"alarm": {"type": "pole_lean", "severity": "major"}}]}
    r = await client.post("/api/rules", json=renamed, headers=city.auth("city"))
    assert r.status_code == 200, r.text  # the rule of that name replaced
    await platform.hub.settle()
    status = {a["type"]: a["status"] for a in await alarms_of(client, city, "lighting")}
    assert status == {"pole_tilt": "cleared_unack", "pole_lean": "active_unack"}
    await send(client, tilt["token"], T0 + MIN, tilt=1.0)  # upright again: the new one clears
    await settle(platform)
    status = {a["type"]: a["status"] for a in await alarms_of(client, city, "lighting")}
    assert status == {"pole_tilt": "cleared_unack", "pole_lean": "cleared_unack"}
