"""A restart is not an outage of every device (issue 12): the platform's own downtime does not
count as device offline time.

A real platform on the test's database (both engines) and data directory is stopped and started
again, with real pole gateways over MQTT. The offline rule waits ``DELAY`` (a short stand-in for
the default 10 minutes) and the platform stays down longer than that, as a restart after an
upgrade does. The hub timer runs only when a test calls ``hub.tick`` (and once at each start),
so that every check happens at a chosen time after the start.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures_api import City, make_device, make_pole
from mqtt_client import V5, Device
from smartpole.api import create_app
from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.model.alarms import Alarm
from smartpole.model.clock import now_ms
from smartpole.model.types import Role
from smartpole.registry.access import Principal
from smartpole.store import Database

DELAY_S = 4  # the first timer run after a start must come sooner than this
DELAY = DELAY_S * 1000
OFFLINE_RULE = {
    "name": "device-offline",
    "condition": {"offline": True, "for": f"{DELAY_S}s"},
    "actions": [{"alarm": {"type": "device_offline", "severity": "minor"}}],
}


@dataclass
class Running:
    """A started platform and an HTTP client talking to it."""

    platform: Platform
    client: httpx.AsyncClient


@asynccontextmanager
async def serve(database: Database, data_dir: Path, node: str = "a") -> AsyncIterator[Running]:
    """Start a platform (node ``node``) on the database and data directory; stop it on
    leaving."""
    settings = Settings(
        data_dir=data_dir, batch_age_ms=2, mqtt_port=0, hub_tick_ms=3_600_000, node_id=node
    )
    p = Platform(settings, db=database)
    await p.start()
    try:
        app = create_app(p.api_services())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://smartpole.test") as c:
            yield Running(p, c)
    finally:
        await p.stop()
        gc.collect()


async def settle(platform: Platform) -> None:
    """Wait until every upload so far is committed, evaluated and acted on."""
    await platform.pipeline.drain()
    await platform.hub.settle()


def city_of(platform: Platform) -> City:
    """The city operator, with its admin key."""
    row = platform.tenants.create("city", "City", True)
    return City(
        ids={"city": row["id"]},
        keys={("city", Role.ADMIN): platform.tenants.create_key(row["id"], Role.ADMIN)[1]},
    )


@dataclass
class Pole:
    """A pole with its gateway and two devices the gateway reports."""

    id: int
    gateway: dict[str, Any]
    devices: list[dict[str, Any]]

    @property
    def ids(self) -> set[int]:
        """The ids of every device on the pole, the gateway's included."""
        return {self.gateway["id"], *(d["id"] for d in self.devices)}


async def make_street_pole(run: Running, city: City, code: str) -> Pole:
    """A pole with a gateway, a lamp and an air sensor."""
    pole = await make_pole(run.client, city, code)
    c = run.client
    return Pole(
        id=pole,
        gateway=await make_device(c, city, "city", "gateway", pole, name=f"{code}-gw", port=1),
        devices=[
            await make_device(c, city, "city", "lamp", pole, name=f"{code}-lamp", port=2),
            await make_device(c, city, "city", "air", pole, name=f"{code}-air", port=3),
        ],
    )


async def connect(platform: Platform, pole: Pole) -> Device:
    """The pole's gateway connects and reports its devices, as after every (re)connection."""
    gw = Device(platform.mqtt[0].mqtt_port, pole.gateway["token"], V5)
    assert await gw.connect() == 0
    report = {d["name"]: [{"values": {"temperature": 21}}] for d in pole.devices}
    assert await gw.publish("v1/gateway/telemetry", report) == 0
    await settle(platform)
    return gw


def offline_alarms(platform: Platform, city: City) -> list[Alarm]:
    """Every device_offline and pole_offline alarm the city sees, active or not."""
    who = Principal(city.ids["city"], "city", Role.ADMIN, True)
    return [
        a
        for a in platform.hub.alarms.find(who, limit=1000)
        if a.type in ("device_offline", "pole_offline")
    ]


async def tick(platform: Platform, at: int) -> None:
    """Run the hub timer as of ``at`` and wait for what it does."""
    await platform.hub.tick(now=at)
    await settle(platform)


