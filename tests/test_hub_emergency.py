"""The hub must not miss an emergency: readings in timestamp order, persistent rule commands,
hysteresis, pole-level root alarms and the latched SOS alarm (issue 11, section 3).

The SOS and flood cases run the shipped default rules, over real MQTT as a pole gateway
sends them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from fixtures_api import City, make_device, make_pole
from mqtt_client import V5, Device
from smartpole.app import Platform
from smartpole.hub.rules import default_rules

T0 = 1_764_000_000_000
SEC = 1000


async def settle(platform: Platform) -> None:
    """Wait until every upload so far is committed, evaluated and acted on."""
    await platform.pipeline._queue.join()  # listeners run before a batch is marked done
    await platform.hub.settle()


async def alarms_of(
    client: httpx.AsyncClient, city: City, tenant: str = "city", **q: Any
) -> list[dict[str, Any]]:
    """Alarms the tenant sees."""
    r = await client.get("/api/alarms", params=q, headers=city.auth(tenant))
    assert r.status_code == 200, r.text
    return list(r.json())


@dataclass
class Street:
    """A pole with a city gateway, an SOS button, a lamp and a flood sensor (lighting's)."""

    pole: int
    gw: dict[str, Any]
    sos: dict[str, Any]
    lamp: dict[str, Any]
    flood: dict[str, Any]


@pytest.fixture
async def street(client: httpx.AsyncClient, city: City) -> Street:
    r = await client.post("/api/rules/import", json=default_rules(), headers=city.auth("city"))
    assert r.status_code == 200, r.text
    pole = await make_pole(client, city, "FT-SOS-0001")
    return Street(
        pole=pole,
        gw=await make_device(client, city, "city", "gateway", pole, name="gw-1", port=1),
        sos=await make_device(client, city, "lighting", "sos", pole, name="sos-1", port=2),
        lamp=await make_device(client, city, "lighting", "lamp", pole, name="lamp-1", port=3),
        flood=await make_device(client, city, "lighting", "flood", pole, name="flood-1", port=4),
    )


@pytest.fixture
async def gateway(platform: Platform, street: Street) -> AsyncIterator[Device]:
    """The pole gateway, connected over MQTT 5 and listening for commands."""
    dev = Device(platform.mqtt[0].mqtt_port, street.gw["token"], V5, client_id="gw-1")
    assert await dev.connect() == 0
    await dev.subscribe("v1/gateway/rpc")
    yield dev
    await dev.close()


def presses(*pressed: bool) -> dict[str, Any]:
    """One gateway message with the SOS button's reports a second apart."""
    return {
        "sos-1": [{"ts": T0 + i * SEC, "values": {"pressed": p}} for i, p in enumerate(pressed)]
    }


async def test_a_press_between_releases_in_one_batch_raises_sos_and_lights_the_lamp(
    platform: Platform, client: httpx.AsyncClient, city: City, street: Street, gateway: Device
) -> None:
    assert await gateway.publish("v1/gateway/connect", {"device": "lamp-1"}) == 0
    # A gateway back from an outage delivers the press and its release in one message.
    assert await gateway.publish("v1/gateway/telemetry", presses(False, True, False)) == 0
    await settle(platform)
    [sos] = await alarms_of(client, city, type="sos")
    assert (sos["originator_type"], sos["originator_id"]) == ("pole", street.pole)
    assert sos["first_ts"] == T0 + SEC  # the press, not the batch's newest reading
    topic, body = await gateway.receive()
    assert (topic, body["device"], body["data"]["method"]) == (
        "v1/gateway/rpc",
        "lamp-1",
        "setDim",
    )
    assert body["data"]["params"] == {"level": 100}


async def test_a_press_reported_after_its_release_still_raises_sos(
    platform: Platform, client: httpx.AsyncClient, city: City, street: Street, gateway: Device
) -> None:
    release = {"sos-1": [{"ts": T0 + 2 * SEC, "values": {"pressed": False}}]}
    press = {"sos-1": [{"ts": T0 + SEC, "values": {"pressed": True}}]}  # late: older than it
    assert await gateway.publish("v1/gateway/telemetry", release) == 0
    await settle(platform)
    assert await gateway.publish("v1/gateway/telemetry", press) == 0
    await settle(platform)
    [sos] = await alarms_of(client, city, type="sos")
    assert sos["first_ts"] == T0 + SEC
