"""Readings committed by a writer process of their own (``store_writer_process``, #16): the
platform reads what it wrote, and a writer killed under QoS 1 load is restarted without losing
an acknowledged reading or counting one twice in the rollups."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from fixtures_api import City, make_device, make_pole, started
from helpers import send
from mqtt_client import read_pubacks
from smartpole.app import Platform
from smartpole.child import ChildStatus
from smartpole.errors import StoreUnavailable
from smartpole.store import Database
from smartpole.transport.mqtt import codec

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
DEVICES = 6
MESSAGES = 40  # per device


@pytest.fixture
async def platform(database: Database, tmp_path: Path) -> AsyncIterator[Platform]:
    """A started platform whose readings are committed by a writer process."""
    async with started(database, tmp_path, store_writer_process=True) as p:
        yield p


async def writer_of(client: httpx.AsyncClient) -> dict[str, Any]:
    """The writer as ``/healthz`` shows it."""
    r = await client.get("/healthz")
    assert r.status_code == 200, r.text
    writer: dict[str, Any] = r.json()["pipeline"]["writer"]
    return writer


def rollups(db: Database) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The stored hourly rollups, and what the readings table says they must be."""
    with db.engine.connect() as conn:
        stored = conn.execute(text("SELECT device_id, key, hour, cnt, sum FROM rollups"))
        return {(d, k, h): (c, round(s, 6)) for d, k, h, c, s in stored}


def recounted(db: Database) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    sql = (
        "SELECT device_id, key, (ts / 3600000) * 3600000 AS h, COUNT(*), SUM(num)"
        " FROM readings WHERE vtype <= 1 GROUP BY device_id, key, h"
    )
    with db.engine.connect() as conn:
        return {(d, k, h): (c, round(s, 6)) for d, k, h, c, s in conn.execute(text(sql))}


async def test_the_writer_is_a_process_of_its_own_and_the_platform_reads_what_it_wrote(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    writer = await writer_of(client)
    assert (writer["alive"], writer["restarts"]) == (True, 0)
    assert writer["pid"] != os.getpid()
    lamp = await make_device(client, city, "lighting", "lamp", await make_pole(client, city, "P"))
    for i in range(3):
        await send(client, lamp["token"], T0 + i * 1000, power=100.0 + i)
    auth = city.auth("lighting")
    r = await client.get(f"/api/devices/{lamp['id']}/latest", headers=auth)
    assert r.json()["power"]["value"] == 102.0  # the writer flushed before the read
    r = await client.get(
        f"/api/devices/{lamp['id']}/timeseries",
        params={"keys": "power", "start": T0, "end": T0 + 3_600_000, "agg": "sum"},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    assert [p["value"] for p in r.json()["power"]] == [303.0]


async def test_a_killed_writer_loses_no_acknowledged_reading_and_counts_none_twice(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    pole = await make_pole(client, city, "P")
    lamps = [await make_device(client, city, "lighting", "lamp", pole) for _ in range(DEVICES)]
    acked = 0
    enough = asyncio.Event()

    async def stream(lamp: dict[str, Any]) -> list[tuple[int, int]]:
        """Publish QoS 1 one message at a time; every PUBACK follows a commit."""
        reader, writer = await asyncio.open_connection("127.0.0.1", platform.mqtt[0].mqtt_port)
        nonlocal acked
        try:
            writer.write(codec.encode(codec.Connect(5, lamp["name"], True, 60, lamp["token"]), 5))
            [(kind, _, _)] = codec.Reader().feed(await reader.read(64))
            assert kind == codec.PacketType.CONNACK
            acks = []
            for i in range(1, MESSAGES + 1):
                body = b'{"ts":%d,"values":{"power":%d}}' % (T0 + i * 1000, i)
                publish = codec.Publish("v1/devices/me/telemetry", body, 1, packet_id=i)
                writer.write(codec.encode(publish, 5))
                acks += await read_pubacks(reader, 1)
                acked += 1
                if acked == DEVICES * MESSAGES // 3:
                    enough.set()
            return acks
        finally:
            writer.close()

    streams = asyncio.gather(*(stream(lamp) for lamp in lamps))
    await enough.wait()
    first = (await writer_of(client))["pid"]
    os.kill(first, signal.SIGKILL)  # batches are out to it, or waiting for it
    results = await streams
    assert results == [[(i, 0) for i in range(1, MESSAGES + 1)]] * DEVICES  # all acknowledged

    writer = await writer_of(client)
    assert writer["alive"] is True
    assert writer["pid"] != first
    assert writer["restarts"] >= 1
    for lamp in lamps:
        r = await client.get(
            f"/api/devices/{lamp['id']}/timeseries",
            params={"keys": "power", "start": T0, "end": T0 + 3_600_000, "limit": 1000},
            headers=city.auth("lighting"),
        )
        assert sorted(p["value"] for p in r.json()["power"]) == list(range(1, MESSAGES + 1))
    await asyncio.to_thread(platform.series.flush)
    counted = rollups(platform.db)
    assert counted == recounted(platform.db)  # the killed writer's batches counted once
    assert sum(c for (_, key, _), (c, _) in counted.items() if key == "power") == DEVICES * MESSAGES


async def test_a_stopped_platform_starts_no_writer_again(
    database: Database, tmp_path: Path
) -> None:
    """A read after the platform stopped (a request still in flight) is refused; it does not
    start a writer that nobody would stop."""
    async with started(database, tmp_path, store_writer_process=True) as p:
        assert p.series.writer is not None
        assert p.series.writer.status().alive is True
    with pytest.raises(StoreUnavailable):
        p.series.flush()
    assert p.series.writer.status() == ChildStatus(None, False, 0)
