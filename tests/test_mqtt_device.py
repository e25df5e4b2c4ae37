"""The ThingsBoard device API over the built-in MQTT endpoint, with a real paho client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from fixtures_api import City, make_device, make_pole
from mqtt_client import V5, V311, Device, read_pubacks
from smartpole.app import Platform
from smartpole.model.clock import now_ms
from smartpole.transport.mqtt import codec

T0 = 1_764_000_000_000


@pytest.fixture
async def lamp(client: httpx.AsyncClient, city: City) -> dict[str, Any]:
    """A lamp of the lighting department on a pole, with its token."""
    pole = await make_pole(client, city, "FT-SN-0001")
    return await make_device(client, city, "lighting", "lamp", pole, name="lamp-1")


@pytest.fixture(params=[pytest.param(V5, id="mqtt5"), pytest.param(V311, id="mqtt311")])
async def device(
    request: pytest.FixtureRequest, platform: Platform, lamp: dict[str, Any]
) -> AsyncIterator[Device]:
    """The lamp connected over MQTT 5 or 3.1.1."""
    dev = Device(platform.mqtt[0].mqtt_port, lamp["token"], request.param, client_id="lamp-1")
    assert await dev.connect() == 0
    yield dev
    await dev.close()


async def latest(client: httpx.AsyncClient, city: City, device_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/devices/{device_id}/latest", headers=city.auth("lighting"))
    return {k: v["value"] for k, v in r.json().items()}


@pytest.mark.parametrize(
    ("token", "version", "code"),
    [
        pytest.param("no-such-token", 5, 0x86, id="mqtt5-unknown-token"),
        pytest.param(None, 5, 0x87, id="mqtt5-no-token"),
        pytest.param("no-such-token", 4, 0x04, id="mqtt311-unknown-token"),
        pytest.param(None, 4, 0x05, id="mqtt311-no-token"),
    ],
)
async def test_connect_is_refused_with_the_right_reason_code(
    platform: Platform, token: str | None, version: int, code: int
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", platform.mqtt[0].mqtt_port)
    writer.write(codec.encode(codec.Connect(version, "x", True, 30, token), version))
    head = await reader.readexactly(2)
    connack = codec.decode(head[0] >> 4, head[0] & 15, await reader.readexactly(head[1]), version)
    assert isinstance(connack, codec.ConnAck)
    assert connack.reason_code == code
    assert await reader.read() == b""  # and the server closes the connection
    writer.close()


async def test_telemetry_is_acknowledged_after_it_is_stored(
    device: Device, client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    assert await device.publish("v1/devices/me/telemetry", {"power": 42.5, "on": True}) == 0
    # PUBACK came after the commit: the reading is readable at once, no waiting.
    got = await latest(client, city, lamp["id"])
    assert got["power"] == 42.5
    assert got["on"] is True


async def test_every_payload_form_and_the_short_topic(
    device: Device, client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    await device.publish(
        "v1/devices/me/telemetry",
        [{"ts": T0, "values": {"dim": 10}}, {"ts": T0 + 1, "values": {"dim": 20}}],
    )
    await device.publish("v2/t", {"ts": T0 + 2, "values": {"voltage": 230}})
    r = await client.get(
        f"/api/devices/{lamp['id']}/timeseries",
        params={"keys": "dim,voltage", "start": T0, "end": T0 + 10},
        headers=city.auth("lighting"),
    )
    assert r.json() == {
        "dim": [{"ts": T0, "value": 10}, {"ts": T0 + 1, "value": 20}],
        "voltage": [{"ts": T0 + 2, "value": 230}],
    }


async def test_messages_without_timestamps_in_one_millisecond_are_all_kept(
    platform: Platform, client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    """Fifty state changes in one TCP write (well within a few milliseconds) each keep their
    reading: the receive time of a device's messages never repeats, so none is taken for a
    duplicate of the one before, and the latest value is the last one sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", platform.mqtt[0].mqtt_port)
    try:
        writer.write(codec.encode(codec.Connect(5, "burst", True, 30, lamp["token"]), 5))
        head = await reader.readexactly(2)  # CONNACK
        assert (await reader.readexactly(head[1]))[1] == 0  # accepted
        before = now_ms()
        writer.write(
            b"".join(
                codec.encode(codec.Publish("v1/devices/me/telemetry", b'{"dim": %d}' % i), 5)
                for i in range(50)
            )
        )
        await writer.drain()
        auth = city.auth("lighting")
        for _ in range(200):
            r = await client.get(
                f"/api/devices/{lamp['id']}/timeseries",
                params={"keys": "dim", "start": before, "end": now_ms() + 1000, "limit": 1000},
                headers=auth,
            )
            got = r.json().get("dim", [])
            if len(got) >= 50:
                break
            await asyncio.sleep(0.02)
        assert sorted(p["value"] for p in got) == list(range(50))
        assert [p["value"] for p in sorted(got, key=lambda p: p["ts"])] == list(range(50))
        assert (await latest(client, city, lamp["id"]))["dim"] == 49
    finally:
        writer.close()
        await writer.wait_closed()


