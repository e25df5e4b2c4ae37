"""Plain helpers shared by several test modules (functions and constants, not fixtures).

Fixtures live in the plugin modules ``conftest.py`` registers (``fixtures_api``,
``fixtures_broker``, ``fixtures_http``, ``browser``); a test module imports helpers from here and
never from another test module.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import insert
from tb_device_mqtt import TBDeviceMqttClient, TBPublishInfo
from tb_gateway_mqtt import TBGatewayMqttClient

from fixtures_api import City, grant_mount, make_device, make_pole
from mosquitto import Mosquitto
from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.model.clock import now_ms
from smartpole.model.types import Role
from smartpole.registry.broker import BrokerAccounts
from smartpole.store import Database
from smartpole.store.schema import devices, tenants
from smartpole.transport.broker.mosquitto import generate, write_if_changed
from smartpole.transport.mqtt import codec
from smartpole.transport.mqtt.client import MqttClient


# -- waiting --------------------------------------------------------------------------------
async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Wait until ``check`` holds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def poll(check: Callable[[], Any], wait: float = 5.0) -> None:
    """Await ``check()`` (a coroutine function) until it is true (``eventually``, sooner)."""
    await eventually(check, wait)


# -- processes and ports --------------------------------------------------------------------
EXE = Path(sys.executable).parent / "smartpole"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str) -> str:
    proc = subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# -- ThingsBoard's Python SDK (blocking, with threads of its own) ---------------------------
WAIT = 10.0


async def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a blocking SDK function in a worker thread."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def sent(info: Callable[[], TBPublishInfo]) -> int:
    """Publish through the SDK and wait for the PUBACK; the SDK's result code (0 = sent)."""
    return int(await run(lambda: info().get()))


async def take(q: queue.Queue[Any], wait: float = WAIT) -> Any:
    """The next item a callback put in ``q``."""
    return await asyncio.to_thread(q.get, True, wait)


def _ready(c: TBDeviceMqttClient) -> bool:
    if not (c.is_connected() and c.rate_limits_received):
        return False
    return not isinstance(c, TBGatewayMqttClient) or not c.get_subscriptions_in_progress()


async def start(c: TBDeviceMqttClient) -> None:
    """Connect and wait until the SDK has subscribed and applied ``getSessionLimits``."""

    def go() -> None:
        c.connect(keepalive=30)
        deadline = time.monotonic() + WAIT
        while not _ready(c):
            if time.monotonic() > deadline:
                raise TimeoutError("SDK client not ready (no CONNACK or no session limits)")
            time.sleep(0.01)

    await run(go)


def shutdown(c: TBDeviceMqttClient) -> None:
    """Disconnect, stop the SDK's threads and close every socket it opened."""
    c.disconnect()  # DISCONNECT, then paho's network thread is joined
    c.stop()  # ends the SDK's "Timeout check" and "Service loop" threads
    for name in ("_TBDeviceMqttClient__timeout_thread", "_TBDeviceMqttClient__service_loop"):
        thread = getattr(c, name)
        thread.join(5)
        assert not thread.is_alive(), name
    paho = c._client
    paho._sock_close()
    # paho keeps its wake-up socket pair open after the session ended
    for sock in (paho._sockpairR, paho._sockpairW):
        if sock is not None:
            sock.close()
    paho._sockpairR = paho._sockpairW = None


# -- broker mode (Mosquitto in front, smartpole consuming as its service user) ---------------
SERVICE = ("smartpole", "service-secret")


def sync_files(platform: Platform, broker: Mosquitto) -> None:
    """Write the broker's files from the registry (as the CLI does) and make it reload them."""
    files = generate(BrokerAccounts(platform.assets), SERVICE, broker.passwd.read_text())
    changed = [
        write_if_changed(broker.passwd, files.passwd),
        write_if_changed(broker.acl, files.acl),
    ]
    if any(changed):
        broker.reload()


def node_settings(data_dir: Path, broker: Mosquitto, node_id: str) -> Settings:
    """A node in broker mode (no built-in MQTT endpoint) consuming from ``broker``."""
    return Settings(
        data_dir=data_dir,
        batch_age_ms=2,
        mqtt_port=-1,
        broker=f"mqtt://127.0.0.1:{broker.port}",
        broker_username=SERVICE[0],
        broker_password=SERVICE[1],
        node_id=node_id,
    )


