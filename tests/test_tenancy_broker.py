"""Broker mode (a real Mosquitto) keeps the gateway rule of ``test_tenancy_gateways.py``."""

from __future__ import annotations

import httpx
import orjson
import pytest

from fixtures_api import City
from helpers import bind, device, eventually, make_site, refusal_logged, sync_files
from helpers import latest_values as latest
from mosquitto import Mosquitto
from smartpole.app import Platform

T0 = 1_764_000_000_000


@pytest.fixture
def platform(broker_platform: Platform) -> Platform:
    """Broker mode: the platform consumes from ``broker`` (``fixtures_broker``)."""
    return broker_platform


async def test_broker_mode_keeps_the_same_rule(
    client: httpx.AsyncClient,
    city: City,
    platform: Platform,
    broker: Mosquitto,
    caplog: pytest.LogCaptureFixture,
) -> None:
    site = await make_site(client, city)
    sync_files(platform, broker)
    mqtt = await device(broker, "gw-l", site.gw["token"])
    try:
        report = {
            "lamp-l": [{"ts": T0, "values": {"power": 40}}],
            "cell-t": [{"ts": T0, "values": {"users": 99}}],
        }
        await mqtt.publish("sp/v1/gw-l/gateway/telemetry", orjson.dumps(report), qos=1)

        async def lamp_stored() -> bool:
            return "power" in await latest(client, city, site.lamp["id"])

        await eventually(lamp_stored)
        assert await latest(client, city, site.cell["id"]) == {}
        assert refusal_logged(caplog, "gw-l", "cell-t")
        forged = {"cell-t": {"firmware": "forged"}, "lamp-l": {"firmware": "1.2"}}
        await mqtt.publish("sp/v1/gw-l/gateway/attributes", orjson.dumps(forged), qos=1)

        async def lamp_attribute_stored() -> bool:
            r = await client.get(
                f"/api/devices/{site.lamp['id']}/attributes", headers=city.auth("city")
            )
            return "firmware" in r.json().get("client", {})

        await eventually(lamp_attribute_stored)

        await bind(client, city, site.cell["id"], "gw-l")
        again = {"cell-t": [{"ts": T0 + 1000, "values": {"users": 5}}]}
        await mqtt.publish("sp/v1/gw-l/gateway/telemetry", orjson.dumps(again), qos=1)

        async def cell_stored() -> bool:
            return "users" in await latest(client, city, site.cell["id"])

        await eventually(cell_stored)
        assert (await latest(client, city, site.cell["id"]))["users"] == 5
        r = await client.get(
            f"/api/devices/{site.cell['id']}/attributes", headers=city.auth("telecom")
        )
        assert "firmware" not in r.json().get("client", {})  # forged before the binding
    finally:
        await mqtt.close()
