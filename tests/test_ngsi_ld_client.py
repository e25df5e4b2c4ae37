"""NGSI-LD with an independent client: ngsildclient (PyPI) against smartpole served by uvicorn on
a real port, in the sandbox mode ``ngsi_ld_anonymous`` (ngsildclient sends no credentials)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ngsildclient import Client, Entity

from fixtures_api import started
from fixtures_http import served
from smartpole.store import Database


@pytest.fixture
async def broker_port(database: Database, tmp_path: Path) -> AsyncIterator[int]:
    """smartpole with a tenant ``city`` (the city operator) that anonymous NGSI-LD requests act
    as, served on a free port."""
    async with started(database, tmp_path, ngsi_ld_anonymous="city:operator") as platform:
        platform.tenants.create("city", "City", is_operator=True)
        async with served(platform) as port:
            yield port


def _session(port: int) -> dict[str, Any]:
    """Create, read, update, query and delete with ngsildclient (blocking: runs in a thread)."""
    client = Client(hostname="127.0.0.1", port=port)
    out: dict[str, Any] = {}
    try:
        for n in range(3):
            e = Entity("AirQualityObserved", f"Futian:{n}")
            e.prop("pm25", 20 + 10 * n, unitcode="GQ")
            e.gprop("location", (22.54, 114.05 + 0.001 * n))
            client.create(e)
        got = client.get("urn:ngsi-ld:AirQualityObserved:Futian:1")
        out["pm25"] = got["pm25"]["value"]
        out["unit"] = got["pm25"]["unitCode"]
        got["pm25"]["value"] = 99
        client.update(got)
        out["updated"] = client.get("urn:ngsi-ld:AirQualityObserved:Futian:1")["pm25"]["value"]
        out["count"] = client.count(type="AirQualityObserved")
        out["dirty"] = sorted(
            e.id for e in client.query_all(type="AirQualityObserved", q="pm25>35")
        )
        out["exists"] = client.exists("urn:ngsi-ld:AirQualityObserved:Futian:2")
        client.delete("urn:ngsi-ld:AirQualityObserved:Futian:2")
        out["gone"] = not client.exists("urn:ngsi-ld:AirQualityObserved:Futian:2")
        out["types"] = client.list_types()
    finally:
        client.close()
    return out


async def test_ngsildclient_creates_reads_updates_queries_and_deletes(broker_port: int) -> None:
    out = await asyncio.to_thread(_session, broker_port)
    assert out["pm25"] == 30
    assert out["unit"] == "GQ"
    assert out["updated"] == 99
    assert out["count"] == 3
    assert out["dirty"] == [
        "urn:ngsi-ld:AirQualityObserved:Futian:1",
        "urn:ngsi-ld:AirQualityObserved:Futian:2",
    ]
    assert out["exists"]
    assert out["gone"]
    assert "AirQualityObserved" in str(out["types"])