async def test_many_qos1_publishes_in_flight_are_all_stored_and_acked_in_order(
    device: Device, client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    infos = [
        device.client.publish(
            "v1/devices/me/telemetry", f'{{"ts": {T0 + i}, "values": {{"dim": {i % 100}}}}}', qos=1
        )
        for i in range(300)
    ]
    await asyncio.to_thread(lambda: [i.wait_for_publish(10) for i in infos])
    assert all(device.acks[i.mid] == 0 for i in infos)
    r = await client.get(
        f"/api/devices/{lamp['id']}/timeseries",
        params={"keys": "dim", "start": T0, "end": T0 + 300, "limit": 1000},
        headers=city.auth("lighting"),
    )
    assert len(r.json()["dim"]) == 300


async def test_malformed_json_is_refused_without_storing(
    device: Device, client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    if device.client.protocol == V5:
        assert await device.publish("v1/devices/me/telemetry", b'{"power": ') == 0x99
        # the session goes on
        assert await device.publish("v1/devices/me/telemetry", {"power": 1}) == 0
    else:
        # MQTT 3.1.1 has no negative PUBACK: the server disconnects instead of acknowledging.
        with pytest.raises(ConnectionError):
            await device.publish("v1/devices/me/telemetry", b'{"power": ')
    assert "power" not in await latest(client, city, lamp["id"]) or device.client.protocol == V5


async def test_topic_outside_the_api_is_refused(device: Device) -> None:
    if device.client.protocol == V5:
        assert await device.publish("v1/devices/other/telemetry", {"a": 1}) == 0x90
    else:
        with pytest.raises(ConnectionError):
            await device.publish("v1/devices/other/telemetry", {"a": 1})


async def raw_session(port: int, token: str) -> tuple[asyncio.StreamReader, Any]:
    """A raw MQTT 5 connection (our codec encodes the packets), CONNACK read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(codec.encode(codec.Connect(5, "raw", True, 30, token), 5))
    head = await reader.readexactly(2)
    await reader.readexactly(head[1])
    return reader, writer


async def test_qos0_and_qos1_in_one_segment_are_all_stored_and_each_qos1_acked_in_order(
    platform: Platform, client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    """Messages read together share one commit; each QoS 1 one still gets its own PUBACK, in
    order, and a bad one among them its own refusal."""
    reader, writer = await raw_session(platform.mqtt[0].mqtt_port, lamp["token"])
    packets, expected = [], []
    for i in range(60):
        qos = i % 2
        body = b'{"dim": ' if i == 31 else b'{"ts": %d, "values": {"dim": %d}}' % (T0 + i, i)
        packets.append(
            codec.encode(
                codec.Publish(
                    "v1/devices/me/telemetry", body, qos, packet_id=i + 1 if qos else None
                ),
                5,
            )
        )
        if qos:
            expected.append((i + 1, 0x99 if i == 31 else 0))
    writer.write(b"".join(packets))
    try:
        acks = await read_pubacks(reader, len(expected))
    finally:
        writer.close()
    assert acks == expected
    r = await client.get(
        f"/api/devices/{lamp['id']}/timeseries",
        params={"keys": "dim", "start": T0, "end": T0 + 60, "limit": 1000},
        headers=city.auth("lighting"),
    )
    assert [p["value"] for p in r.json()["dim"]] == [i for i in range(60) if i != 31]


async def test_oversized_payload_disconnects_with_0x95(
    platform: Platform, lamp: dict[str, Any]
) -> None:
    reader, writer = await raw_session(platform.mqtt[0].mqtt_port, lamp["token"])
    big = b'{"blob": "' + b"x" * (platform.devices.limits.max_payload + 10) + b'"}'
    writer.write(codec.encode(codec.Publish("v1/devices/me/telemetry", big, 1, packet_id=1), 5))
    answer = await reader.read(100)
    assert answer[0] == 0xE0  # DISCONNECT
    assert answer[2] == 0x95  # packet too large
    assert await reader.read() == b""
    writer.close()


async def test_client_attributes_and_attribute_request(
    device: Device, client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    assert await device.publish("v1/devices/me/attributes", {"firmware": "1.4.2"}) == 0
    await client.post(
        f"/api/devices/{lamp['id']}/attributes/shared",
        json={"profile": "night"},
        headers=city.auth("lighting"),
    )
    await device.subscribe("v1/devices/me/attributes/response/+")
    await device.publish(
        "v1/devices/me/attributes/request/5", {"clientKeys": "firmware", "sharedKeys": "profile"}
    )
    topic, body = await device.receive()
    assert topic == "v1/devices/me/attributes/response/5"
    assert body == {"client": {"firmware": "1.4.2"}, "shared": {"profile": "night"}}


async def test_shared_attribute_updates_are_pushed(
    device: Device, client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    await device.subscribe("v1/devices/me/attributes")
    r = await client.post(
        f"/api/devices/{lamp['id']}/attributes/shared",
        json={"dim_schedule": "eco"},
        headers=city.auth("lighting"),
    )
    assert r.status_code == 200
    assert await device.receive() == ("v1/devices/me/attributes", {"dim_schedule": "eco"})


async def test_server_side_rpc_round_trip(
    device: Device, client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    await device.subscribe("v1/devices/me/rpc/request/+")

    async def answer() -> None:
        topic, body = await device.receive()
        assert body == {"method": "setDim", "params": {"level": 30}}
        req = topic.rsplit("/", 1)[1]
        await device.publish(f"v1/devices/me/rpc/response/{req}", {"level": 30, "ok": True})

    responder = asyncio.create_task(answer())
    r = await client.post(
        f"/api/devices/{lamp['id']}/rpc",
        json={"method": "setDim", "params": {"level": 30}, "timeout": 5000},
        headers=city.auth("lighting"),
    )
    await responder
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded"
    assert r.json()["response"] == {"level": 30, "ok": True}


@pytest.mark.parametrize(
    ("method", "check"),
    [
        pytest.param(
            "getCurrentTime", lambda b: abs(b["currentTime"] - T0) < 10**12, id="getCurrentTime"
        ),
        pytest.param(
            "getSessionLimits",
            lambda b: b["maxPayloadSize"] == 65_536 and "messages" in b["rateLimits"],
            id="getSessionLimits",
        ),
        pytest.param("noSuchMethod", lambda b: "error" in b, id="unknown"),
    ],
)
async def test_client_side_rpc(device: Device, method: str, check: Any) -> None:
    await device.subscribe("v1/devices/me/rpc/response/+")
    await device.publish("v1/devices/me/rpc/request/9", {"method": method, "params": {}})
    topic, body = await device.receive()
    assert topic == "v1/devices/me/rpc/response/9"
    assert check(body)


async def test_online_follows_the_session(
    platform: Platform, client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    url = f"/api/devices/{lamp['id']}"
    auth = city.auth("lighting")
    assert (await client.get(url, headers=auth)).json()["online"] is False
    dev = Device(platform.mqtt[0].mqtt_port, lamp["token"], V5, client_id="lamp-1")
    await dev.connect()
    assert (await client.get(url, headers=auth)).json()["online"] is True
    await dev.close()
    for _ in range(50):
        if not (await client.get(url, headers=auth)).json()["online"]:
            break
        await asyncio.sleep(0.05)
    assert (await client.get(url, headers=auth)).json()["online"] is False
    for _ in range(50):  # recorded as telemetry too
        if (await latest(client, city, lamp["id"]))["online"] is False:
            break
        await asyncio.sleep(0.05)
    assert (await latest(client, city, lamp["id"]))["online"] is False
    assert (await client.get(url, headers=auth)).json()["last_seen"] is not None


async def test_will_message_is_stored_when_the_device_drops(
    platform: Platform, client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    will = codec.Will("v1/devices/me/telemetry", b'{"fault": "power lost"}', qos=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", platform.mqtt[0].mqtt_port)
    writer.write(codec.encode(codec.Connect(4, "lamp-1", True, 30, lamp["token"], will=will), 4))
    assert await reader.readexactly(4) == b"\x20\x02\x00\x00"
    writer.transport.abort()  # an abnormal end, no DISCONNECT
    for _ in range(100):
        if (await latest(client, city, lamp["id"])).get("fault") == "power lost":
            break
        await asyncio.sleep(0.05)
    assert (await latest(client, city, lamp["id"]))["fault"] == "power lost"


async def test_no_will_after_a_clean_disconnect(
    platform: Platform, client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    will = codec.Will("v1/devices/me/telemetry", b'{"fault": "power lost"}', qos=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", platform.mqtt[0].mqtt_port)
    writer.write(codec.encode(codec.Connect(4, "lamp-1", True, 30, lamp["token"], will=will), 4))
    await reader.readexactly(4)
    writer.write(codec.encode(codec.Disconnect(), 4))
    assert await reader.read() == b""
    writer.close()
    await asyncio.sleep(0.3)
    assert "fault" not in await latest(client, city, lamp["id"])


async def test_persistent_command_waits_for_the_device(
    platform: Platform, client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    r = await client.post(
        f"/api/devices/{lamp['id']}/rpc",
        json={"method": "reboot", "persistent": True, "oneway": True},
        headers=city.auth("lighting"),
    )
    assert r.status_code == 202
    command = r.json()["id"]
    dev = Device(platform.mqtt[0].mqtt_port, lamp["token"], V5, client_id="lamp-1")
    await dev.connect()
    await dev.subscribe("v1/devices/me/rpc/request/+")
    topic, body = await dev.receive()
    assert topic.startswith("v1/devices/me/rpc/request/")
    assert body["method"] == "reboot"
    for _ in range(50):
        status = (
            await client.get(f"/api/commands/{command}", headers=city.auth("lighting"))
        ).json()["status"]
        if status == "succeeded":
            break
        await asyncio.sleep(0.05)
    assert status == "succeeded"
    await dev.close()


async def test_a_new_connection_takes_over_the_session(
    platform: Platform, lamp: dict[str, Any]
) -> None:
    reader, writer = await raw_session(platform.mqtt[0].mqtt_port, lamp["token"])
    second = Device(platform.mqtt[0].mqtt_port, lamp["token"], V5, client_id="raw")
    await second.connect()
    answer = await reader.read(100)
    assert answer[0] == 0xE0  # DISCONNECT
    assert answer[2] == 0x8E  # session taken over
    writer.close()
    assert await second.publish("v1/devices/me/telemetry", {"dim": 5}) == 0
    await second.close()


async def test_keepalive_timeout_closes_a_silent_session(
    platform: Platform, lamp: dict[str, Any]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", platform.mqtt[0].mqtt_port)
    writer.write(codec.encode(codec.Connect(4, "quiet", True, 1, lamp["token"]), 4))
    assert await reader.readexactly(4) == b"\x20\x02\x00\x00"
    started = asyncio.get_running_loop().time()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed after 1.5 x keep-alive
    assert asyncio.get_running_loop().time() - started >= 1.4
    writer.close()


async def test_a_full_pipeline_holds_connections_and_lets_them_read_again(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    """Back-pressure: while the pipeline is full a connection stops reading after a packet;
    when it empties every held connection reads again, and nothing it sent is lost."""
    from smartpole.transport.mqtt.server import MqttServer

    level = [0.0]
    server = MqttServer(
        platform.device_api, "127.0.0.1", 0, load=lambda: level[0], metrics=platform.metrics
    )
    await server.start()
    pole = await make_pole(client, city, "FT-SN-0001")
    lamps = [await make_device(client, city, "lighting", "lamp", pole) for _ in range(20)]
    streams = []
    try:
        for i, lamp in enumerate(lamps):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.mqtt_port)
            writer.write(codec.encode(codec.Connect(5, f"lamp-c{i}", True, 60, lamp["token"]), 5))
            [(kind, _, _)] = codec.Reader().feed(await reader.read(64))
            assert kind == codec.PacketType.CONNACK
            streams.append((reader, writer))

        def publish(writer: asyncio.StreamWriter, i: int, packet_id: int) -> None:
            body = b'{"ts":%d,"values":{"power":%d}}' % (T0 + packet_id * 100 + i, i)
            writer.write(
                codec.encode(
                    codec.Publish("v1/devices/me/telemetry", body, 1, packet_id=packet_id), 5
                )
            )

        for i, (reader, writer) in enumerate(streams):
            publish(writer, i, 1)
            assert await read_pubacks(reader, 1) == [(1, 0)]
        level[0] = 1.0  # full: each stops reading once it has taken its next packet
        for i, (reader, writer) in enumerate(streams):
            publish(writer, i, 2)
            assert await read_pubacks(reader, 1) == [(2, 0)]  # (it was paused before this)
        for i, (_, writer) in enumerate(streams):
            publish(writer, i, 3)
        waiting = [asyncio.ensure_future(read_pubacks(r, 1)) for r, _ in streams]
        done, _ = await asyncio.wait(waiting, timeout=0.5)
        assert not done  # held: nothing read while the pipeline is full
        level[0] = 0.0
        assert await asyncio.gather(*waiting) == [[(3, 0)]] * len(streams)
    finally:
        for _, writer in streams:
            writer.close()
        await server.stop()
    for i, lamp in enumerate(lamps):
        r = await client.get(
            f"/api/devices/{lamp['id']}/timeseries",
            params={"keys": "power", "start": 0, "end": 4_102_444_800_000},
            headers=city.auth("lighting"),
        )
        assert [p["value"] for p in r.json()["power"]] == [i, i, i]