async def device(
    broker: Mosquitto, name: str, token: str, on_message: Any = None, **kw: Any
) -> MqttClient:
    """A connected device."""
    mqtt = MqttClient(
        "127.0.0.1", broker.port, username=name, password=token, on_message=on_message, **kw
    )
    await mqtt.connect()
    return mqtt


async def latest(client: httpx.AsyncClient, city: City, device_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/devices/{device_id}/latest", headers=city.auth("lighting"))
    assert r.status_code == 200, r.text
    return dict(r.json())


class Inbox:
    """What a client received, by topic."""

    def __init__(self) -> None:
        self.got: list[codec.Publish] = []

    def __call__(self, packet: codec.Publish) -> None:
        self.got.append(packet)

    async def on(self, topic: str, count: int = 1) -> list[Any]:
        async def arrived() -> bool:
            return len([p for p in self.got if p.topic == topic]) >= count

        await eventually(arrived)
        return [orjson.loads(p.payload) for p in self.got if p.topic == topic]


# -- the hub: readings in over HTTP, rules and alarms through the API ----------------------
TILT_RULE = {
    "name": "tilt",
    "scope": {"kinds": ["tilt"]},
    "condition": {"key": "tilt", "op": ">", "value": 5},
    "actions": [{"alarm": {"type": "pole_tilt", "severity": "major", "originator": "pole"}}],
}


# A YAML rule with problems on known lines: the operator on line 6, the severity on line 9.
BAD_RULE = """\
name: pm25-high
scope:
  kinds: [air]
condition:
  key: pm25
  op: "~"
  value: 75
actions:
  - alarm: {type: air_quality, severity: terrible}
"""


async def settle(platform: Platform) -> None:
    """Wait until every upload so far is committed, evaluated and acted on."""
    await platform.pipeline.drain()
    await platform.hub.settle()


async def send(client: httpx.AsyncClient, token: str, ts: int, **values: Any) -> None:
    """Upload one timestamped set of values through the HTTP device API."""
    r = await client.post(f"/api/v1/{token}/telemetry", json={"ts": ts, "values": values})
    assert r.status_code == 200, r.text


async def add_rule(client: httpx.AsyncClient, city: City, tenant: str, rule: dict[str, Any]) -> int:
    """Create a rule through the API and return its id."""
    r = await client.post("/api/rules", json=rule, headers=city.auth(tenant))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def alarms_of(client: httpx.AsyncClient, city: City, tenant: str, **q: Any) -> list[Any]:
    """Alarms the tenant sees."""
    r = await client.get("/api/alarms", params=q, headers=city.auth(tenant))
    assert r.status_code == 200, r.text
    return list(r.json())


# -- the store, without the API ------------------------------------------------------------
CREATED = 1_764_000_000_000  # 2025-11-24T16:00:00Z: when add_device's tenant and device were made


def add_device(db: Database, name: str | None = None) -> int:
    """Insert a tenant and a device owned by it; return the device id."""
    name = name or f"dev-{uuid.uuid4().hex[:8]}"
    with db.engine.begin() as conn:
        tenant_id = conn.execute(
            insert(tenants).values(name=f"t-{name}", created=CREATED)
        ).inserted_primary_key[0]
        return int(
            conn.execute(
                insert(devices).values(
                    name=name,
                    kind="lamp",
                    owner_id=tenant_id,
                    token_hash=uuid.uuid4().hex * 2,
                    token_hint="abcd",
                    created=CREATED,
                )
            ).inserted_primary_key[0]
        )


# -- firmware and claiming through the API --------------------------------------------------
FIRMWARE = random.Random(7).randbytes(40 * 1024)


async def upload(
    client: httpx.AsyncClient,
    city: City,
    data: bytes = FIRMWARE,
    tenant: str = "lighting",
    **params: Any,
) -> httpx.Response:
    query = {"title": "lamp-fw", "version": "2.0.0", "kind": "lamp", **params}
    headers = {**city.auth(tenant, Role.OPERATOR), "content-type": "application/octet-stream"}
    return await client.post("/api/firmware", params=query, content=data, headers=headers)


async def assign(
    client: httpx.AsyncClient, city: City, device_id: int, firmware_id: int
) -> httpx.Response:
    return await client.post(
        f"/api/devices/{device_id}/firmware",
        json={"firmware_id": firmware_id},
        headers=city.auth("lighting", Role.OPERATOR),
    )


async def claim(
    client: httpx.AsyncClient, city: City, name: str, secret: str, tenant: str = "telecom"
) -> httpx.Response:
    body = {"name": name, "secret_key": secret}
    return await client.post("/api/devices/claim", json=body, headers=city.auth(tenant))


# -- a gateway and another tenant's device on one pole -------------------------------------
@dataclass
class Site:
    """Pole P with lighting's gateway and lamp and telecom's small cell."""

    pole: int
    gw: dict[str, Any]
    lamp: dict[str, Any]
    cell: dict[str, Any]


async def make_site(client: httpx.AsyncClient, city: City) -> Site:
    """Lighting's gateway and lamp on pole P, and telecom's cell there by lighting's grant."""
    pole = await make_pole(client, city, "FT-TN-0001")
    gw = await make_device(client, city, "lighting", "gateway", pole, name="gw-l", port=1)
    lamp = await make_device(client, city, "lighting", "lamp", pole, name="lamp-l", port=2)
    await grant_mount(client, city, pole, "lighting", "telecom")
    cell = await make_device(client, city, "telecom", "small_cell", pole, name="cell-t", port=3)
    return Site(pole, gw, lamp, cell)


async def latest_values(client: httpx.AsyncClient, city: City, device_id: int) -> dict[str, Any]:
    """The device's latest values, as the city operator reads them."""
    r = await client.get(f"/api/devices/{device_id}/latest", headers=city.auth("city"))
    assert r.status_code == 200, r.text
    return {k: v["value"] for k, v in r.json().items()}


async def bind(client: httpx.AsyncClient, city: City, device_id: int, gateway: str) -> int:
    """The telecom operator binds its device to a gateway; returns the binding's id."""
    body, auth = {"gateway": gateway}, city.auth("telecom")
    r = await client.post(f"/api/devices/{device_id}/bindings", json=body, headers=auth)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def refusal_logged(caplog: pytest.LogCaptureFixture, gateway: str, device: str) -> bool:
    """A warning names both the gateway and the device it may not speak for."""
    return any(
        r.levelno == logging.WARNING and gateway in r.getMessage() and device in r.getMessage()
        for r in caplog.records
    )


# -- a street of poles shared by tenants (the map and the live socket) -----------------------
HOT_LAMP = {
    "name": "hot-lamp",
    "scope": {"kinds": ["lamp"]},
    "condition": {"key": "temperature", "op": ">", "value": 100},
    "actions": [{"alarm": {"type": "lamp_hot", "severity": "major"}}],
}


@dataclass
class Street:
    """Two poles on Shennan Blvd (Futian) and a bare one on Keji Rd (Nanshan).

    P1 carries lighting's gateway and lamp and telecom's small cell (by lighting's grant);
    P2 a lighting lamp; P3 nothing (only the city operator sees it).
    """

    p1: int
    p2: int
    p3: int
    devices: dict[str, dict[str, Any]]


async def make_street(client: httpx.AsyncClient, city: City) -> Street:
    road = {"district": "Futian", "road": "Shennan Blvd"}
    p1 = await make_pole(client, city, "FT-SN-0001", lon=114.05, lat=22.54, **road)
    p2 = await make_pole(client, city, "FT-SN-0002", lon=114.0512346, lat=22.5400001, **road)
    p3 = await make_pole(
        client, city, "NS-KJ-0001", lon=113.95, lat=22.53, district="Nanshan", road="Keji Rd"
    )
    devices = {
        "gw": await make_device(client, city, "lighting", "gateway", p1, name="gw-1", port=1),
        "lamp": await make_device(client, city, "lighting", "lamp", p1, name="lamp-1", port=2),
        "lamp2": await make_device(client, city, "lighting", "lamp", p2, name="lamp-2", port=1),
    }
    await grant_mount(client, city, p1, "lighting", "telecom")
    devices["cell"] = await make_device(
        client, city, "telecom", "small_cell", p1, name="cell-1", port=3
    )
    return Street(p1, p2, p3, devices)


async def all_online(platform: Platform, client: httpx.AsyncClient, street: Street) -> None:
    """Every device reports once, and the map reads every device's presence again."""
    for device in street.devices.values():
        await send(client, device["token"], now_ms(), rssi=-60)
    await settle(platform)
    await platform.pole_states.refresh()