async def test_a_restart_raises_nothing_for_devices_that_come_back_and_once_for_the_others(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve(database, tmp_path) as run:
        city = city_of(run.platform)
        r = await run.client.post("/api/rules", json=OFFLINE_RULE, headers=city.auth("city"))
        assert r.status_code == 201, r.text
        back = await make_street_pole(run, city, "FT-1")
        gone = await make_street_pole(run, city, "FT-2")
        before = [await connect(run.platform, p) for p in (back, gone)]
    # The platform is down for longer than the rule's delay, the gateways still powered.
    await asyncio.sleep(DELAY_S + 0.5)
    caplog.set_level(logging.INFO)
    try:
        async with serve(database, tmp_path) as run:
            p = run.platform
            again = await connect(p, back)  # within seconds of the start; `gone` never does
            try:
                await tick(p, p.hub.started + DELAY - 500)
                assert offline_alarms(p, city) == []  # the downtime is nobody's outage
                await tick(p, p.hub.started + DELAY + 500)
                raised = offline_alarms(p, city)
                await tick(p, p.hub.started + 3 * DELAY)
                assert offline_alarms(p, city) == raised  # once, not again at every tick
            finally:
                await again.close()
    finally:
        for gw in before:
            await gw.close()
    assert {(a.originator_type, a.originator_id) for a in raised} == {
        *(("device", d) for d in gone.ids),
        ("pole", gone.id),
    }
    assert all(a.status.active and a.count == 1 for a in raised)
    loud = [
        rec.getMessage()
        for rec in caplog.records
        if rec.levelno >= logging.INFO and rec.name.startswith("smartpole.hub")
    ]
    assert loud == []  # no line per device or per pole at the default level


async def test_an_alarm_raised_before_a_restart_stays_as_it_is(
    database: Database, tmp_path: Path
) -> None:
    async with serve(database, tmp_path) as run:
        p = run.platform
        city = city_of(p)
        r = await run.client.post("/api/rules", json=OFFLINE_RULE, headers=city.auth("city"))
        assert r.status_code == 201, r.text
        pole = await make_street_pole(run, city, "FT-3")
        gw = await connect(p, pole)
        await gw.close()  # the pole loses power
        for _ in range(200):  # the server sees the connection end after the client returned
            if pole.gateway["id"] in p.devices.offline:
                break
            await asyncio.sleep(0.05)
        await settle(p)
        await tick(p, now_ms() + DELAY + 500)
        before = offline_alarms(p, city)
        assert {(a.originator_type, a.originator_id) for a in before} == {
            *(("device", d) for d in pole.ids),
            ("pole", pole.id),
        }
    # The platform is down until the wall clock has passed the tick above, as it would have.
    await asyncio.sleep(DELAY_S + 0.5)
    async with serve(database, tmp_path) as run:
        p = run.platform
        await tick(p, p.hub.started + 500)  # within the delay of the start: kept, not cleared
        assert offline_alarms(p, city) == before
        await tick(p, p.hub.started + 3 * DELAY)  # past it: not raised a second time
        assert offline_alarms(p, city) == before


async def test_a_device_that_moved_to_another_node_is_not_offline_for_the_restarted_one(
    database: Database, tmp_path: Path
) -> None:
    """Two nodes with built-in endpoints on one database: node A stops, its gateway reconnects
    to node B, A starts again. A's hub has the stop's offline records and never sees the
    gateway's new session (B's batches), but the store's last-seen times tell it."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    other = Database(database.url)  # a process of its own: its own pool
    async with serve(other, tmp_path / "b", node="b") as b:
        async with serve(database, tmp_path / "a", node="a") as a:
            city = city_of(a.platform)
            r = await a.client.post("/api/rules", json=OFFLINE_RULE, headers=city.auth("city"))
            assert r.status_code == 201, r.text
            pole = await make_street_pole(a, city, "FT-4")
            first = await connect(a.platform, pole)
        async with serve(database, tmp_path / "a", node="a") as a:
            moved = await connect(b.platform, pole)  # the gateway finds node B first
            try:
                await a.platform.hub.reload()  # as its timer does every 30 s
                await tick(a.platform, a.platform.hub.started + 3 * DELAY)
                assert offline_alarms(a.platform, city) == []
            finally:
                await moved.close()
                await first.close()
