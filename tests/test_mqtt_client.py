"""smartpole's own asyncio MQTT client (simulator, broker consumer) against the real endpoint."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from fixtures_api import City, make_device, make_pole
from smartpole.app import Platform
from smartpole.transport.mqtt import codec
from smartpole.transport.mqtt.client import ConnectRefused, MqttClient


@pytest.fixture
async def lamp(client: httpx.AsyncClient, city: City) -> dict[str, Any]:
    pole = await make_pole(client, city, "FT-SN-0001")
    return await make_device(client, city, "lighting", "lamp", pole, name="lamp-1")


@pytest.mark.parametrize("version", [5, 4], ids=["mqtt5", "mqtt311"])
async def test_qos1_publish_returns_after_the_reading_is_stored(
    platform: Platform, client: httpx.AsyncClient, city: City, lamp: dict[str, Any], version: int
) -> None:
    port = platform.mqtt[0].mqtt_port
    mqtt = MqttClient("127.0.0.1", port, username=lamp["token"], version=version)
    ack = await mqtt.connect()
    assert ack.reason_code == 0
    assert mqtt.is_connected
    await mqtt.publish("v1/devices/me/telemetry", orjson.dumps({"power": 61.5}), qos=1)
    r = await client.get(f"/api/devices/{lamp['id']}/latest", headers=city.auth("lighting"))
    assert r.json()["power"]["value"] == 61.5
    await mqtt.close()
    assert not mqtt.is_connected


@pytest.mark.parametrize(("version", "code"), [(5, 0x86), (4, 0x04)])
async def test_a_refused_connect_raises_with_the_reason_code(
    platform: Platform, version: int, code: int
) -> None:
    mqtt = MqttClient("127.0.0.1", platform.mqtt[0].mqtt_port, username="nope", version=version)
    with pytest.raises(ConnectRefused) as refused:
        await mqtt.connect()
    assert refused.value.reason_code == code
    await mqtt.close()


async def test_server_rpc_reaches_the_handler_and_the_reply_completes_the_command(
    platform: Platform, client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    got: list[codec.Publish] = []
    replies: list[tuple[str, bytes]] = []

    def on_message(p: codec.Publish) -> None:
        got.append(p)
        request_id = p.topic.rsplit("/", 1)[1]
        replies.append((f"v1/devices/me/rpc/response/{request_id}", b'{"dim": 30}'))

    mqtt = MqttClient(
        "127.0.0.1", platform.mqtt[0].mqtt_port, username=lamp["token"], on_message=on_message
    )
    await mqtt.connect()
    assert await mqtt.subscribe([("v1/devices/me/rpc/request/+", 1)]) == [1]
    call = asyncio.ensure_future(
        client.post(
            f"/api/devices/{lamp['id']}/rpc",
            json={"method": "setDim", "params": {"level": 30}, "timeout": 5000},
            headers=city.auth("lighting"),
        )
    )
    for _ in range(200):
        if replies:
            break
        await asyncio.sleep(0.02)
    assert orjson.loads(got[0].payload) == {"method": "setDim", "params": {"level": 30}}
    await mqtt.publish(*replies[0], qos=1)
    r = await call
    assert r.status_code == 200, r.text
    assert r.json()["response"] == {"dim": 30}
    await mqtt.close()


async def test_a_deferred_handler_delays_the_puback_in_order() -> None:
    """Acks wait for the handler and leave in arrival order (a fake server: pure client logic)."""
    received: list[bytes] = []
    release = asyncio.Event()
    server_got: list[codec.Packet] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        r = codec.Reader()
        while data := await reader.read(4096):
            for kind, flags, body in r.feed(data):
                packet = codec.decode(kind, flags, body, 5)
                server_got.append(packet)
                if isinstance(packet, codec.Connect):
                    writer.write(codec.encode(codec.ConnAck(), 5))
                    for i in (1, 2):
                        writer.write(codec.encode(codec.Publish("t", b"%d" % i, 1, packet_id=i), 5))
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def slow_first(p: codec.Publish) -> None:
        if p.payload == b"1":
            await release.wait()
        received.append(p.payload)

    mqtt = MqttClient("127.0.0.1", port, keep_alive=0, on_message=slow_first)
    await mqtt.connect()
    await asyncio.sleep(0.2)
    assert received == [b"2"]
    assert not any(isinstance(p, codec.PubAck) for p in server_got)  # 2 waits for 1
    release.set()
    await asyncio.sleep(0.2)
    assert [p.packet_id for p in server_got if isinstance(p, codec.PubAck)] == [1, 2]
    await mqtt.close()
    server.close()
    await server.wait_closed()
