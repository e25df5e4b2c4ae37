"""ThingsBoard's own Python SDK (tb-mqtt-client), unchanged, against smartpole's MQTT endpoint.

The SDK is blocking and callback-based, with background threads of its own: every SDK call
runs in a worker thread, callbacks hand their results over through queues, and each client is
disconnected and its threads joined at the end of the test.
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from tb_device_mqtt import TBDeviceMqttClient
from tb_gateway_mqtt import TBGatewayMqttClient

from fixtures_api import City, make_device, make_pole
from helpers import poll, run, sent, shutdown, start, take
from smartpole.app import Platform

T0 = 1_764_000_000_000
# Keys as ThingsBoard devices send them: spaced, Chinese, the IoT Gateway's connector name.
ROOM, WENDU, CONNECTOR = "room temp", "温度", "MQTT Broker Connector"


async def latest(client: httpx.AsyncClient, auth: dict[str, str], device_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/devices/{device_id}/latest", headers=auth)
    assert r.status_code == 200, r.text
    return {k: v["value"] for k, v in r.json().items()}


async def attributes(
    client: httpx.AsyncClient, auth: dict[str, str], device_id: int, scope: str
) -> dict[str, Any]:
    r = await client.get(
        f"/api/devices/{device_id}/attributes", params={"scope": scope}, headers=auth
    )
    assert r.status_code == 200, r.text
    return {k: v["value"] for k, v in r.json().get(scope, {}).items()}


# -- the device client --------------------------------------------------------------------
@pytest.fixture
async def lamp(client: httpx.AsyncClient, city: City) -> dict[str, Any]:
    pole = await make_pole(client, city, "FT-SDK-0001")
    return await make_device(client, city, "lighting", "lamp", pole, name="lamp-sdk")


@pytest.fixture
async def sdk(platform: Platform, lamp: dict[str, Any]) -> AsyncIterator[TBDeviceMqttClient]:
    """The lamp connected with ``TBDeviceMqttClient``."""
    c = TBDeviceMqttClient("127.0.0.1", port=platform.mqtt[0].mqtt_port, username=lamp["token"])
    try:
        await start(c)
        yield c
    finally:
        await run(shutdown, c)


async def test_session_limits_requested_at_connect_are_applied(
    sdk: TBDeviceMqttClient, platform: Platform
) -> None:
    limits = platform.devices.limits
    # the answer to the SDK's getSessionLimits RPC was understood and applied
    assert sdk.rate_limits_received
    assert sdk.max_payload_size == int(limits.max_payload * 80 / 100)
    assert sdk._messages_rate_limit.has_limit()
    assert sdk._telemetry_dp_rate_limit.has_limit()
    assert 0 < sdk._client._max_inflight_messages <= limits.max_inflight
    assert sdk.is_connected()


async def test_telemetry_and_attributes_are_stored(
    sdk: TBDeviceMqttClient, client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    auth = city.auth("lighting")
    now = {"power": 42.5, "on": True, ROOM: 21.5, WENDU: 22}
    assert await sent(lambda: sdk.send_telemetry(now)) == 0
    assert await sent(lambda: sdk.send_telemetry({"ts": T0, "values": {"dim": 40}})) == 0
    batch = [{"ts": T0 + 1, "values": {"dim": 50}}, {"ts": T0 + 2, "values": {"dim": 60}}]
    assert await sent(lambda: sdk.send_telemetry(batch)) == 0
    client_attrs = {"firmware": "1.4.2", "model": "SL-60", CONNECTOR: "ok"}
    assert await sent(lambda: sdk.send_attributes(client_attrs)) == 0

    async def stored() -> bool:
        got = await latest(client, auth, lamp["id"])
        return got.get("power") == 42.5 and got.get("dim") == 60

    await poll(stored)
    got = await latest(client, auth, lamp["id"])
    assert (got["on"], got[ROOM], got[WENDU]) == (True, 21.5, 22)
    r = await client.get(
        f"/api/devices/{lamp['id']}/timeseries",
        params={"keys": "dim", "start": T0, "end": T0 + 10},
        headers=auth,
    )
    assert [p["value"] for p in r.json()["dim"]] == [40, 50, 60]
    assert await attributes(client, auth, lamp["id"], "client") == client_attrs


async def test_attribute_request_gets_client_and_shared_values(
    sdk: TBDeviceMqttClient, client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    r = await client.post(
        f"/api/devices/{lamp['id']}/attributes/shared",
        json={"profile": "night", "dim_max": 80, "调光 计划": "夜间"},
        headers=city.auth("lighting"),
    )
    assert r.status_code == 200, r.text
    assert await sent(lambda: sdk.send_attributes({"firmware": "1.4.2", CONNECTOR: "ok"})) == 0
    answers: queue.Queue[tuple[Any, Any]] = queue.Queue()
    await run(
        sdk.request_attributes,
        client_keys=["firmware", CONNECTOR],
        shared_keys=["profile", "dim_max", "调光 计划"],
        callback=lambda content, error: answers.put((content, error)),
    )
    content, error = await take(answers)
    assert error is None
    assert content == {
        "client": {"firmware": "1.4.2", CONNECTOR: "ok"},
        "shared": {"profile": "night", "dim_max": 80, "调光 计划": "夜间"},
    }


async def test_shared_attribute_update_reaches_the_subscription(
    sdk: TBDeviceMqttClient, client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    every: queue.Queue[tuple[Any, Any]] = queue.Queue()
    one: queue.Queue[tuple[Any, Any]] = queue.Queue()
    sdk.subscribe_to_all_attributes(lambda content, error: every.put((content, error)))
    sdk.subscribe_to_attribute("调光 计划", lambda content, error: one.put((content, error)))
    r = await client.post(
        f"/api/devices/{lamp['id']}/attributes/shared",
        json={"调光 计划": "eco"},
        headers=city.auth("lighting"),
    )
    assert r.status_code == 200, r.text
    assert await take(every) == ({"调光 计划": "eco"}, None)
    assert await take(one) == ({"调光 计划": "eco"}, None)
    await client.post(
        f"/api/devices/{lamp['id']}/attributes/shared",
        json={"profile": "night"},
        headers=city.auth("lighting"),
    )
    assert await take(every) == ({"profile": "night"}, None)
    assert one.empty()  # the key subscription only hears its key


async def test_server_side_rpc_answered_by_the_sdk_handler(
    sdk: TBDeviceMqttClient, client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    seen: queue.Queue[tuple[str, Any]] = queue.Queue()

    def handler(request_id: str, body: Any) -> None:
        seen.put((request_id, body))
        sdk.send_rpc_reply(request_id, {"level": body["params"]["level"], "ok": True})

    sdk.set_server_side_rpc_request_handler(handler)
    r = await client.post(
        f"/api/devices/{lamp['id']}/rpc",
        json={"method": "setDim", "params": {"level": 30}, "timeout": 5000},
        headers=city.auth("lighting"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded"
    assert r.json()["response"] == {"level": 30, "ok": True}
    request_id, body = seen.get_nowait()
    assert body == {"method": "setDim", "params": {"level": 30}}
    assert int(request_id) == r.json()["request_id"]


async def test_client_side_rpc(sdk: TBDeviceMqttClient) -> None:
    answers: queue.Queue[tuple[Any, Any, Any]] = queue.Queue()
    await run(sdk.send_rpc_call, "getCurrentTime", {}, lambda *a: answers.put(a))
    _, content, error = await take(answers)
    assert error is None
    assert abs(content["currentTime"] - time.time() * 1000) < 60_000


# -- the gateway client -------------------------------------------------------------------
@pytest.fixture
async def site(client: httpx.AsyncClient, city: City) -> dict[str, Any]:
    """Pole P with a city gateway and a telecom small cell registered on it by name."""
    pole = await make_pole(client, city, "FT-SDK-0002")
    return {
        "pole": pole,
        "gw": await make_device(client, city, "city", "gateway", pole, name="gw-sdk"),
        "cell": await make_device(client, city, "telecom", "small_cell", pole, name="cell-sdk"),
    }


@pytest.fixture
async def gw(platform: Platform, site: dict[str, Any]) -> AsyncIterator[TBGatewayMqttClient]:
    """The gateway connected with ``TBGatewayMqttClient``."""
    c = TBGatewayMqttClient(
        "127.0.0.1", port=platform.mqtt[0].mqtt_port, username=site["gw"]["token"]
    )
    try:
        await start(c)
        yield c
    finally:
        await run(shutdown, c)


async def test_gateway_reports_the_small_cell(
    gw: TBGatewayMqttClient,
    platform: Platform,
    client: httpx.AsyncClient,
    city: City,
    site: dict[str, Any],
) -> None:
    telecom = city.auth("telecom")
    cell = site["cell"]["id"]
    assert await sent(lambda: gw.gw_connect_device("cell-sdk", "small_cell")) == 0
    await poll(lambda: asyncio.sleep(0, platform.mqtt[0].is_connected(cell)))
    now = {"users": 12, "power": 350, "信号 强度": -71}
    assert await sent(lambda: gw.gw_send_telemetry("cell-sdk", now)) == 0
    reading = {"ts": T0, "values": {"throughput_dl": 850.5}}
    assert await sent(lambda: gw.gw_send_telemetry("cell-sdk", reading)) == 0
    cell_attrs = {"firmware": "5.2.1", CONNECTOR: "ok"}
    assert await sent(lambda: gw.gw_send_attributes("cell-sdk", cell_attrs)) == 0

    async def stored() -> bool:
        got = await latest(client, telecom, cell)
        return got.get("users") == 12 and got.get("throughput_dl") == 850.5

    await poll(stored)
    got = await latest(client, telecom, cell)
    assert (got["power"], got["信号 强度"]) == (350, -71)
    assert await attributes(client, telecom, cell, "client") == cell_attrs
    # nothing was stored on the gateway itself
    assert "users" not in await latest(client, city.auth("city"), site["gw"]["id"])

    await client.post(
        f"/api/devices/{cell}/attributes/shared",
        json={"tx_power": 30, "发射 功率": 27},
        headers=telecom,
    )
    answers: queue.Queue[tuple[Any, Any]] = queue.Queue()
    await run(
        gw.gw_request_shared_attributes,
        "cell-sdk",
        ["tx_power", "发射 功率"],
        lambda content, error: answers.put((content, error)),
    )
    content, error = await take(answers)
    assert error is None
    assert content["device"] == "cell-sdk"
    assert content["values"] == {"tx_power": 30, "发射 功率": 27}

    assert await sent(lambda: gw.gw_disconnect_device("cell-sdk")) == 0
    await poll(lambda: asyncio.sleep(0, not platform.mqtt[0].is_connected(cell)))

    async def offline() -> bool:
        return (await latest(client, telecom, cell)).get("online") is False

    await poll(offline)


async def test_shared_attribute_update_reaches_the_gateway(
    gw: TBGatewayMqttClient, client: httpx.AsyncClient, city: City, site: dict[str, Any]
) -> None:
    pushed: queue.Queue[Any] = queue.Queue()
    gw.gw_subscribe_to_all_attributes(pushed.put)
    assert await sent(lambda: gw.gw_connect_device("cell-sdk", "small_cell")) == 0
    r = await client.post(
        f"/api/devices/{site['cell']['id']}/attributes/shared",
        json={"tx_power": 27},
        headers=city.auth("telecom"),
    )
    assert r.status_code == 200, r.text
    assert await take(pushed) == {"device": "cell-sdk", "data": {"tx_power": 27}}


async def test_rpc_to_the_small_cell_through_the_gateway_handler(
    gw: TBGatewayMqttClient,
    platform: Platform,
    client: httpx.AsyncClient,
    city: City,
    site: dict[str, Any],
) -> None:
    seen: queue.Queue[Any] = queue.Queue()

    def handler(gateway: TBGatewayMqttClient, content: Any) -> None:
        seen.put(content)
        data = content["data"]
        gateway.gw_send_rpc_reply(content["device"], data["id"], {"applied": data["params"]})

    gw.gw_set_server_side_rpc_request_handler(handler)
    assert await sent(lambda: gw.gw_connect_device("cell-sdk", "small_cell")) == 0
    cell = site["cell"]["id"]
    await poll(lambda: asyncio.sleep(0, platform.mqtt[0].is_connected(cell)))
    r = await client.post(
        f"/api/devices/{cell}/rpc",
        json={"method": "setPower", "params": {"dbm": 20}, "timeout": 5000},
        headers=city.auth("telecom"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded"
    assert r.json()["response"] == {"applied": {"dbm": 20}}
    content = seen.get_nowait()
    assert content["device"] == "cell-sdk"
    assert content["data"]["method"] == "setPower"
    assert content["data"]["id"] == r.json()["request_id"]


async def devices_on(client: httpx.AsyncClient, city: City, pole: int) -> dict[str, Any]:
    r = await client.get("/api/devices", params={"pole_id": pole}, headers=city.auth("city"))
    assert r.status_code == 200, r.text
    return {d["name"]: d for d in r.json()["items"]}


async def test_unknown_device_is_refused_unless_the_gateway_may_create_it(
    gw: TBGatewayMqttClient,
    client: httpx.AsyncClient,
    city: City,
    site: dict[str, Any],
) -> None:
    pole = site["pole"]
    # refused: acknowledged with 0x87, nothing created, nothing stored
    await sent(lambda: gw.gw_connect_device("cam-new", "camera"))
    await sent(lambda: gw.gw_send_telemetry("cam-new", {"people": 3}))
    assert "cam-new" not in await devices_on(client, city, pole)

    r = await client.post(
        f"/api/devices/{site['gw']['id']}/attributes/server",
        json={"autoCreateDevices": True},
        headers=city.auth("city"),
    )
    assert r.status_code == 200, r.text
    assert await sent(lambda: gw.gw_connect_device("cam-new", "camera")) == 0
    assert await sent(lambda: gw.gw_send_telemetry("cam-new", {"people": 4})) == 0
    created = (await devices_on(client, city, pole))["cam-new"]
    assert created["kind"] == "camera"
    assert created["pole_id"] == pole

    async def stored() -> bool:
        return (await latest(client, city.auth("city"), created["id"])).get("people") == 4

    await poll(stored)


@pytest.mark.parametrize(
    ("type_args", "profile"),
    [
        pytest.param((), "default", id="sdk-default"),
        pytest.param(("Thermometer",), "Thermometer", id="profile-name"),
    ],
)
async def test_a_gateway_of_any_device_type_creates_generic_devices(
    gw: TBGatewayMqttClient,
    client: httpx.AsyncClient,
    city: City,
    site: dict[str, Any],
    type_args: tuple[str, ...],
    profile: str,
) -> None:
    """The SDK's default type and ThingsBoard profile names are no smartpole kind: the device
    is created as generic, keeping the type as its profile, and its readings are stored."""
    r = await client.post(
        f"/api/devices/{site['gw']['id']}/attributes/server",
        json={"autoCreateDevices": True},
        headers=city.auth("city"),
    )
    assert r.status_code == 200, r.text
    assert await sent(lambda: gw.gw_connect_device("thing-new", *type_args)) == 0
    assert await sent(lambda: gw.gw_send_telemetry("thing-new", {"temperature": 21.5})) == 0
    created = (await devices_on(client, city, site["pole"]))["thing-new"]
    assert (created["kind"], created["profile"]) == ("generic", profile)

    async def stored() -> bool:
        got = await latest(client, city.auth("city"), created["id"])
        return got.get("temperature") == 21.5

    await poll(stored)
