"""The console's live socket, ``/api/live``: real WebSocket clients against the app served by
uvicorn, readings over the HTTP device API, a device over MQTT."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from fixtures_api import City, started
from helpers import HOT_LAMP, add_rule, all_online, make_street, send, settle
from smartpole.api.deps import SESSION_COOKIE
from smartpole.app import Platform
from smartpole.model.clock import now_ms
from smartpole.model.types import Role
from smartpole.store import Database
from smartpole.transport.mqtt import codec
from smartpole.transport.mqtt.client import MqttClient

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)
PASSWORD = "a long enough password"
QUEUE = 16  # messages a socket may have waiting: small, so that a slow client loses some
Message = dict[str, Any]


@pytest.fixture
async def platform(database: Database, tmp_path: Path) -> AsyncIterator[Platform]:
    """A started platform whose live sockets hold few messages each."""
    async with started(database, tmp_path, live_queue=QUEUE) as p:
        yield p


class Socket:
    """A live socket and every message it received so far."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.got: list[Message] = []

    async def op(self, **body: Any) -> None:
        await self.ws.send(orjson.dumps(body).decode())

    async def until(self, wanted: Callable[[Message], bool], within: float = 10.0) -> Message:
        """Read messages until one is ``wanted``; return it."""
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            message = orjson.loads(await asyncio.wait_for(self.ws.recv(), max(left, 0.01)))
            self.got.append(message)
            if wanted(message):
                return message

    def of(self, kind: str) -> list[Message]:
        return [m for m in self.got if m["type"] == kind]


async def open_socket(port: int, city: City, tenant: str, role: Role = Role.VIEWER) -> Socket:
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/api/live?key={city.keys[tenant, role]}")
    sock = Socket(ws)
    hello = await sock.until(lambda m: True)
    assert hello == {"type": "hello", "user": None, "tenant": tenant, "role": role.value}
    return sock


def latest_of(device: dict[str, Any], key: str) -> Callable[[Message], bool]:
    return lambda m: m["type"] == "latest" and m["device"] == device["id"] and key in m["values"]


async def test_a_reading_arrives_on_the_socket_watching_its_pole_and_on_no_other_tenants(
    platform: Platform, client: httpx.AsyncClient, city: City, server_port: int
) -> None:
    street = await make_street(client, city)
    lamp, cell = street.devices["lamp"], street.devices["cell"]
    lighting = await open_socket(server_port, city, "lighting")
    telecom = await open_socket(server_port, city, "telecom")
    for sock in (lighting, telecom):
        await sock.op(op="pole", id=street.p1)
    await lighting.until(lambda m: m["type"] == "online" and m["device"] == lamp["id"])
    await telecom.until(lambda m: m["type"] == "online" and m["device"] == cell["id"])
    t = now_ms()
    await send(client, lamp["token"], t, temperature=55.0)
    got = await lighting.until(latest_of(lamp, "temperature"))
    assert got["values"]["temperature"] == {"ts": t, "value": 55.0}
    await settle(platform)
    await send(client, cell["token"], t, users=12)
    await telecom.until(latest_of(cell, "users"))
    # telecom watches the same pole, and is told only of its own device
    assert {m["device"] for m in telecom.of("latest") + telecom.of("online")} == {cell["id"]}
    await lighting.ws.close()
    await telecom.ws.close()


async def test_a_pole_the_tenant_does_not_see_and_a_bad_op_are_refused_on_the_socket(
    platform: Platform, client: httpx.AsyncClient, city: City, server_port: int
) -> None:
    street = await make_street(client, city)
    sock = await open_socket(server_port, city, "telecom")
    await sock.op(op="pole", id=street.p2)  # lighting's pole only
    refused = await sock.until(lambda m: True)
    assert (refused["type"], refused["status"]) == ("error", 404)
    await sock.ws.send("not json")
    assert (await sock.until(lambda m: True))["status"] == 400
    await sock.op(op="pole", id="P1")
    assert (await sock.until(lambda m: True))["status"] == 400
    await sock.ws.close()


async def test_without_a_valid_key_the_socket_is_closed_with_1008(
    platform: Platform, server_port: int
) -> None:
    for query in ("", "?key=nope"):
        async with websockets.connect(f"ws://127.0.0.1:{server_port}/api/live{query}") as ws:
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008


async def test_a_console_session_opens_the_socket_from_its_own_site_only(
    platform: Platform, client: httpx.AsyncClient, city: City, server_port: int
) -> None:
    user = platform.users.create(city.ids["telecom"], "duty-desk", Role.OPERATOR, PASSWORD)
    r = await client.post("/api/session", json={"user": "duty-desk", "password": PASSWORD})
    assert r.status_code == 200, r.text
    cookie = f"{SESSION_COOKIE}={r.cookies[SESSION_COOKIE]}"
    url = f"ws://127.0.0.1:{server_port}/api/live"
    here = {"Cookie": cookie, "Origin": f"http://127.0.0.1:{server_port}"}
    async with websockets.connect(url, additional_headers=here) as ws:
        hello = orjson.loads(await ws.recv())
    assert hello == {
        "type": "hello",
        "user": {"id": user.id, "name": "duty-desk"},
        "tenant": "telecom",
        "role": "operator",
    }
    # a page of another site: the browser sends the cookie, the socket refuses it
    there = {"Cookie": cookie, "Origin": "https://elsewhere.example"}
    async with websockets.connect(url, additional_headers=there) as ws:
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


