"""Broker mode: a pole gateway's gateway API through a real Mosquitto.

The gateway publishes ThingsBoard's gateway messages under ``sp/v1/{gateway}/gateway/...``
(its broker account's own topics), and receives commands, shared attributes and attribute
answers for its sub-devices under the same prefix. Fixtures: ``fixtures_broker.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fixtures_api import City, make_device, make_pole
from helpers import Inbox, device, eventually, latest, node_settings, sync_files
from mosquitto import Mosquitto
from smartpole.api.app import create_app
from smartpole.app import Platform
from smartpole.store import Database
from smartpole.transport.broker.consumer import BrokerConsumer
from smartpole.transport.mqtt.client import MqttClient, PublishRefused

T0 = 1_750_000_000_000


@pytest.fixture
def platform(broker_platform: Platform) -> Platform:
    """Broker mode: the platform consumes from ``broker`` (``fixtures_broker``)."""
    return broker_platform


@dataclass
class Site:
    """A pole with its gateway and two lamps, and a lamp on another pole."""

    gw: dict[str, Any]
    lamp1: dict[str, Any]
    lamp2: dict[str, Any]
    elsewhere: dict[str, Any]


@pytest.fixture
async def site(
    client: httpx.AsyncClient, city: City, platform: Platform, broker: Mosquitto
) -> Site:
    pole = await make_pole(client, city, "FT-SN-0001")
    other = await make_pole(client, city, "FT-SN-0002")
    gw = await make_device(client, city, "city", "gateway", pole, name="gw-1")
    lamp1 = await make_device(client, city, "lighting", "lamp", pole, name="lamp-1", port=1)
    lamp2 = await make_device(client, city, "lighting", "lamp", pole, name="lamp-2", port=2)
    elsewhere = await make_device(client, city, "lighting", "lamp", other, name="lamp-9")
    sync_files(platform, broker)
    return Site(gw, lamp1, lamp2, elsewhere)


async def gateway(broker: Mosquitto, site: Site, inbox: Inbox | None = None) -> MqttClient:
    """The gateway, subscribed to its downlink."""
    mqtt = await device(broker, "gw-1", site.gw["token"], on_message=inbox)
    granted = await mqtt.subscribe(
        [
            ("sp/v1/gw-1/gateway/rpc/request", 1),
            ("sp/v1/gw-1/gateway/attributes/shared", 1),
            ("sp/v1/gw-1/gateway/attributes/response", 1),
        ]
    )
    assert granted == [1, 1, 1]
    return mqtt


async def command_through_gateway(
    api: httpx.AsyncClient, city: City, mqtt: MqttClient, inbox: Inbox, lamp: int, level: int
) -> None:
    """Send lamp-1 a two-way command; the gateway gets it for lamp-1 and answers it."""
    call = asyncio.ensure_future(
        api.post(
            f"/api/devices/{lamp}/rpc",
            json={"method": "setDim", "params": {"level": level}, "timeout": 5000},
            headers=city.auth("lighting"),
        )
    )
    (command,) = await inbox.on("sp/v1/gw-1/gateway/rpc/request")
    assert command["device"] == "lamp-1"
    assert command["data"]["method"] == "setDim"
    assert command["data"]["params"] == {"level": level}
    reply = {"device": "lamp-1", "id": command["data"]["id"], "data": {"dim": level}}
    await mqtt.publish("sp/v1/gw-1/gateway/rpc", orjson.dumps(reply), qos=1)
    r = await call
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded"
    assert r.json()["response"] == {"dim": level}


async def server_attributes(client: httpx.AsyncClient, city: City, device_id: int) -> Any:
    r = await client.get(f"/api/devices/{device_id}/attributes", headers=city.auth("city"))
    assert r.status_code == 200, r.text
    return r.json().get("server", {})


async def test_a_gateway_reports_the_devices_of_its_pole(
    client: httpx.AsyncClient, city: City, site: Site, broker: Mosquitto, platform: Platform
) -> None:
    mqtt = await gateway(broker, site)
    report = {
        "lamp-1": [{"ts": T0, "values": {"power": 61.5}}],
        "lamp-2": [{"ts": T0, "values": {"power": 40}}, {"ts": T0 + 1000, "values": {"power": 41}}],
    }
    await mqtt.publish("sp/v1/gw-1/gateway/telemetry", orjson.dumps(report), qos=1)

    async def stored() -> bool:
        one = await latest(client, city, site.lamp1["id"])
        two = await latest(client, city, site.lamp2["id"])
        return "power" in one and two.get("power", {}).get("ts") == T0 + 1000

    await eventually(stored)
    assert (await latest(client, city, site.lamp1["id"]))["power"]["value"] == 61.5
    assert (await latest(client, city, site.lamp2["id"]))["power"]["value"] == 41
    attrs = await server_attributes(client, city, site.lamp1["id"])
    assert attrs["lastConnectedGateway"]["value"] == site.gw["id"]
    await mqtt.publish(
        "sp/v1/gw-1/gateway/attributes", orjson.dumps({"lamp-1": {"firmware": "2.1"}}), qos=1
    )

    async def attribute_stored() -> bool:
        r = await client.get(
            f"/api/devices/{site.lamp1['id']}/attributes", headers=city.auth("lighting")
        )
        return bool(r.json().get("client", {}).get("firmware", {}).get("value") == "2.1")

    await eventually(attribute_stored)
    assert platform.broker is not None
    assert platform.broker.stats.dropped == 0
    await mqtt.close()


async def test_devices_off_its_pole_or_unknown_are_refused_unless_it_may_create_them(
    client: httpx.AsyncClient, city: City, site: Site, broker: Mosquitto, platform: Platform
) -> None:
    assert platform.broker is not None
    stats = platform.broker.stats
    mqtt = await gateway(broker, site)
    off_pole = {"lamp-9": [{"ts": T0, "values": {"power": 1}}]}
    await mqtt.publish("sp/v1/gw-1/gateway/telemetry", orjson.dumps(off_pole), qos=1)
    unknown = {"cam-new": [{"ts": T0, "values": {"people": 3}}]}
    await mqtt.publish("sp/v1/gw-1/gateway/telemetry", orjson.dumps(unknown), qos=1)

    async def both_dropped() -> bool:
        return stats.dropped >= 2

    await eventually(both_dropped)
    assert await latest(client, city, site.elsewhere["id"]) == {}
    r = await client.get("/api/devices", params={"q": "cam-new"}, headers=city.auth("city"))
    assert all(d["name"] != "cam-new" for d in r.json()["items"])

    r = await client.post(
        f"/api/devices/{site.gw['id']}/attributes/server",
        json={"autoCreateDevices": True},
        headers=city.auth("city"),
    )
    assert r.status_code == 200, r.text
    await mqtt.publish(
        "sp/v1/gw-1/gateway/connect", b'{"device": "cam-new", "type": "camera"}', qos=1
    )
    await mqtt.publish("sp/v1/gw-1/gateway/telemetry", orjson.dumps(unknown), qos=1)

    async def created() -> list[dict[str, Any]]:
        r = await client.get("/api/devices", headers=city.auth("city"))
        return [d for d in r.json()["items"] if d["name"] == "cam-new"]

    async def stored() -> bool:
        found = await created()
        if not found:
            return False
        r = await client.get(f"/api/devices/{found[0]['id']}/latest", headers=city.auth("city"))
        return "people" in r.json()

    await eventually(stored)
    cam = (await created())[0]
    assert cam["kind"] == "camera"
    assert cam["pole_id"] == site.gw["pole_id"]
    assert stats.dropped == 2
    # the device is not told (the broker acknowledged it): the refusals are counted
    counted = 'smartpole_messages_rejected_total{reason="forbidden",transport="broker"} 2.0'
    assert counted in platform.metrics.exposition().decode()
    # a type smartpole has no kind for: a generic device keeping it as its profile
    connect = b'{"device": "thermo-new", "type": "Thermometer"}'
    await mqtt.publish("sp/v1/gw-1/gateway/connect", connect, qos=1)
    thermo = {"thermo-new": [{"ts": T0, "values": {"temperature": 20.5}}]}
    await mqtt.publish("sp/v1/gw-1/gateway/telemetry", orjson.dumps(thermo), qos=1)

    async def generic() -> bool:
        r = await client.get("/api/devices", params={"kind": "generic"}, headers=city.auth("city"))
        return [(d["name"], d["profile"]) for d in r.json()["items"]] == [
            ("thermo-new", "Thermometer")
        ]

    await eventually(generic)
    await mqtt.close()


@pytest.mark.parametrize("version", [5, 4], ids=["mqtt5", "mqtt311"])
async def test_only_a_gateway_may_publish_gateway_messages(
    client: httpx.AsyncClient, city: City, site: Site, broker: Mosquitto, version: int
) -> None:
    mqtt = await device(broker, "lamp-1", site.lamp1["token"], version=version)
    spoof = mqtt.publish(
        "sp/v1/lamp-1/gateway/telemetry",
        orjson.dumps({"lamp-2": [{"ts": T0, "values": {"power": 1}}]}),
        qos=1,
    )
    if version == 5:
        with pytest.raises(PublishRefused) as refused:
            await spoof
        assert refused.value.reason_code == 0x87  # Mosquitto's ACL: not authorised
    else:
        await spoof  # MQTT 3.1.1 cannot refuse one message: the broker drops it
    await mqtt.publish("sp/v1/lamp-1/telemetry", orjson.dumps({"power": 2}), qos=1)

    async def own_stored() -> bool:
        return "power" in await latest(client, city, site.lamp1["id"])

    await eventually(own_stored)
    await asyncio.sleep(0.3)
    assert await latest(client, city, site.lamp2["id"]) == {}
    await mqtt.close()


async def test_connect_and_disconnect_make_a_sub_device_online_and_offline(
    client: httpx.AsyncClient, city: City, site: Site, broker: Mosquitto
) -> None:
    mqtt = await gateway(broker, site)
    lamp = site.lamp1["id"]

    async def online_is(value: bool) -> bool:
        r = await client.get(f"/api/devices/{lamp}", headers=city.auth("lighting"))
        recorded = (await latest(client, city, lamp)).get("online", {}).get("value")
        return bool(r.json()["online"] is value and recorded is value)

    await mqtt.publish("sp/v1/gw-1/gateway/connect", b'{"device": "lamp-1"}', qos=1)
    await eventually(lambda: online_is(True))
    await mqtt.publish("sp/v1/gw-1/gateway/disconnect", b'{"device": "lamp-1"}', qos=1)
    await eventually(lambda: online_is(False))
    await mqtt.close()


async def test_commands_attributes_and_answers_reach_a_sub_device_through_its_gateway(
    client: httpx.AsyncClient, city: City, site: Site, broker: Mosquitto
) -> None:
    inbox = Inbox()
    mqtt = await gateway(broker, site, inbox)
    lamp = site.lamp1["id"]
    await mqtt.publish("sp/v1/gw-1/gateway/connect", b'{"device": "lamp-1"}', qos=1)

    async def online() -> bool:
        r = await client.get(f"/api/devices/{lamp}", headers=city.auth("lighting"))
        return bool(r.json()["online"])

    await eventually(online)
    await command_through_gateway(client, city, mqtt, inbox, lamp, 30)

    r = await client.post(
        f"/api/devices/{lamp}/attributes/shared",
        json={"schedule": "night"},
        headers=city.auth("lighting"),
    )
    assert r.status_code == 200, r.text
    (pushed,) = await inbox.on("sp/v1/gw-1/gateway/attributes/shared")
    assert pushed == {"device": "lamp-1", "data": {"schedule": "night"}}
    request = {"id": 5, "device": "lamp-1", "client": False, "key": "schedule"}
    await mqtt.publish("sp/v1/gw-1/gateway/attributes/request", orjson.dumps(request), qos=1)
    (answer,) = await inbox.on("sp/v1/gw-1/gateway/attributes/response")
    assert answer == {"id": 5, "device": "lamp-1", "value": "night"}
    await mqtt.close()


async def test_a_persistent_command_waits_until_the_gateway_connects_its_device(
    client: httpx.AsyncClient, city: City, site: Site, broker: Mosquitto
) -> None:
    r = await client.post(
        f"/api/devices/{site.lamp2['id']}/rpc",
        json={"method": "reboot", "params": {}, "oneway": True, "persistent": True},
        headers=city.auth("lighting"),
    )
    assert r.status_code == 202, r.text
    inbox = Inbox()
    mqtt = await gateway(broker, site, inbox)
    await mqtt.publish("sp/v1/gw-1/gateway/connect", b'{"device": "lamp-2"}', qos=1)
    (command,) = await inbox.on("sp/v1/gw-1/gateway/rpc/request")
    assert command["device"] == "lamp-2"
    assert command["data"]["method"] == "reboot"
    assert not [p for p in inbox.got if p.topic.startswith("sp/v1/lamp-2/")]
    await mqtt.close()


Node = Callable[..., contextlib.AbstractAsyncContextManager[tuple[Platform, httpx.AsyncClient]]]


@pytest.fixture
def another_node(database: Database, tmp_path: Path, broker: Mosquitto) -> Node:
    """Starts another node on the test's database and broker: ``another_node("node-c")``."""
    return lambda name="node-b": second_node(database, tmp_path, broker, name)


