"""Broker mode behind a real Mosquitto: uplink, ACL, commands, attributes, presence, outages.

Each test starts its own Mosquitto on a free port with the files ``smartpole broker mosquitto``
writes, and a platform (both engines) that consumes from it as smartpole's service user.
Devices are smartpole's own asyncio MQTT client, logged in with their name and access token.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from fixtures_api import City
from helpers import SERVICE, device, eventually, latest, sync_files
from mosquitto import Mosquitto
from mqtt_client import Device
from smartpole.app import Platform
from smartpole.transport.mqtt import codec
from smartpole.transport.mqtt.client import ConnectRefused, MqttClient, PublishRefused

T0 = 1_750_000_000_000


@pytest.fixture
def platform(broker_platform: Platform) -> Platform:
    """Broker mode: the platform consumes from ``broker`` (``fixtures_broker``)."""
    return broker_platform


@pytest.fixture
def lamp(broker_lamp: dict[str, Any]) -> dict[str, Any]:
    """A lamp with its broker account (``fixtures_broker``)."""
    return broker_lamp


async def test_a_reading_published_to_the_broker_is_stored(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any], broker: Mosquitto
) -> None:
    mqtt = await device(broker, "lamp-1", lamp["token"])
    body = orjson.dumps({"ts": T0, "values": {"power": 61.5}})
    await mqtt.publish("sp/v1/lamp-1/telemetry", body, qos=1)

    async def stored() -> bool:
        return (await latest(client, city, lamp["id"])).get("power", {}).get("ts") == T0

    await eventually(stored)
    assert (await latest(client, city, lamp["id"]))["power"]["value"] == 61.5
    await mqtt.close()


@pytest.mark.parametrize("version", [5, 4], ids=["mqtt5", "mqtt311"])
async def test_a_device_cannot_publish_as_another_device(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any], broker: Mosquitto, version: int
) -> None:
    mqtt = await device(broker, "lamp-1", lamp["token"], version=version)
    spoof = mqtt.publish("sp/v1/lamp-2/telemetry", orjson.dumps({"power": 1}), qos=1)
    if version == 5:
        with pytest.raises(PublishRefused) as refused:
            await spoof
        assert refused.value.reason_code == 0x87  # not authorised
    else:
        await spoof  # MQTT 3.1.1 cannot refuse one message: the broker drops it silently
    await mqtt.publish("sp/v1/lamp-1/telemetry", orjson.dumps({"power": 2}), qos=1)

    async def own_stored() -> bool:
        return "power" in await latest(client, city, lamp["id"])

    await eventually(own_stored)
    await asyncio.sleep(0.3)
    other = lamp["id"] + 1
    r = await client.get(f"/api/devices/{other}/latest", headers=city.auth("lighting"))
    assert r.json() == {}, "Mosquitto's ACL should have dropped the message"
    await mqtt.close()


async def test_a_device_receives_nothing_of_another_device(
    client: httpx.AsyncClient,
    city: City,
    lamp: dict[str, Any],
    platform: Platform,
    broker: Mosquitto,
) -> None:
    """Mosquitto grants any subscription but checks every message against the ACL."""
    spy: list[codec.Publish] = []
    lamp1 = await device(broker, "lamp-1", lamp["token"], on_message=spy.append)
    await lamp1.subscribe([("sp/v1/#", 1), ("#", 1)])
    r = await client.post(
        f"/api/devices/{lamp['id'] + 1}/credentials", headers=city.auth("lighting")
    )
    sync_files(platform, broker)
    got: list[codec.Publish] = []
    lamp2 = await device(broker, "lamp-2", r.json()["token"], on_message=got.append)
    await lamp2.subscribe([("sp/v1/lamp-2/rpc/request/+", 1)])
    await lamp2.publish("sp/v1/lamp-2/telemetry", orjson.dumps({"power": 5}), qos=1)
    command = await client.post(
        f"/api/devices/{lamp['id'] + 1}/rpc",
        json={"method": "blink", "params": {}, "oneway": True, "persistent": True},
        headers=city.auth("lighting"),
    )
    assert command.status_code == 202, command.text

    async def delivered() -> bool:
        return bool(got)

    await eventually(delivered)
    await asyncio.sleep(0.3)
    assert spy == []
    await lamp1.close()
    await lamp2.close()


@pytest.mark.parametrize(
    ("name", "password"),
    [
        pytest.param("lamp-1", "wrong", id="wrong-token"),
        pytest.param("lamp-2", None, id="another-devices-token"),
        pytest.param("nobody", None, id="unknown-user"),
    ],
)
async def test_wrong_credentials_are_refused(
    lamp: dict[str, Any], broker: Mosquitto, name: str, password: str | None
) -> None:
    mqtt = MqttClient("127.0.0.1", broker.port, username=name, password=password or lamp["token"])
    with pytest.raises(ConnectRefused) as refused:
        await mqtt.connect()
    assert refused.value.reason_code in (0x86, 0x87)
    await mqtt.close()


async def test_a_rotated_token_works_after_the_files_are_regenerated(
    client: httpx.AsyncClient,
    city: City,
    lamp: dict[str, Any],
    platform: Platform,
    broker: Mosquitto,
) -> None:
    r = await client.post(f"/api/devices/{lamp['id']}/credentials", headers=city.auth("lighting"))
    assert r.status_code == 200, r.text
    sync_files(platform, broker)
    mqtt = await device(broker, "lamp-1", r.json()["token"])
    await mqtt.close()
    with pytest.raises(ConnectRefused):
        await device(broker, "lamp-1", lamp["token"])


async def test_a_command_goes_through_the_broker_and_its_reply_completes_it(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any], broker: Mosquitto
) -> None:
    got: list[codec.Publish] = []
    mqtt = await device(broker, "lamp-1", lamp["token"], on_message=got.append)
    assert await mqtt.subscribe([("sp/v1/lamp-1/rpc/request/+", 1)]) == [1]
    await mqtt.publish("sp/v1/lamp-1/telemetry", orjson.dumps({"power": 3}), qos=1)

    async def online() -> bool:
        r = await client.get(f"/api/devices/{lamp['id']}", headers=city.auth("lighting"))
        return bool(r.json()["online"])

    await eventually(online)
    call = asyncio.ensure_future(
        client.post(
            f"/api/devices/{lamp['id']}/rpc",
            json={"method": "setDim", "params": {"level": 30}, "timeout": 5000},
            headers=city.auth("lighting"),
        )
    )

    async def requested() -> bool:
        return bool(got)

    await eventually(requested)
    assert got[0].topic.startswith("sp/v1/lamp-1/rpc/request/")
    assert orjson.loads(got[0].payload) == {"method": "setDim", "params": {"level": 30}}
    request_id = got[0].topic.rsplit("/", 1)[1]
    await mqtt.publish(f"sp/v1/lamp-1/rpc/response/{request_id}", b'{"dim": 30}', qos=1)
    r = await call
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded"
    assert r.json()["response"] == {"dim": 30}
    await mqtt.close()


async def test_a_command_to_a_device_never_heard_from_is_refused_as_offline(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    r = await client.post(
        f"/api/devices/{lamp['id']}/rpc",
        json={"method": "setDim", "params": {}},
        headers=city.auth("lighting"),
    )
    assert r.status_code == 409, r.text


async def test_a_persistent_command_waits_until_the_device_is_heard_from(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any], broker: Mosquitto
) -> None:
    r = await client.post(
        f"/api/devices/{lamp['id']}/rpc",
        json={"method": "reboot", "params": {}, "oneway": True, "persistent": True},
        headers=city.auth("lighting"),
    )
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    got: list[codec.Publish] = []
    mqtt = await device(broker, "lamp-1", lamp["token"], on_message=got.append)
    await mqtt.subscribe([("sp/v1/lamp-1/rpc/request/+", 1)])
    await mqtt.publish("sp/v1/lamp-1/telemetry", orjson.dumps({"power": 3}), qos=1)

    async def sent() -> bool:
        return bool(got)

    await eventually(sent)
    assert orjson.loads(got[0].payload)["method"] == "reboot"

    async def succeeded() -> bool:
        c = await client.get(f"/api/commands/{r.json()['id']}", headers=city.auth("lighting"))
        return bool(c.json()["status"] == "succeeded")

    await eventually(succeeded)
    await mqtt.close()


async def test_shared_attributes_are_pushed_and_requests_answered(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any], broker: Mosquitto
) -> None:
    got: list[codec.Publish] = []
    mqtt = await device(broker, "lamp-1", lamp["token"], on_message=got.append)
    await mqtt.subscribe(
        [("sp/v1/lamp-1/attributes/shared", 1), ("sp/v1/lamp-1/attributes/response/+", 1)]
    )
    r = await client.post(
        f"/api/devices/{lamp['id']}/attributes/shared",
        json={"schedule": "night"},
        headers=city.auth("lighting"),
    )
    assert r.status_code == 200, r.text
    await mqtt.publish("sp/v1/lamp-1/attributes", orjson.dumps({"firmware": "1.2"}), qos=1)

    async def stored() -> bool:  # messages are handled concurrently: wait before asking
        r = await client.get(f"/api/devices/{lamp['id']}/attributes", headers=city.auth("lighting"))
        return "firmware" in r.json().get("client", {})

    await eventually(stored)
    await mqtt.publish(
        "sp/v1/lamp-1/attributes/request/7", orjson.dumps({"clientKeys": "firmware"}), qos=1
    )

    async def two() -> bool:
        return len(got) >= 2

    await eventually(two)
    by_topic = {p.topic: orjson.loads(p.payload) for p in got}
    assert by_topic["sp/v1/lamp-1/attributes/shared"] == {"schedule": "night"}
    assert by_topic["sp/v1/lamp-1/attributes/response/7"] == {
        "client": {"firmware": "1.2"},
        "shared": {},
    }
    await mqtt.close()


async def test_a_retained_status_with_a_will_tells_presence(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any], broker: Mosquitto
) -> None:
    d = Device(broker.port, None, client_id="lamp-1-status")
    d.client.username_pw_set("lamp-1", lamp["token"])
    d.client.will_set("sp/v1/lamp-1/status", b"offline", qos=1, retain=True)
    assert await d.connect() == 0
    d.client.publish("sp/v1/lamp-1/status", b"online", qos=1, retain=True)

    async def online_is(value: bool) -> bool:
        r = await client.get(f"/api/devices/{lamp['id']}", headers=city.auth("lighting"))
        return bool(r.json()["online"] is value)

    await eventually(lambda: online_is(True))
    d.client.socket().close()  # drop the connection: the broker publishes the will
    await eventually(lambda: online_is(False))
    await asyncio.to_thread(d.client.loop_stop)


async def test_the_consumer_survives_the_broker_going_away(
    client: httpx.AsyncClient,
    city: City,
    lamp: dict[str, Any],
    platform: Platform,
    broker: Mosquitto,
) -> None:
    assert platform.broker is not None
    consumer = platform.broker
    broker.stop()

    async def down() -> bool:
        return not consumer.stats.connected

    await eventually(down)
    r = await client.get("/healthz")  # the node keeps serving HTTP
    assert r.status_code == 200
    broker.start()  # same port; its sessions are gone (no persistence)

    async def up() -> bool:
        return consumer.ready  # connected again, and its retained statuses read

    await eventually(up, within=40)
    assert consumer.stats.reconnects >= 1
    mqtt = await device(broker, "lamp-1", lamp["token"])
    await mqtt.publish(
        "sp/v1/lamp-1/telemetry", orjson.dumps({"ts": T0, "values": {"power": 9}}), qos=1
    )

    async def stored() -> bool:
        return (await latest(client, city, lamp["id"])).get("power", {}).get("ts") == T0

    await eventually(stored)
    await mqtt.close()


async def test_unknown_devices_and_bad_payloads_are_dropped_not_redelivered(
    client: httpx.AsyncClient,
    city: City,
    lamp: dict[str, Any],
    platform: Platform,
    broker: Mosquitto,
) -> None:
    assert platform.broker is not None
    mqtt = await device(broker, "lamp-1", lamp["token"])
    await mqtt.publish("sp/v1/lamp-1/telemetry", b"{not json", qos=1)
    await mqtt.publish(
        "sp/v1/lamp-1/telemetry", orjson.dumps({"ts": T0, "values": {"power": 4}}), qos=1
    )

    async def stored() -> bool:
        return (await latest(client, city, lamp["id"])).get("power", {}).get("ts") == T0

    await eventually(stored)
    assert platform.broker.stats.dropped == 1
    assert platform.broker.stats.reconnects == 0
    r = await client.get("/api/broker/status", headers=city.auth("city"))
    assert r.json()["stored"] == 1
    assert (r.json()["connected"], r.json()["ready"]) == (True, True)
    await mqtt.close()


def test_the_client_runs_on_uvloop(broker: Mosquitto) -> None:
    """``smartpole serve`` runs on uvloop, whose transports are not asyncio.Transport objects."""
    uvloop = pytest.importorskip("uvloop")

    async def connect() -> int:
        mqtt = MqttClient("127.0.0.1", broker.port, username=SERVICE[0], password=SERVICE[1])
        ack = await mqtt.connect()
        await mqtt.close()
        return ack.reason_code

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(connect()) == 0


async def test_a_broker_that_stops_answering_is_given_up() -> None:
    """A half-open connection (the broker's host vanished) ends after 1.5 keep-alive periods."""
    got: list[codec.Packet] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        r = codec.Reader()
        while data := await reader.read(4096):
            for kind, flags, body in r.feed(data):
                got.append(packet := codec.decode(kind, flags, body, 5))
                if isinstance(packet, codec.Connect):
                    writer.write(codec.encode(codec.ConnAck(), 5))  # then never a PINGRESP
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    mqtt = MqttClient("127.0.0.1", port, keep_alive=1)
    await mqtt.connect()
    assert mqtt.closed is not None
    cause = await asyncio.wait_for(asyncio.shield(mqtt.closed), 5)
    assert isinstance(cause, TimeoutError)
    assert any(isinstance(p, codec.PingReq) for p in got)
    await mqtt.close()
    server.close()
    await server.wait_closed()
