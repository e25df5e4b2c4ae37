"""The ThingsBoard gateway API over the built-in MQTT endpoint, topic by topic (plain paho)."""

from __future__ import annotations

import asyncio
import gc
import queue
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from fixtures_api import City, make_device, make_pole
from mqtt_client import V5, V311, Device, read_pubacks
from smartpole.app import Platform
from smartpole.model.types import DeviceRef
from smartpole.transport.mqtt import codec

T0 = 1_764_000_000_000
RC_NOT_AUTHORIZED = 0x87
RC_TOPIC_INVALID = 0x90


@dataclass
class Site:
    """A city gateway on pole P with a telecom small cell and a city camera; a lamp on pole Q."""

    pole: int
    gw: dict[str, Any]
    cell: dict[str, Any]
    cam: dict[str, Any]
    far_lamp: dict[str, Any]


@pytest.fixture
async def site(client: httpx.AsyncClient, city: City) -> Site:
    pole = await make_pole(client, city, "FT-GW-0001")
    other = await make_pole(client, city, "FT-GW-0002")
    return Site(
        pole=pole,
        gw=await make_device(client, city, "city", "gateway", pole, name="gw-1"),
        cell=await make_device(client, city, "telecom", "small_cell", pole, name="cell-1"),
        cam=await make_device(client, city, "city", "camera", pole, name="cam-1"),
        far_lamp=await make_device(client, city, "lighting", "lamp", other, name="lamp-far"),
    )


@pytest.fixture(params=[pytest.param(V5, id="mqtt5"), pytest.param(V311, id="mqtt311")])
async def gateway(
    request: pytest.FixtureRequest, platform: Platform, site: Site
) -> AsyncIterator[Device]:
    """The gateway connected over MQTT 5 or 3.1.1."""
    dev = Device(platform.mqtt[0].mqtt_port, site.gw["token"], request.param, client_id="gw-1")
    assert await dev.connect() == 0
    yield dev
    await dev.close()


@pytest.fixture
async def gateway5(platform: Platform, site: Site) -> AsyncIterator[Device]:
    """The gateway over MQTT 5 (for negative acknowledgements)."""
    dev = Device(platform.mqtt[0].mqtt_port, site.gw["token"], V5, client_id="gw-1")
    assert await dev.connect() == 0
    yield dev
    await dev.close()