@contextlib.asynccontextmanager
async def second_node(
    database: Database, tmp_path: Path, broker: Mosquitto, name: str
) -> AsyncIterator[tuple[Platform, httpx.AsyncClient]]:
    """Another node on the same database and broker, with its own HTTP API."""
    # its own engine on the same database, as another process has (stop() disposes it)
    p = Platform(node_settings(tmp_path / name, broker, name), db=Database(database.url))
    await p.start()
    transport = httpx.ASGITransport(app=create_app(p.api_services()))
    try:
        consumer = p.broker
        assert consumer is not None

        async def up() -> bool:
            return consumer.ready  # connected, and the retained statuses read

        await eventually(up)
        async with httpx.AsyncClient(transport=transport, base_url="http://node-b") as c:
            yield p, c
    finally:
        await p.stop()


def on_every(
    nodes: list[BrokerConsumer | None], holds: Callable[[BrokerConsumer], bool]
) -> Callable[[], Awaitable[bool]]:
    """A check for ``eventually``: ``holds`` is true of every node's consumer."""

    async def check() -> bool:
        return all(n is not None and holds(n) for n in nodes)

    return check


async def test_another_node_sends_commands_through_the_gateway_that_reported_the_device(
    client: httpx.AsyncClient,
    city: City,
    site: Site,
    broker: Mosquitto,
    another_node: Node,
) -> None:
    inbox = Inbox()
    mqtt = await gateway(broker, site, inbox)
    lamp = site.lamp1["id"]
    report = {"lamp-1": [{"ts": T0, "values": {"power": 5}}]}
    await mqtt.publish("sp/v1/gw-1/gateway/telemetry", orjson.dumps(report), qos=1)

    async def stored() -> bool:
        return "power" in await latest(client, city, lamp)

    await eventually(stored)
    # a node started after the report never heard the gateway name lamp-1
    async with another_node() as (node, api):
        await command_through_gateway(api, city, mqtt, inbox, lamp, 70)
        assert node.broker is not None
        assert node.broker.stats.commands == 1
    await mqtt.close()


