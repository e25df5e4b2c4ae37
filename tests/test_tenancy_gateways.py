"""A pole gateway speaks only for devices its tenant owns or that their owner bound to it.

The site: pole P carries the lighting department's gateway ``gw-l`` and lamp ``lamp-l``, and
(by lighting's mount grant) the telecom operator's small cell ``cell-t``. Lighting's gateway
may report its lamp, not telecom's cell, until telecom binds the cell to it. The rule lives
once in the registry; this file tries the built-in MQTT endpoint, ``test_tenancy_broker.py``
broker mode. (The HTTP device API has no gateway API: a device posts only for itself.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from fixtures_api import City, make_device
from helpers import Site, bind, make_site, refusal_logged
from helpers import latest_values as latest
from mqtt_client import V5, V311, Device
from smartpole.app import Platform

T0 = 1_764_000_000_000
RC_NOT_AUTHORIZED = 0x87


async def client_attributes(client: httpx.AsyncClient, city: City, device_id: int) -> Any:
    """The device's client-scope attributes."""
    r = await client.get(f"/api/devices/{device_id}/attributes", headers=city.auth("city"))
    assert r.status_code == 200, r.text
    return {k: v["value"] for k, v in r.json().get("client", {}).items()}


# -- the built-in MQTT endpoint ---------------------------------------------------------------
@pytest.fixture
async def site(client: httpx.AsyncClient, city: City) -> Site:
    return await make_site(client, city)


@pytest.fixture(params=[pytest.param(V5, id="mqtt5"), pytest.param(V311, id="mqtt311")])
async def gateway(
    request: pytest.FixtureRequest, platform: Platform, site: Site
) -> AsyncIterator[Device]:
    """Lighting's gateway, connected over MQTT 5 or 3.1.1."""
    dev = Device(platform.mqtt[0].mqtt_port, site.gw["token"], request.param, client_id="gw-l")
    assert await dev.connect() == 0
    yield dev
    await dev.close()


async def test_a_gateway_report_naming_another_tenants_device_stores_only_its_own(
    gateway: Device,
    client: httpx.AsyncClient,
    city: City,
    site: Site,
    caplog: pytest.LogCaptureFixture,
) -> None:
    report = {
        "lamp-l": [{"ts": T0, "values": {"power": 40}}],
        "cell-t": [{"ts": T0, "values": {"users": 99}}],
    }
    assert await gateway.publish("v1/gateway/telemetry", report) == 0
    attrs = {"lamp-l": {"firmware": "1.2"}, "cell-t": {"firmware": "forged"}}
    assert await gateway.publish("v1/gateway/attributes", attrs) == 0
    assert (await latest(client, city, site.lamp["id"]))["power"] == 40
    assert await client_attributes(client, city, site.lamp["id"]) == {"firmware": "1.2"}
    assert await latest(client, city, site.cell["id"]) == {}
    assert await client_attributes(client, city, site.cell["id"]) == {}
    assert refusal_logged(caplog, "gw-l", "cell-t")


async def test_a_message_for_another_tenants_device_only_is_refused(
    platform: Platform, client: httpx.AsyncClient, city: City, site: Site
) -> None:
    gw = Device(platform.mqtt[0].mqtt_port, site.gw["token"], V5, client_id="gw-l")
    assert await gw.connect() == 0
    try:
        cell = {"cell-t": [{"ts": T0, "values": {"users": 99}}]}
        assert await gw.publish("v1/gateway/telemetry", cell) == RC_NOT_AUTHORIZED
        forged = {"cell-t": {"firmware": "forged"}}
        assert await gw.publish("v1/gateway/attributes", forged) == RC_NOT_AUTHORIZED
        assert await gw.publish("v1/gateway/connect", {"device": "cell-t"}) == RC_NOT_AUTHORIZED
        assert await gw.publish("v1/gateway/claim", {"cell-t": {}}) == RC_NOT_AUTHORIZED
        assert await latest(client, city, site.cell["id"]) == {}  # not even "online"
        assert await client_attributes(client, city, site.cell["id"]) == {}
    finally:
        await gw.close()


async def test_a_binding_lets_the_gateway_speak_until_it_is_revoked(
    platform: Platform, client: httpx.AsyncClient, city: City, site: Site
) -> None:
    gw = Device(platform.mqtt[0].mqtt_port, site.gw["token"], V5, client_id="gw-l")
    assert await gw.connect() == 0
    try:
        binding = await bind(client, city, site.cell["id"], "gw-l")
        cell = {"cell-t": [{"ts": T0, "values": {"users": 5}}]}
        assert await gw.publish("v1/gateway/telemetry", cell) == 0
        assert (await latest(client, city, site.cell["id"]))["users"] == 5
        r = await client.delete(f"/api/bindings/{binding}", headers=city.auth("telecom"))
        assert r.status_code == 200, r.text
        # at once, on the same gateway session
        later = {"cell-t": [{"ts": T0 + 1000, "values": {"users": 6}}]}
        assert await gw.publish("v1/gateway/telemetry", later) == RC_NOT_AUTHORIZED
        assert (await latest(client, city, site.cell["id"]))["users"] == 5
    finally:
        await gw.close()


async def test_auto_creation_never_attaches_to_another_tenants_device(
    platform: Platform, client: httpx.AsyncClient, city: City, site: Site
) -> None:
    r = await client.post(
        f"/api/devices/{site.gw['id']}/attributes/server",
        json={"autoCreateDevices": True},
        headers=city.auth("lighting"),
    )
    assert r.status_code == 200, r.text
    gw = Device(platform.mqtt[0].mqtt_port, site.gw["token"], V5, client_id="gw-l")
    assert await gw.connect() == 0
    try:
        taken = {"device": "cell-t", "type": "small_cell"}
        assert await gw.publish("v1/gateway/connect", taken) == RC_NOT_AUTHORIZED
        new = {"device": "lamp-new", "type": "lamp"}
        assert await gw.publish("v1/gateway/connect", new) == 0
    finally:
        await gw.close()
    r = await client.get("/api/devices", params={"pole_id": site.pole}, headers=city.auth("city"))
    owners = {d["name"]: d["owner"] for d in r.json()["items"]}
    assert owners == {
        "gw-l": "lighting",
        "lamp-l": "lighting",
        "cell-t": "telecom",
        "lamp-new": "lighting",
    }
    assert await latest(client, city, site.cell["id"]) == {}


async def test_a_city_operators_gateway_speaks_for_every_device_on_its_pole(
    platform: Platform, client: httpx.AsyncClient, city: City, site: Site
) -> None:
    """The city operator may already read, change and re-key every device: its gateways
    need no binding (the demo's district runs on this)."""
    gw = await make_device(client, city, "city", "gateway", site.pole, name="gw-city")
    dev = Device(platform.mqtt[0].mqtt_port, gw["token"], V5, client_id="gw-city")
    assert await dev.connect() == 0
    try:
        report = {"cell-t": [{"ts": T0, "values": {"users": 7}}]}
        assert await dev.publish("v1/gateway/telemetry", report) == 0
    finally:
        await dev.close()
    assert (await latest(client, city, site.cell["id"]))["users"] == 7
