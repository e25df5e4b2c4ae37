"""Prometheus metrics: scraped from a running platform after real ingest, city operator only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fixtures_api import City, make_device
from mqtt_client import V5, Device
from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.model.clock import now_ms
from smartpole.model.types import Role
from smartpole.store import Database

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(client: httpx.AsyncClient, city: City) -> Samples:
    r = await client.get("/metrics", headers=city.auth("city", Role.VIEWER))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_move_with_real_ingest(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    lamp = await make_device(client, city, "lighting", "lamp")
    air = await make_device(client, city, "telecom", "air")
    before = await scrape(client, city)
    dev = Device(platform.mqtt[0].mqtt_port, lamp["token"], V5, client_id="lamp-m")
    assert await dev.connect() == 0
    now = now_ms()
    try:
        during = await scrape(client, city)
        assert value(during, "smartpole_mqtt_connections", listener="mqtt") == 1
        for i in range(5):
            assert (
                await dev.publish(
                    "v1/devices/me/telemetry", {"ts": now - i, "values": {"dim": 10 * i}}
                )
                == 0
            )
        assert await dev.publish("v1/devices/me/telemetry", b"{not json") == 0x99
    finally:
        await dev.close()
    posted = await client.post(f"/api/v1/{air['token']}/telemetry", json={"pm25": 12, "pm10": 20})
    assert posted.status_code == 200, posted.text
    assert (await client.post(f"/api/v1/{air['token']}/telemetry", content=b"[")).status_code == 400
    # 5 MQTT + 2 HTTP readings, and the lamp's presence (``online`` true, then false), which
    # is recorded once the server has seen the socket close
    after = await scrape(client, city)
    for _ in range(200):
        if value(after, "smartpole_readings_stored_total") - value(
            before, "smartpole_readings_stored_total"
        ) >= 9 and not value(after, "smartpole_mqtt_connections", listener="mqtt"):
            break
        await asyncio.sleep(0.05)
        after = await scrape(client, city)
    await platform.hub.settle()
    after = await scrape(client, city)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("smartpole_readings_received_total") == 9
    assert moved("smartpole_readings_stored_total") == 9
    assert moved("smartpole_commit_seconds_count") >= 3  # connect, publishes, HTTP, disconnect
    assert moved("smartpole_messages_rejected_total", transport="mqtt", reason="payload_error") == 1
    assert moved("smartpole_messages_rejected_total", transport="http", reason="payload_error") == 1
    assert moved("smartpole_tenant_readings_accepted_total", tenant="lighting") == 7
    assert moved("smartpole_tenant_readings_accepted_total", tenant="telecom") == 2
    assert value(after, "smartpole_mqtt_connections", listener="mqtt") == 0
    assert value(after, "smartpole_tenant_devices", tenant="lighting", state="all") == 1
    assert value(after, "smartpole_tenant_devices", tenant="lighting", state="reporting") == 1
    assert value(after, "smartpole_tenant_devices", tenant="city", state="all") == 0
    assert value(after, "smartpole_pipeline_pending_readings") == 0
    assert value(after, "smartpole_hub_lag_seconds") == 0
    assert value(after, "process_resident_memory_bytes") > 0


@pytest.mark.parametrize(
    ("tenant", "role", "status"),
    [
        pytest.param(None, None, 401, id="no-key"),
        pytest.param("lighting", Role.ADMIN, 403, id="other-tenant-admin"),
        pytest.param("telecom", Role.VIEWER, 403, id="other-tenant-viewer"),
    ],
)
async def test_metrics_are_for_the_city_operator_only(
    client: httpx.AsyncClient, city: City, tenant: str | None, role: Role | None, status: int
) -> None:
    headers = city.auth(tenant, role) if tenant and role else {}
    r = await client.get("/metrics", headers=headers)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert "smartpole_" not in r.text
    bad = await client.get("/metrics", headers={"Authorization": "Bearer not-a-key"})
    assert bad.status_code == 401


@pytest.fixture
async def separate(database: Database, tmp_path: Path) -> AsyncIterator[Platform]:
    """A platform that also serves metrics on a port of its own."""
    p = Platform(Settings(data_dir=tmp_path, mqtt_port=-1, metrics_port=0), db=database)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def test_separate_metrics_address_needs_no_key(separate: Platform) -> None:
    url = f"http://127.0.0.1:{separate.metrics.port}/metrics"
    async with httpx.AsyncClient() as http:
        r = await http.get(url)
    assert r.status_code == 200
    assert "smartpole_readings_stored_total 0.0" in r.text
    await separate.stop()  # the address closes with the platform
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(url)


async def test_platforms_in_one_process_count_apart(tmp_path: Path) -> None:
    one = Platform(Settings(data_dir=tmp_path / "one", mqtt_port=-1))
    two = Platform(Settings(data_dir=tmp_path / "two", mqtt_port=-1))
    one.upgrade()
    two.upgrade()
    one.metrics.readings_received.inc(3)
    assert "smartpole_readings_received_total 3.0" in one.metrics.exposition().decode()
    assert "smartpole_readings_received_total 0.0" in two.metrics.exposition().decode()
    one.db.dispose()
    two.db.dispose()


async def test_scrape_survives_an_unreachable_database(tmp_path: Path) -> None:
    platform = Platform(Settings(data_dir=tmp_path, mqtt_port=-1))  # never migrated: no tables
    text = platform.metrics.exposition().decode()
    assert "smartpole_pipeline_pending_readings 0.0" in text
    assert "smartpole_tenant_devices{" not in text
    platform.db.dispose()