async def test_every_node_learns_at_once_when_a_gateway_disconnects_a_device(
    client: httpx.AsyncClient,
    city: City,
    site: Site,
    broker: Mosquitto,
    another_node: Node,
    platform: Platform,
) -> None:
    lamp = site.lamp1["id"]
    mqtt = await gateway(broker, site)
    async with another_node() as (node, _):
        nodes = [platform.broker, node.broker]
        # whichever node consumes them, both know within moments, not after the inactivity
        # timeout: the consuming node publishes the device's retained status
        await mqtt.publish("sp/v1/gw-1/gateway/connect", b'{"device": "lamp-1"}', qos=1)
        await eventually(on_every(nodes, lambda n: n.presence(lamp) is True), within=3.0)
        await mqtt.publish("sp/v1/gw-1/gateway/disconnect", b'{"device": "lamp-1"}', qos=1)
        await eventually(on_every(nodes, lambda n: n.presence(lamp) is False), within=3.0)
        assert not any(n is not None and n.is_connected(lamp) for n in nodes)
    # a node that starts later reads the retained status
    async with another_node("node-c") as (later, _):
        assert later.broker is not None
        consumer = later.broker

        async def known() -> bool:
            return consumer.presence(lamp) is False

        await eventually(known, within=3.0)
    await mqtt.close()