async def test_pole_states_are_pushed_per_view_an_alarm_to_lighting_and_offline_to_telecom(
    platform: Platform, client: httpx.AsyncClient, city: City, server_port: int
) -> None:
    street = await make_street(client, city)
    cell = street.devices["cell"]
    await all_online(platform, client, street)
    await add_rule(client, city, "lighting", HOT_LAMP)
    lighting = await open_socket(server_port, city, "lighting")
    telecom = await open_socket(server_port, city, "telecom")
    everyone = await open_socket(server_port, city, "city")
    for sock in (lighting, telecom, everyone):
        await sock.op(op="map")
    await telecom.op(op="pole", id=street.p1)
    await telecom.until(lambda m: m["type"] == "online" and m["device"] == cell["id"])

    await send(client, street.devices["lamp"]["token"], now_ms(), temperature=110.0)
    major = await lighting.until(lambda m: m["type"] == "states")
    assert major["poles"] == [[street.p1, 4]]
    assert (await everyone.until(lambda m: m["type"] == "states"))["poles"] == [[street.p1, 4]]

    # telecom's small cell connects over MQTT and goes away: offline, in telecom's view only
    mqtt = MqttClient("127.0.0.1", platform.mqtt[0].mqtt_port, username=cell["token"])
    await mqtt.connect()
    await mqtt.close()
    gone = await telecom.until(lambda m: m["type"] == "online" and not m["online"])
    assert gone["device"] == cell["id"]
    offline = await telecom.until(lambda m: m["type"] == "states")
    assert offline["poles"] == [[street.p1, 1]]
    assert telecom.of("states") == [offline]  # it never saw lighting's alarm
    r = await client.get("/api/map/poles", headers=city.auth("telecom"))
    assert r.json()["poles"]["state"] == [1]
    await settle(platform)
    assert [m for m in lighting.of("states") if m != major] == []  # still major for lighting
    for sock in (lighting, telecom, everyone):
        await sock.ws.close()


async def test_a_commands_lifecycle_arrives_on_the_socket_watching_its_pole(
    platform: Platform, client: httpx.AsyncClient, city: City, server_port: int
) -> None:
    street = await make_street(client, city)
    lamp = street.devices["lamp"]
    replies: list[tuple[str, bytes]] = []

    def on_message(p: codec.Publish) -> None:
        request_id = p.topic.rsplit("/", 1)[1]
        replies.append((f"v1/devices/me/rpc/response/{request_id}", b'{"dim": 30}'))

    mqtt = MqttClient(
        "127.0.0.1", platform.mqtt[0].mqtt_port, username=lamp["token"], on_message=on_message
    )
    await mqtt.connect()
    assert await mqtt.subscribe([("v1/devices/me/rpc/request/+", 1)]) == [1]
    lighting = await open_socket(server_port, city, "lighting", Role.OPERATOR)
    telecom = await open_socket(server_port, city, "telecom")
    for sock in (lighting, telecom):
        await sock.op(op="pole", id=street.p1)
        await sock.until(lambda m: m["type"] == "online")
    call = asyncio.ensure_future(
        client.post(
            f"/api/devices/{lamp['id']}/rpc",
            json={"method": "setDim", "params": {"level": 30}, "timeout": 5000},
            headers=city.auth("lighting", Role.OPERATOR),
        )
    )
    sent = await lighting.until(lambda m: m["type"] == "command")
    assert (sent["command"]["method"], sent["command"]["status"]) == ("setDim", "sent")
    while not replies:  # noqa: ASYNC110 - the device's handler runs on this loop
        await asyncio.sleep(0.02)
    await mqtt.publish(*replies[0], qos=1)
    done = await lighting.until(
        lambda m: m["type"] == "command" and m["command"]["status"] == "succeeded"
    )
    assert done["command"]["response"] == {"dim": 30}
    assert done["command"]["id"] == sent["command"]["id"]
    assert [m["command"]["status"] for m in lighting.of("command")] in (
        ["sent", "delivered", "succeeded"],
        ["sent", "succeeded"],
    )
    r = await call
    assert r.status_code == 200, r.text
    await send(client, street.devices["cell"]["token"], now_ms(), users=1)
    await telecom.until(latest_of(street.devices["cell"], "users"))
    assert telecom.of("command") == []  # not telecom's lamp
    await mqtt.close()
    for sock in (lighting, telecom):
        await sock.ws.close()


async def test_a_slow_client_loses_the_oldest_and_is_told_while_ingest_goes_on(
    platform: Platform, client: httpx.AsyncClient, city: City, server_port: int
) -> None:
    street = await make_street(client, city)
    lamp = street.devices["lamp"]
    # a client that reads nothing, through a small receive buffer: the server's writes stall
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", server_port))
    key = city.keys["lighting", Role.VIEWER]
    ws = await websockets.connect(
        f"ws://127.0.0.1:{server_port}/api/live?key={key}",
        sock=raw,
        max_queue=1,
        compression=None,  # what it is sent takes its full size on the wire
    )
    slow = Socket(ws)
    await slow.until(lambda m: m["type"] == "hello")
    await slow.op(op="pole", id=street.p1)
    note = "x" * 60_000
    t0 = now_ms()
    for i in range(200):  # 12 MB of latest values for one socket that takes none
        await send(client, lamp["token"], t0 + i, note=note, seq=i)
    # every upload was stored and acknowledged while the socket's writes stalled
    r = await client.get(f"/api/devices/{lamp['id']}/latest", headers=city.auth("lighting"))
    assert r.json()["seq"]["value"] == 199
    told = await slow.until(lambda m: m["type"] == "dropped", within=30)
    assert told["count"] > 0
    last = await slow.until(lambda m: m["type"] == "latest" and m["values"]["seq"]["value"] == 199)
    assert last["values"]["seq"]["ts"] == t0 + 199
    await ws.close()
