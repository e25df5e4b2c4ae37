"""Broker mode behind a real Mosquitto takes the same keys as the built-in endpoint: spaced
and Chinese telemetry keys and attributes, and attribute requests that name them."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from fixtures_api import City
from helpers import device, eventually, latest
from mosquitto import Mosquitto
from smartpole.app import Platform
from smartpole.transport.mqtt import codec

T0 = 1_750_000_000_000


@pytest.fixture
def platform(broker_platform: Platform) -> Platform:
    """Broker mode: the platform consumes from ``broker`` (``fixtures_broker``)."""
    return broker_platform


@pytest.fixture
def lamp(broker_lamp: dict[str, Any]) -> dict[str, Any]:
    """A lamp with its broker account (``fixtures_broker``)."""
    return broker_lamp


ROOM, WENDU, CONNECTOR = "room temp", "温度", "MQTT Broker Connector"


async def test_spaced_and_chinese_keys_through_the_broker(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any], broker: Mosquitto
) -> None:
    got: list[codec.Publish] = []
    mqtt = await device(broker, "lamp-1", lamp["token"], on_message=got.append)
    await mqtt.subscribe([("sp/v1/lamp-1/attributes/response/+", 1)])
    values = {ROOM: 21.5, WENDU: 22}
    await mqtt.publish("sp/v1/lamp-1/telemetry", orjson.dumps({"ts": T0, "values": values}), 1)
    await mqtt.publish("sp/v1/lamp-1/attributes", orjson.dumps({CONNECTOR: "ok"}), qos=1)

    async def stored() -> bool:
        now = await latest(client, city, lamp["id"])
        r = await client.get(f"/api/devices/{lamp['id']}/attributes", headers=city.auth("city"))
        return WENDU in now and CONNECTOR in r.json().get("client", {})

    await eventually(stored)
    assert (await latest(client, city, lamp["id"]))[ROOM] == {"ts": T0, "value": 21.5}
    ask = {"clientKeys": f"{CONNECTOR},{WENDU}"}
    await mqtt.publish("sp/v1/lamp-1/attributes/request/3", orjson.dumps(ask), qos=1)

    async def answered() -> bool:
        return bool(got)

    await eventually(answered)
    assert got[0].topic == "sp/v1/lamp-1/attributes/response/3"
    assert orjson.loads(got[0].payload) == {"client": {CONNECTOR: "ok"}, "shared": {}}
    await mqtt.close()
