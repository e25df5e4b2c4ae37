"""A device that speaks HTTP only (ThingsBoard's HTTP device API) takes commands by long poll,
calls the platform, opens a claim window and downloads its firmware; over a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fixtures_api import City, make_device, make_pole, started
from helpers import EXE, FIRMWARE, assign, claim, cli, free_port
from smartpole.api import create_app
from smartpole.app import Platform
from smartpole.model.clock import now_ms
from smartpole.model.types import Role
from smartpole.store import Database
from smartpole.transport.polls import ATTRIBUTES, RPC

OPERATOR = ("lighting", Role.OPERATOR)


@pytest.fixture
async def lamp(client: httpx.AsyncClient, city: City) -> dict[str, Any]:
    pole = await make_pole(client, city, "FT-HT-0001")
    return await make_device(client, city, "lighting", "lamp", pole, name="lamp-http")


@pytest.fixture
async def device(server_port: int, lamp: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    """The lamp's HTTP client, over a socket to uvicorn, at ``/api/v1/{token}``."""
    base = f"http://127.0.0.1:{server_port}/api/v1/{lamp['token']}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        yield c


async def polling(platform: Platform, device_id: int, kind: str = RPC, count: int = 1) -> None:
    """Wait until the device has ``count`` polls of ``kind`` open."""
    for _ in range(500):
        if platform.polls.waiting(device_id, kind) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the poll never opened")


async def test_a_two_way_command_answers_a_poll_and_the_reply_completes_it(
    platform: Platform,
    client: httpx.AsyncClient,
    city: City,
    lamp: dict[str, Any],
    device: httpx.AsyncClient,
) -> None:
    poll = asyncio.ensure_future(device.get("/rpc", params={"timeout": 10_000}))
    await polling(platform, lamp["id"])
    r = await client.get(f"/api/devices/{lamp['id']}", headers=city.auth("lighting"))
    assert r.json()["online"] is True  # reachable while its poll is open
    body = {"method": "setDim", "params": {"level": 35}, "timeout": 5000}
    call = asyncio.ensure_future(
        client.post(f"/api/devices/{lamp['id']}/rpc", json=body, headers=city.auth(*OPERATOR))
    )
    got = await poll
    assert got.status_code == 200, got.text
    command = got.json()
    assert (command["method"], command["params"]) == ("setDim", {"level": 35})
    r = await device.post(f"/rpc/{command['id']}", json={"dim": 35})
    assert (r.status_code, r.json()) == (200, {"ok": True})
    done = await call
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["response"]) == ("succeeded", {"dim": 35})
    assert done.json()["delivered"] is not None


async def test_a_poll_with_no_command_ends_in_408_and_the_device_is_unreachable_after(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any], device: httpx.AsyncClient
) -> None:
    r = await device.get("/rpc", params={"timeout": 100})
    assert r.status_code == 408
    assert r.headers["content-type"] == "application/problem+json"
    assert "lamp-http" in r.json()["detail"]
    body = {"method": "setDim", "params": {"level": 1}}
    r = await client.post(f"/api/devices/{lamp['id']}/rpc", json=body, headers=city.auth(*OPERATOR))
    assert r.status_code == 409, r.text


async def test_persistent_commands_wait_and_come_one_a_poll_in_order(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any], device: httpx.AsyncClient
) -> None:
    for method in ("first", "second"):
        body = {"method": method, "oneway": True, "persistent": True}
        r = await client.post(
            f"/api/devices/{lamp['id']}/rpc", json=body, headers=city.auth(*OPERATOR)
        )
        assert (r.status_code, r.json()["status"]) == (202, "queued"), r.text
    first = await device.get("/rpc", params={"timeout": 2000})
    second = await device.get("/rpc", params={"timeout": 2000})
    assert [first.json()["method"], second.json()["method"]] == ["first", "second"]
    r = await client.get(f"/api/devices/{lamp['id']}/commands", headers=city.auth("lighting"))
    assert [c["status"] for c in r.json()] == ["succeeded", "succeeded"]  # one-way: delivered
    r = await device.get("/rpc", params={"timeout": 50})
    assert r.status_code == 408