async def test_no_node_sends_to_a_sub_device_whose_gateway_is_gone(
    client: httpx.AsyncClient,
    city: City,
    site: Site,
    broker: Mosquitto,
    another_node: Node,
    platform: Platform,
) -> None:
    """The gateway's status says offline (its will): a command for one of its devices is refused
    on every node (one that routed a command to it before, one started since) or, persistent,
    waits and goes out when the gateway is back."""
    inbox = Inbox()
    mqtt = await gateway(broker, site, inbox)
    lamp = site.lamp1["id"]
    one_shot = {"method": "setDim", "params": {"level": 10}, "timeout": 2000}
    auth = city.auth("lighting")

    async def status(text: bytes) -> None:
        await mqtt.publish("sp/v1/gw-1/status", text, qos=1, retain=True)

    await status(b"online")
    await mqtt.publish("sp/v1/gw-1/gateway/connect", b'{"device": "lamp-1"}', qos=1)
    async with another_node() as (node, api):
        nodes = [platform.broker, node.broker]
        await eventually(on_every(nodes, lambda n: n.is_connected(lamp)), within=3.0)
        await command_through_gateway(api, city, mqtt, inbox, lamp, 40)  # node B knows the route
        await status(b"offline")
        await eventually(on_every(nodes, lambda n: not n.is_connected(lamp)), within=3.0)
        for http in (client, api):
            r = await http.post(f"/api/devices/{lamp}/rpc", json=one_shot, headers=auth)
            assert r.status_code == 409, r.text
        persistent = {"method": "reboot", "oneway": True, "persistent": True}
        r = await api.post(f"/api/devices/{lamp}/rpc", json=persistent, headers=auth)
        assert (r.status_code, r.json()["status"]) == (202, "queued"), r.text

        async with another_node("node-c") as (_, later):
            r = await later.post(f"/api/devices/{lamp}/rpc", json=one_shot, headers=auth)
            assert r.status_code == 409, r.text
        assert len([p for p in inbox.got if p.topic == "sp/v1/gw-1/gateway/rpc/request"]) == 1

        await status(b"online")
        commands = await inbox.on("sp/v1/gw-1/gateway/rpc/request", count=2)
        assert (commands[1]["device"], commands[1]["data"]["method"]) == ("lamp-1", "reboot")
    await status(b"")  # clear the retained status
    await mqtt.close()


