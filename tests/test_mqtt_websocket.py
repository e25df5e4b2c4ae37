"""MQTT over WebSocket (``mqtt_ws_port``), with paho's ``transport="websockets"``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from fixtures_api import City, make_device, started
from mqtt_client import V5, V311, Device
from smartpole.app import Platform
from smartpole.store import Database
from smartpole.transport.mqtt.websocket import MqttWebSocketServer


@pytest.fixture
async def platform(database: Database, tmp_path: Path) -> AsyncIterator[Platform]:
    """A started platform with MQTT over WebSocket on a free port (this module only)."""
    async with started(database, tmp_path, mqtt_ws_port=0) as p:
        yield p


def ws_port(platform: Platform) -> int:
    return next(s for s in platform.mqtt if isinstance(s, MqttWebSocketServer)).mqtt_port


def ws_device(platform: Platform, token: str | None, version: int, client_id: str) -> Device:
    """The test's paho device, over a WebSocket (paho offers the subprotocol ``mqtt``)."""
    dev = Device(ws_port(platform), token, version, client_id=client_id)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version, transport="websockets"
    )
    client.ws_set_options(path="/mqtt")
    if token is not None:
        client.username_pw_set(token)
    client.on_connect = dev._on_connect
    client.on_publish = dev._on_publish
    client.on_message = lambda _c, _u, m: dev.messages.put((m.topic, m.payload))
    client.on_disconnect = dev._on_disconnect
    dev.client = client
    return dev


@pytest.fixture
async def lamp(client: httpx.AsyncClient, city: City) -> dict[str, Any]:
    return await make_device(client, city, "lighting", "lamp", name="lamp-ws")


@pytest.mark.parametrize(
    "version", [pytest.param(V5, id="mqtt5"), pytest.param(V311, id="mqtt311")]
)
async def test_telemetry_commands_and_attributes_over_websocket(
    platform: Platform,
    client: httpx.AsyncClient,
    city: City,
    lamp: dict[str, Any],
    version: int,
) -> None:
    dev = ws_device(platform, lamp["token"], version, "lamp-ws")
    try:
        assert await dev.connect() == 0
        assert await dev.publish("v1/devices/me/telemetry", {"power": 33.5}) == 0
        r = await client.get(f"/api/devices/{lamp['id']}/latest", headers=city.auth("lighting"))
        assert r.json()["power"]["value"] == 33.5  # acknowledged after the commit, as on TCP
        await dev.subscribe("v1/devices/me/attributes", "v1/devices/me/rpc/request/+")
        await client.post(
            f"/api/devices/{lamp['id']}/attributes/shared",
            json={"dim_max": 70},
            headers=city.auth("lighting"),
        )
        assert await dev.receive() == ("v1/devices/me/attributes", {"dim_max": 70})
        command = asyncio.create_task(
            client.post(
                f"/api/devices/{lamp['id']}/rpc",
                json={"method": "setDim", "params": {"level": 20}, "timeout": 5000},
                headers=city.auth("lighting"),
            )
        )
        topic, body = await dev.receive()
        assert body == {"method": "setDim", "params": {"level": 20}}
        request_id = topic.rsplit("/", 1)[1]
        await dev.publish(f"v1/devices/me/rpc/response/{request_id}", {"ok": True})
        r = await command
        assert r.json()["status"] == "succeeded"
    finally:
        await dev.close()


async def test_an_unknown_token_is_refused_over_websocket(platform: Platform) -> None:
    dev = ws_device(platform, "no-such-token", V5, "x")
    try:
        assert await dev.connect() == 0x86
    finally:
        await dev.close()


async def test_a_client_without_the_mqtt_subprotocol_is_refused(platform: Platform) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://127.0.0.1:{ws_port(platform)}/mqtt"):
            pass
    assert refused.value.response.status_code == 400


async def test_the_tcp_endpoint_is_unchanged(platform: Platform, lamp: dict[str, Any]) -> None:
    dev = Device(platform.mqtt[0].mqtt_port, lamp["token"], V5, client_id="tcp")
    try:
        assert await dev.connect() == 0
    finally:
        await dev.close()