async def latest(client: httpx.AsyncClient, auth: dict[str, str], device_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/devices/{device_id}/latest", headers=auth)
    assert r.status_code == 200, r.text
    return {k: v["value"] for k, v in r.json().items()}


async def online(client: httpx.AsyncClient, auth: dict[str, str], device_id: int) -> bool:
    r = await client.get(f"/api/devices/{device_id}", headers=auth)
    assert r.status_code == 200, r.text
    return bool(r.json()["online"])


async def test_connect_marks_the_sub_device_online(
    gateway: Device, client: httpx.AsyncClient, city: City, site: Site
) -> None:
    telecom = city.auth("telecom")
    assert await online(client, telecom, site.cell["id"]) is False
    assert await gateway.publish("v1/gateway/connect", {"device": "cell-1"}) == 0
    assert await online(client, telecom, site.cell["id"]) is True
    for _ in range(50):  # recorded as telemetry too
        if (await latest(client, telecom, site.cell["id"])).get("online") is True:
            break
        await asyncio.sleep(0.05)
    assert (await latest(client, telecom, site.cell["id"]))["online"] is True


async def test_disconnect_records_the_sub_device_offline(
    gateway: Device, platform: Platform, client: httpx.AsyncClient, city: City, site: Site
) -> None:
    telecom = city.auth("telecom")
    assert await gateway.publish("v1/gateway/connect", {"device": "cell-1"}) == 0
    assert platform.mqtt[0].is_connected(site.cell["id"])
    assert await gateway.publish("v1/gateway/disconnect", {"device": "cell-1"}) == 0
    assert not platform.mqtt[0].is_connected(site.cell["id"])
    assert site.cell["id"] not in platform.devices.online
    assert (await latest(client, telecom, site.cell["id"]))["online"] is False
    # a command to it now finds it offline
    r = await client.post(
        f"/api/devices/{site.cell['id']}/rpc", json={"method": "reboot"}, headers=telecom
    )
    assert r.status_code == 409, r.text


async def test_disconnect_shows_the_sub_device_offline_in_the_api(
    gateway5: Device, client: httpx.AsyncClient, city: City, site: Site
) -> None:
    telecom = city.auth("telecom")
    assert await gateway5.publish("v1/gateway/connect", {"device": "cell-1"}) == 0
    assert await online(client, telecom, site.cell["id"]) is True
    assert await gateway5.publish("v1/gateway/disconnect", {"device": "cell-1"}) == 0
    assert await online(client, telecom, site.cell["id"]) is False


async def test_telemetry_of_several_devices_is_stored_with_one_puback(
    gateway: Device, client: httpx.AsyncClient, city: City, site: Site
) -> None:
    body = {
        "cell-1": [{"ts": T0, "values": {"users": 12, "throughput_dl": 850.5}}],
        "cam-1": [{"people": 7}, {"ts": T0 + 1, "values": {"recording": True}}],
    }
    assert await gateway.publish("v1/gateway/telemetry", body) == 0
    # one PUBACK after the commit: both devices' readings are readable at once
    cell = await latest(client, city.auth("telecom"), site.cell["id"])
    assert cell["users"] == 12
    assert cell["throughput_dl"] == 850.5
    cam = await latest(client, city.auth("city"), site.cam["id"])
    assert cam["people"] == 7
    assert cam["recording"] is True
    r = await client.get(
        f"/api/devices/{site.cell['id']}/timeseries",
        params={"keys": "users", "start": T0, "end": T0 + 10},
        headers=city.auth("telecom"),
    )
    assert r.json() == {"users": [{"ts": T0, "value": 12}]}
    # the gateway itself stored nothing
    assert "users" not in await latest(client, city.auth("city"), site.gw["id"])


async def test_client_attributes_of_sub_devices(
    gateway: Device, client: httpx.AsyncClient, city: City, site: Site
) -> None:
    body = {"cell-1": {"firmware": "5.2.1", "band": "n78"}, "cam-1": {"lens": "wide"}}
    assert await gateway.publish("v1/gateway/attributes", body) == 0
    r = await client.get(
        f"/api/devices/{site.cell['id']}/attributes",
        params={"scope": "client"},
        headers=city.auth("telecom"),
    )
    got = {k: v["value"] for k, v in r.json()["client"].items()}
    assert got == {"firmware": "5.2.1", "band": "n78"}
    r = await client.get(
        f"/api/devices/{site.cam['id']}/attributes",
        params={"scope": "client"},
        headers=city.auth("city"),
    )
    assert r.json()["client"]["lens"]["value"] == "wide"


async def test_attribute_request_answers_value_or_values(
    gateway: Device, client: httpx.AsyncClient, city: City, site: Site
) -> None:
    r = await client.post(
        f"/api/devices/{site.cell['id']}/attributes/shared",
        json={"tx_power": 30, "band": "n78"},
        headers=city.auth("telecom"),
    )
    assert r.status_code == 200, r.text
    assert await gateway.publish("v1/gateway/attributes", {"cell-1": {"firmware": "5.2.1"}}) == 0
    await gateway.subscribe("v1/gateway/attributes/response")

    await gateway.publish(
        "v1/gateway/attributes/request", {"id": 1, "device": "cell-1", "key": "tx_power"}
    )
    assert await gateway.receive() == (
        "v1/gateway/attributes/response",
        {"id": 1, "device": "cell-1", "value": 30},
    )
    await gateway.publish(
        "v1/gateway/attributes/request",
        {"id": 2, "device": "cell-1", "keys": ["tx_power", "band", "absent"]},
    )
    assert await gateway.receive() == (
        "v1/gateway/attributes/response",
        {"id": 2, "device": "cell-1", "values": {"tx_power": 30, "band": "n78"}},
    )
    await gateway.publish(
        "v1/gateway/attributes/request",
        {"id": 3, "device": "cell-1", "client": True, "key": "firmware"},
    )
    assert await gateway.receive() == (
        "v1/gateway/attributes/response",
        {"id": 3, "device": "cell-1", "value": "5.2.1"},
    )
    # a shared key is not a client key
    await gateway.publish(
        "v1/gateway/attributes/request",
        {"id": 4, "device": "cell-1", "client": True, "keys": ["tx_power"]},
    )
    assert await gateway.receive() == (
        "v1/gateway/attributes/response",
        {"id": 4, "device": "cell-1", "values": {}},
    )


async def test_shared_attribute_updates_are_pushed_through_the_gateway(
    gateway: Device, client: httpx.AsyncClient, city: City, site: Site
) -> None:
    await gateway.subscribe("v1/gateway/attributes")
    assert await gateway.publish("v1/gateway/connect", {"device": "cell-1"}) == 0
    r = await client.post(
        f"/api/devices/{site.cell['id']}/attributes/shared",
        json={"tx_power": 27},
        headers=city.auth("telecom"),
    )
    assert r.status_code == 200, r.text
    assert await gateway.receive() == (
        "v1/gateway/attributes",
        {"device": "cell-1", "data": {"tx_power": 27}},
    )
    # a device the gateway has not reported gets nothing pushed through it
    await client.post(
        f"/api/devices/{site.cam['id']}/attributes/shared",
        json={"mode": "night"},
        headers=city.auth("city"),
    )
    with pytest.raises(queue.Empty):
        await gateway.receive(wait=0.3)


async def test_server_side_rpc_through_the_gateway(
    gateway: Device, client: httpx.AsyncClient, city: City, site: Site
) -> None:
    await gateway.subscribe("v1/gateway/rpc")
    assert await gateway.publish("v1/gateway/connect", {"device": "cell-1"}) == 0

    async def answer(reply: dict[str, Any]) -> None:
        topic, body = await gateway.receive()
        assert topic == "v1/gateway/rpc"
        assert body["device"] == "cell-1"
        assert body["data"]["method"] == "setPower"
        assert body["data"]["params"] == {"dbm": 20}
        assert isinstance(body["data"]["id"], int)
        out = {"device": "cell-1", "id": body["data"]["id"], "data": reply}
        assert await gateway.publish("v1/gateway/rpc", out) == 0

    telecom = city.auth("telecom")
    url = f"/api/devices/{site.cell['id']}/rpc"
    cmd = {"method": "setPower", "params": {"dbm": 20}, "timeout": 5000}
    responder = asyncio.create_task(answer({"dbm": 20, "ok": True}))
    r = await client.post(url, json=cmd, headers=telecom)
    await responder
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded"
    assert r.json()["response"] == {"dbm": 20, "ok": True}

    # an error reply fails the command
    responder = asyncio.create_task(answer({"error": "radio busy"}))
    r = await client.post(url, json=cmd, headers=telecom)
    await responder
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "failed"
    assert r.json()["error"] == "radio busy"


async def test_client_side_rpc_of_the_gateway_itself(gateway: Device) -> None:
    await gateway.subscribe("v1/devices/me/rpc/response/+")
    await gateway.publish("v1/devices/me/rpc/request/3", {"method": "getCurrentTime"})
    topic, body = await gateway.receive()
    assert topic == "v1/devices/me/rpc/response/3"
    assert isinstance(body["currentTime"], int)


async def test_a_device_on_another_pole_is_refused(
    gateway5: Device, client: httpx.AsyncClient, city: City, site: Site
) -> None:
    lighting = city.auth("lighting")
    telemetry = {"lamp-far": [{"dim": 40}]}
    assert await gateway5.publish("v1/gateway/telemetry", telemetry) == RC_NOT_AUTHORIZED
    assert await gateway5.publish("v1/gateway/connect", {"device": "lamp-far"}) == RC_NOT_AUTHORIZED
    attrs = {"lamp-far": {"firmware": "x"}}
    assert await gateway5.publish("v1/gateway/attributes", attrs) == RC_NOT_AUTHORIZED
    # nor may a gateway speak for itself as a sub-device
    assert await gateway5.publish("v1/gateway/telemetry", {"gw-1": [{"x": 1}]}) == RC_NOT_AUTHORIZED
    # a report naming an allowed and a refused device: the allowed part is taken
    mixed = {"cell-1": [{"users": 3}], "lamp-far": [{"dim": 40}]}
    assert await gateway5.publish("v1/gateway/telemetry", mixed) == 0
    assert "dim" not in await latest(client, lighting, site.far_lamp["id"])
    assert (await latest(client, city.auth("telecom"), site.cell["id"]))["users"] == 3
    r = await client.get(f"/api/devices/{site.far_lamp['id']}/attributes", headers=lighting)
    assert "firmware" not in r.json().get("client", {})
    assert await gateway5.publish("v1/gateway/telemetry", {"cell-1": [{"users": 4}]}) == 0


async def test_an_unknown_device_is_refused_without_auto_create(
    gateway5: Device, client: httpx.AsyncClient, city: City, site: Site
) -> None:
    body = {"ghost-1": [{"users": 1}]}
    assert await gateway5.publish("v1/gateway/telemetry", body) == RC_NOT_AUTHORIZED
    r = await client.get("/api/devices", params={"pole_id": site.pole}, headers=city.auth("city"))
    assert "ghost-1" not in {d["name"] for d in r.json()["items"]}


async def test_a_non_gateway_device_may_not_use_the_gateway_api(
    platform: Platform, client: httpx.AsyncClient, city: City, site: Site
) -> None:
    cell = Device(platform.mqtt[0].mqtt_port, site.cell["token"], V5, client_id="cell-1")
    assert await cell.connect() == 0
    try:
        body = {"cam-1": [{"people": 99}]}
        assert await cell.publish("v1/gateway/telemetry", body) == RC_TOPIC_INVALID
        assert await cell.publish("v1/gateway/connect", {"device": "cam-1"}) == RC_TOPIC_INVALID
        assert "people" not in await latest(client, city.auth("city"), site.cam["id"])
        assert await cell.publish("v1/devices/me/telemetry", {"users": 5}) == 0  # session goes on
    finally:
        await cell.close()


async def test_a_malformed_gateway_message_is_refused(gateway5: Device) -> None:
    assert await gateway5.publish("v1/gateway/telemetry", {}) == 0x99
    assert await gateway5.publish("v1/gateway/telemetry", b"[1, 2") == 0x99
    assert await gateway5.publish("v1/gateway/connect", {"type": "lamp"}) == 0x99
    assert await gateway5.publish("v1/gateway/rpc", {"device": "cell-1", "id": 1}) == 0x99
    assert await gateway5.publish("v1/gateway/claim", ["cell-1"]) == 0x99  # claiming is served
    assert await gateway5.publish("v1/gateway/telemetry", {"cell-1": [{"users": 1}]}) == 0


async def test_telemetry_right_behind_the_connect_of_a_new_device_is_stored(
    platform: Platform, client: httpx.AsyncClient, city: City, site: Site
) -> None:
    """A gateway that connects a new device and reports it at once, without waiting for the
    acknowledgements (QoS 1 pipelining, all in one TCP segment), gets one device, one session
    start and every reading: the messages behind the connect wait for its creation instead of
    racing it (and failing as an unknown device of no type)."""
    auth = city.auth("city")
    r = await client.post(
        f"/api/devices/{site.gw['id']}/attributes/server",
        json={"autoCreateDevices": True},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    n = 30
    messages = [("v1/gateway/connect", b'{"device": "cam-new", "type": "camera"}')]
    messages += [
        (
            "v1/gateway/telemetry",
            orjson.dumps({"cam-new": [{"ts": T0 + i, "values": {"people": i}}]}),
        )
        for i in range(n)
    ]
    reader, writer = await asyncio.open_connection("127.0.0.1", platform.mqtt[0].mqtt_port)
    try:
        writer.write(codec.encode(codec.Connect(5, "gw-1", True, 60, site.gw["token"]), 5))
        packets = codec.Reader()
        [(kind, _, body)] = packets.feed(await reader.read(64))
        assert kind == codec.PacketType.CONNACK
        assert body[1] == 0  # accepted
        writer.write(
            b"".join(
                codec.encode(codec.Publish(topic, payload, 1, packet_id=i + 1), 5)
                for i, (topic, payload) in enumerate(messages)
            )
        )
        acks = await read_pubacks(reader, len(messages))
        assert acks == [(i + 1, 0) for i in range(len(messages))]
        r = await client.get("/api/devices", params={"pole_id": site.pole}, headers=auth)
        created = [d for d in r.json()["items"] if d["name"] == "cam-new"]
        assert len(created) == 1
        assert created[0]["kind"] == "camera"
        r = await client.get(
            f"/api/devices/{created[0]['id']}/timeseries",
            params={"keys": "people,online", "start": 0, "end": 4_102_444_800_000, "limit": 1000},
            headers=auth,
        )
        series = r.json()
        assert [p["value"] for p in series["people"]] == list(range(n))
        assert [p["value"] for p in series["online"]] == [True]  # one session start
    finally:
        writer.close()


async def test_a_first_report_naming_many_devices_looks_them_up_together(
    gateway5: Device, platform: Platform, client: httpx.AsyncClient, city: City, site: Site
) -> None:
    """A gateway's first report after it (re)connected names all its devices: they are found
    with one registry query, and a name that is not on its pole is left out (looked up once
    more, alone, to log why)."""
    calls: list[list[str]] = []
    lookups = platform.assets.gateways_devices

    def counting(asks: Sequence[tuple[DeviceRef, Sequence[str]]]) -> Any:
        calls.extend(list(names) for _, names in asks)
        return lookups(asks)

    platform.assets.gateways_devices = counting  # type: ignore[method-assign]
    try:
        body = {"cell-1": [{"users": 3}], "cam-1": [{"people": 2}], "lamp-far": [{"dim": 5}]}
        assert await gateway5.publish("v1/gateway/telemetry", body) == 0
        assert calls[0] == ["cell-1", "cam-1", "lamp-far"]
        assert all(c == ["lamp-far"] for c in calls[1:])
        looked_up = len(calls)
        del body["lamp-far"]
        assert await gateway5.publish("v1/gateway/telemetry", body) == 0
        assert len(calls) == looked_up  # the two found the first time are this session's now
    finally:
        del platform.assets.gateways_devices
    assert (await latest(client, city.auth("telecom"), site.cell["id"]))["users"] == 3
    assert (await latest(client, city.auth("city"), site.cam["id"]))["people"] == 2
    assert "dim" not in await latest(client, city.auth("lighting"), site.far_lamp["id"])


async def test_a_report_naming_several_refused_devices_leaves_no_unseen_error(
    gateway5: Device, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"ghost-a": [{"x": 1}], "ghost-b": [{"x": 2}], "ghost-c": [{"x": 3}]}
    assert await gateway5.publish("v1/gateway/telemetry", body) == RC_NOT_AUTHORIZED
    assert await gateway5.publish("v1/gateway/telemetry", {"cell-1": [{"users": 1}]}) == 0
    gc.collect()  # an unretrieved task exception is logged when the task is collected
    await asyncio.sleep(0.05)
    assert "never retrieved" not in caplog.text


@pytest.mark.parametrize(
    ("first", "profile"),
    [
        pytest.param({"device": "thermo-1", "type": "Thermometer"}, "Thermometer", id="connect"),
        pytest.param({"device": "thermo-1"}, "default", id="connect-without-type"),
        pytest.param(None, "default", id="first-report"),
    ],
)
async def test_an_unknown_type_makes_a_generic_device_with_its_profile(
    gateway: Device,
    client: httpx.AsyncClient,
    city: City,
    site: Site,
    first: dict[str, Any] | None,
    profile: str,
) -> None:
    """A type (ThingsBoard device profile) smartpole has no kind for, or none at all, creates
    a generic device that keeps it, over MQTT 5 and 3.1.1 alike."""
    auth = city.auth("city")
    r = await client.post(
        f"/api/devices/{site.gw['id']}/attributes/server",
        json={"autoCreateDevices": True},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    if first is not None:
        assert await gateway.publish("v1/gateway/connect", first) == 0
    body = {"thermo-1": [{"ts": T0, "values": {"temperature": 21.5}}]}
    assert await gateway.publish("v1/gateway/telemetry", body) == 0
    r = await client.get("/api/devices", params={"kind": "generic"}, headers=auth)
    [created] = r.json()["items"]
    assert (created["name"], created["profile"], created["pole_id"]) == (
        "thermo-1",
        profile,
        site.pole,
    )
    assert (await latest(client, auth, created["id"]))["temperature"] == 21.5


async def test_a_report_with_quarantined_values_says_how_many(gateway5: Device) -> None:
    body = {"cell-1": [{"users": -5, "throughput_dl": 99_999}], "cam-1": [{"people": 2}]}
    assert await gateway5.publish("v1/gateway/telemetry", body) == 0
    assert list(gateway5.last_ack.UserProperty) == [("quarantined", "2")]
    assert gateway5.last_ack.ReasonString.startswith("2 value(s) quarantined: users=-5")


async def test_gateways_asking_at_once_are_answered_together_each_by_its_own_rule(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    """A restart's reconnect storm: gateways that name their sub-devices while another
    gateway's look-up runs share one look-up, and each still gets what the rule gives it: the
    city operator's gateway its pole's lamp, a telecom gateway not the lighting lamp beside it
    (not bound), neither the lamp of the next pole."""
    refs: list[DeviceRef] = []
    for i in range(12):
        pole = await make_pole(client, city, f"STORM-{i}")
        owner = "city" if i % 2 == 0 else "telecom"
        gateway = await make_device(
            client, city, "city", "gateway", pole, name=f"gw-{i}", owner=owner
        )
        lamp = await make_device(
            client, city, "city", "lamp", pole, name=f"lamp-{i}", owner="lighting"
        )
        assert (gateway["owner"], lamp["owner"]) == (owner, "lighting")
        ref = platform.assets.device_ref(gateway["id"])
        assert ref is not None
        refs.append(ref)
    calls: list[int] = []
    lookups = platform.assets.gateways_devices

    def counting(asks: Sequence[tuple[DeviceRef, Sequence[str]]]) -> Any:
        calls.append(len(asks))
        return lookups(asks)

    platform.assets.gateways_devices = counting  # type: ignore[method-assign]
    try:
        answers = await asyncio.gather(
            *(
                platform.devices.sub_devices(ref, [f"lamp-{i}", f"lamp-{(i + 1) % 12}"])
                for i, ref in enumerate(refs)
            )
        )
    finally:
        del platform.assets.gateways_devices
    assert [sorted(a) for a in answers] == [[f"lamp-{i}"] if i % 2 == 0 else [] for i in range(12)]
    assert sum(calls) == 12
    assert len(calls) < 12  # asked together while the first one ran