@pytest.mark.parametrize(
    ("suffix", "payload"),
    [
        pytest.param("gateway/telemetry", b"[]", id="telemetry-not-an-object"),
        pytest.param("gateway/telemetry", b'{"": [{"power": 1}]}', id="telemetry-no-name"),
        pytest.param("gateway/connect", b'{"device": 7}', id="connect-no-name"),
        pytest.param("gateway/attributes/request", b'{"device": "lamp-1"}', id="request-no-id"),
        pytest.param("gateway/rpc", b'{"device": ["lamp-1"], "id": 1, "data": {}}', id="rpc-list"),
        pytest.param("gateway/rpc", b'{"device": "lamp-1", "id": "x", "data": {}}', id="rpc-id"),
        pytest.param("gateway/claim", b'{"lamp-9": {"secretKey": "s"}}', id="claim-off-pole"),
        pytest.param("gateway/nonsense", b"{}", id="unknown-action"),
    ],
)
async def test_a_malformed_gateway_message_is_dropped_and_the_node_goes_on(
    client: httpx.AsyncClient,
    city: City,
    site: Site,
    broker: Mosquitto,
    platform: Platform,
    suffix: str,
    payload: bytes,
) -> None:
    assert platform.broker is not None
    stats = platform.broker.stats
    mqtt = await gateway(broker, site)
    if suffix == "gateway/nonsense":  # outside the ACL: Mosquitto refuses it already
        with pytest.raises(PublishRefused):
            await mqtt.publish(f"sp/v1/gw-1/{suffix}", payload, qos=1)
    else:
        await mqtt.publish(f"sp/v1/gw-1/{suffix}", payload, qos=1)

        async def dropped() -> bool:
            return stats.dropped == 1

        await eventually(dropped)
    report = {"lamp-1": [{"ts": T0, "values": {"power": 7}}]}
    await mqtt.publish("sp/v1/gw-1/gateway/telemetry", orjson.dumps(report), qos=1)

    async def stored() -> bool:
        return "power" in await latest(client, city, site.lamp1["id"])

    await eventually(stored)
    assert stats.reconnects == 0
    await mqtt.close()