async def test_a_shared_attribute_change_answers_every_attribute_poll(
    platform: Platform,
    client: httpx.AsyncClient,
    city: City,
    lamp: dict[str, Any],
    device: httpx.AsyncClient,
) -> None:
    polls = [
        asyncio.ensure_future(device.get("/attributes/updates", params={"timeout": 10_000}))
        for _ in range(2)
    ]
    await polling(platform, lamp["id"], ATTRIBUTES, count=2)
    r = await client.post(
        f"/api/devices/{lamp['id']}/attributes/shared",
        json={"dim_schedule": "night"},
        headers=city.auth(*OPERATOR),
    )
    assert r.status_code == 200, r.text
    for poll in polls:
        got = await poll
        assert (got.status_code, got.json()) == (200, {"dim_schedule": "night"})
    r = await device.get("/attributes/updates", params={"timeout": 50})
    assert r.status_code == 408  # nothing new


@pytest.mark.parametrize("request_id", [999, 2**31, 10**30])
async def test_a_reply_to_no_command_is_accepted_and_changes_nothing(
    device: httpx.AsyncClient, request_id: int
) -> None:
    r = await device.post(f"/rpc/{request_id}", json={"late": True})
    assert (r.status_code, r.json()) == (200, {"ok": True})


async def test_the_device_asks_the_platform_the_time_and_its_limits(
    device: httpx.AsyncClient, platform: Platform
) -> None:
    before = now_ms()
    r = await device.post("/rpc", json={"method": "getCurrentTime", "params": {}})
    assert r.status_code == 200, r.text
    assert before <= r.json()["currentTime"] <= now_ms()
    r = await device.post("/rpc", json={"method": "getSessionLimits", "params": {}})
    assert r.json()["maxPayloadSize"] == platform.devices.limits.max_payload  # as over MQTT
    r = await device.post("/rpc", json={"method": "reboot"})
    assert r.status_code == 422
    assert r.json()["methods"] == ["getCurrentTime", "getSessionLimits"]
    r = await device.post("/rpc", content=b"{")
    assert r.status_code == 400


async def test_a_tenant_claims_a_device_that_opened_its_window_over_http(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any], device: httpx.AsyncClient
) -> None:
    r = await device.post("/claim", json={"secretKey": "h-42", "durationMs": 60_000})
    assert (r.status_code, r.json()) == (200, {"ok": True})
    r = await claim(client, city, "lamp-http", "wrong")
    assert r.status_code == 404
    r = await claim(client, city, "lamp-http", "h-42")
    assert r.status_code == 200, r.text
    assert r.json()["owner"] == "telecom"


async def test_the_assigned_firmware_downloads_in_chunks_and_checks_out(
    client: httpx.AsyncClient,
    city: City,
    lamp: dict[str, Any],
    package: dict[str, Any],
    device: httpx.AsyncClient,
) -> None:
    name = {"title": "lamp-fw", "version": "2.0.0"}
    r = await device.get("/firmware", params=name)
    assert r.status_code == 404  # nothing assigned yet
    assert (await assign(client, city, lamp["id"], package["id"])).status_code == 200
    data = b""
    for index in range(100):
        r = await device.get("/firmware", params={**name, "size": 16_384, "chunk": index})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/octet-stream"
        if not r.content:
            break
        data += r.content
    assert hashlib.sha256(data).hexdigest() == package["checksum"]
    assert data == FIRMWARE
    whole = await device.get("/firmware", params=name)
    assert whole.content == FIRMWARE
    r = await device.get("/firmware", params={**name, "version": "1.0.0"})
    assert r.status_code == 404


async def test_an_unknown_token_gets_401_on_every_device_route(server_port: int) -> None:
    base = f"http://127.0.0.1:{server_port}/api/v1/not-a-token"
    async with httpx.AsyncClient(base_url=base) as c:
        for r in (
            await c.get("/rpc", params={"timeout": 10}),
            await c.post("/rpc/1", json={}),
            await c.post("/rpc", json={"method": "getCurrentTime"}),
            await c.post("/claim", json={"secretKey": "s"}),
            await c.get("/firmware", params={"title": "t", "version": "v"}),
        ):
            assert r.status_code == 401, r.text
            assert r.headers["content-type"] == "application/problem+json"


async def test_a_device_that_drops_its_poll_is_soon_unreachable_and_misses_nothing(
    platform: Platform,
    client: httpx.AsyncClient,
    city: City,
    lamp: dict[str, Any],
    server_port: int,
) -> None:
    base = f"http://127.0.0.1:{server_port}/api/v1/{lamp['token']}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as gone:
        poll = asyncio.ensure_future(gone.get("/rpc", params={"timeout": 30_000}))
        await polling(platform, lamp["id"])
        poll.cancel()  # the device's connection closes with its request
        with contextlib.suppress(asyncio.CancelledError):
            await poll
    for _ in range(300):  # the poll looks every second whether its device is still there
        if not platform.polls.is_connected(lamp["id"]):
            break
        await asyncio.sleep(0.01)
    assert not platform.polls.is_connected(lamp["id"])
    body = {"method": "relay", "oneway": True, "persistent": True}
    r = await client.post(f"/api/devices/{lamp['id']}/rpc", json=body, headers=city.auth(*OPERATOR))
    assert r.json()["status"] == "queued"
    async with httpx.AsyncClient(base_url=base, timeout=30) as back:
        r = await back.get("/rpc", params={"timeout": 2000})
    assert r.json()["method"] == "relay"


def test_stopping_the_server_ends_open_polls_with_503(tmp_path: Path) -> None:
    """``smartpole serve`` stopped (SIGTERM) while a device polls: the poll answers "poll again"
    at once rather than holding the shutdown for up to a minute."""
    data = ["--data-dir", str(tmp_path)]
    lamp = orjson.loads(cli("device", "add", "--kind", "lamp", "--json", *data))
    port = free_port()
    proc = subprocess.Popen(
        [str(EXE), "serve", "--http-port", str(port), "--mqtt-port", "-1", *data],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(150):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            time.sleep(0.1)
        answers: list[httpx.Response] = []
        poll = threading.Thread(
            target=lambda: answers.append(
                httpx.get(f"{base}/api/v1/{lamp['token']}/rpc?timeout=60000", timeout=90)
            )
        )
        poll.start()
        time.sleep(0.5)  # the poll is open
        assert answers == []
        proc.terminate()
        poll.join(30)
        # a graceful stop: uvicorn re-raises the signal it handled once it has shut down
        assert proc.wait(30) == -signal.SIGTERM
        assert [r.status_code for r in answers] == [503]
        assert answers[0].json()["detail"] == "this node is shutting down; poll again"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def _served_once(database: Database, tmp_path: Path) -> weakref.ref[Platform]:
    """Start a platform, answer two device requests through an app over it, stop it."""
    async with started(database, tmp_path) as p:
        transport = httpx.ASGITransport(app=create_app(p.api_services()))
        async with httpx.AsyncClient(transport=transport, base_url="http://sp.test") as c:
            r = await c.post("/api/v1/no-such-token/telemetry", json={"power": 1})
            assert r.status_code == 401
            r = await c.get("/api/v1/no-such-token/attributes")
            assert r.status_code == 401
        return weakref.ref(p)


async def test_a_stopped_platform_and_its_app_are_freed(database: Database, tmp_path: Path) -> None:
    """A process that builds apps over and over (an embedding host, a test run) gets its memory
    back: no cache of FastAPI's keeps an app's device routes, and through them its platform."""
    gone = await _served_once(database, tmp_path)
    gc.collect()
    assert gone() is None, "the platform outlived its app"
