"""EMQX's HTTP authentication and authorization hooks, through the ASGI client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures_api import City, make_device, started
from smartpole.app import Platform
from smartpole.model.types import Role
from smartpole.store import Database

SECRET = {"X-Smartpole-Broker-Secret": "hook-secret"}


@pytest.fixture
async def platform(database: Database, tmp_path: Path) -> AsyncIterator[Platform]:
    """A platform whose broker hooks are on (no broker of its own: EMQX asks it)."""
    async with started(
        database,
        tmp_path,
        mqtt_port=-1,
        broker_password="svc-pw",
        broker_hook_secret=SECRET["X-Smartpole-Broker-Secret"],
    ) as p:
        yield p


@pytest.fixture
async def lamp(client: httpx.AsyncClient, city: City) -> dict[str, Any]:
    return await make_device(client, city, "lighting", "lamp", name="lamp-1")


async def verdict(client: httpx.AsyncClient, hook: str, **body: str) -> str:
    r = await client.post(f"/api/broker/{hook}", json=body, headers=SECRET)
    assert r.status_code == 200, r.text
    return str(r.json()["result"])


async def test_a_device_logs_in_with_its_name_and_token(
    client: httpx.AsyncClient, lamp: dict[str, Any]
) -> None:
    body = {"username": "lamp-1", "password": lamp["token"], "clientid": "c1"}
    r = await client.post("/api/broker/authenticate", json=body, headers=SECRET)
    assert r.json() == {"result": "allow", "is_superuser": False}


@pytest.mark.parametrize(
    ("username", "password"),
    [
        pytest.param("lamp-1", "wrong", id="wrong-token"),
        pytest.param("lamp-2", "{token}", id="token-of-another-name"),
        pytest.param("lamp-1", "", id="no-password"),
        pytest.param("smartpole", "{token}", id="service-user-with-a-device-token"),
        pytest.param("smartpole", "wrong", id="service-user-wrong-password"),
    ],
)
async def test_wrong_credentials_are_denied(
    client: httpx.AsyncClient, lamp: dict[str, Any], username: str, password: str
) -> None:
    password = password.format(token=lamp["token"])
    assert await verdict(client, "authenticate", username=username, password=password) == "deny"


async def test_smartpoles_own_user_logs_in(client: httpx.AsyncClient) -> None:
    assert await verdict(client, "authenticate", username="smartpole", password="svc-pw") == "allow"


@pytest.mark.parametrize(
    ("username", "action", "topic", "result"),
    [
        pytest.param("lamp-1", "publish", "sp/v1/lamp-1/telemetry", "allow", id="own-telemetry"),
        pytest.param("lamp-1", "publish", "sp/v1/lamp-2/telemetry", "deny", id="as-another"),
        pytest.param("lamp-1", "publish", "sp/v1/lamp-1/rpc/response/7", "allow", id="reply"),
        pytest.param("lamp-1", "publish", "sp/v1/lamp-1/rpc/request/7", "deny", id="fake-cmd"),
        pytest.param("lamp-1", "publish", "sp/v1/lamp-1/status", "allow", id="status"),
        pytest.param("lamp-1", "publish", "v1/devices/me/telemetry", "allow", id="tb-uplink"),
        pytest.param("lamp-1", "publish", "v1/devices/me/rpc/request/1", "allow", id="tb-call"),
        pytest.param("lamp-1", "publish", "sp/v1/lamp-1/rpc/call/4", "allow", id="client-rpc"),
        pytest.param("lamp-1", "publish", "sp/v1/lamp-1/rpc/result/4", "deny", id="fake-result"),
        pytest.param("lamp-1", "subscribe", "sp/v1/lamp-1/rpc/result/+", "allow", id="results"),
        pytest.param("lamp-1", "subscribe", "v1/devices/me/rpc/request/+", "deny", id="tb-sub"),
        pytest.param("lamp-1", "publish", "sp/v1/lamp-1/fw/request/1/chunk/0", "allow", id="fw"),
        pytest.param("lamp-1", "publish", "v2/fw/request/1/chunk/0", "allow", id="tb-fw"),
        pytest.param(
            "lamp-1", "subscribe", "sp/v1/lamp-1/fw/response/+/chunk/+", "allow", id="fw-chunks"
        ),
        pytest.param("lamp-1", "publish", "sp/v1/lamp-1/claim", "allow", id="claim"),
        pytest.param("lamp-1", "subscribe", "sp/v1/lamp-1/rpc/request/+", "allow", id="own-cmds"),
        pytest.param("lamp-1", "subscribe", "sp/v1/lamp-1/attributes/shared", "allow", id="attrs"),
        pytest.param("lamp-1", "subscribe", "sp/v1/lamp-2/rpc/request/+", "deny", id="others"),
        pytest.param("lamp-1", "subscribe", "sp/v1/+/rpc/request/+", "deny", id="wildcard"),
        pytest.param("lamp-1", "subscribe", "sp/v1/lamp-1/#", "deny", id="own-uplink-too"),
        pytest.param("lamp-1", "subscribe", "#", "deny", id="everything"),
        pytest.param("lamp+", "publish", "sp/v1/lamp+/telemetry", "deny", id="bad-user-name"),
        pytest.param(
            "smartpole",
            "subscribe",
            "$share/smartpole/sp/v1/+/telemetry",
            "allow",
            id="service-shared",
        ),
        pytest.param("smartpole", "subscribe", "sp/v1/+/status", "allow", id="service-status"),
        pytest.param(
            "smartpole", "publish", "sp/v1/lamp-1/rpc/request/3", "allow", id="service-cmd"
        ),
        pytest.param(
            "smartpole", "publish", "sp/v1/lamp-1/telemetry", "deny", id="service-no-uplink"
        ),
        pytest.param("lamp-1", "retain", "sp/v1/lamp-1/telemetry", "deny", id="unknown-action"),
    ],
)
async def test_authorization_keeps_each_user_to_its_topics(
    client: httpx.AsyncClient, username: str, action: str, topic: str, result: str
) -> None:
    assert await verdict(client, "authorize", username=username, action=action, topic=topic) == (
        result
    )


@pytest.mark.parametrize(
    "headers",
    [pytest.param({}, id="missing"), pytest.param({"X-Smartpole-Broker-Secret": "x"}, id="wrong")],
)
async def test_the_hooks_need_the_shared_secret(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    body = {"username": "smartpole", "password": "svc-pw"}
    r = await client.post("/api/broker/authenticate", json=body, headers=headers)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"


async def test_the_hooks_are_off_without_a_secret(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    platform.settings.broker_hook_secret = None
    r = await client.post("/api/broker/authorize", json={"topic": "t", "action": "publish"})
    assert r.status_code == 404


async def test_a_node_without_a_broker_says_so(client: httpx.AsyncClient, city: City) -> None:
    r = await client.get("/api/broker/status", headers=city.auth("city", Role.VIEWER))
    assert r.json() == {"enabled": False}
    r = await client.get("/api/broker/status", headers=city.auth("lighting"))
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("username", "action", "topic", "result"),
    [
        pytest.param("gw-1", "publish", "sp/v1/gw-1/gateway/telemetry", "allow", id="gw-report"),
        pytest.param("gw-1", "publish", "sp/v1/gw-1/gateway/rpc", "allow", id="gw-reply"),
        pytest.param("gw-1", "publish", "sp/v1/gw-1/telemetry", "allow", id="gw-own-device-api"),
        pytest.param("gw-1", "publish", "sp/v1/gw-2/gateway/telemetry", "deny", id="as-another"),
        pytest.param("gw-1", "publish", "v1/gateway/connect", "allow", id="tb-gateway-uplink"),
        pytest.param("gw-1", "publish", "sp/v1/gw-1/gateway/rpc/request", "deny", id="gw-fake-cmd"),
        pytest.param("gw-1", "subscribe", "sp/v1/gw-1/gateway/rpc/request", "allow", id="gw-cmds"),
        pytest.param(
            "gw-1", "subscribe", "sp/v1/gw-1/gateway/attributes/response", "allow", id="gw-answers"
        ),
        pytest.param("lamp-1", "publish", "sp/v1/lamp-1/gateway/telemetry", "deny", id="not-gw"),
        pytest.param("lamp-1", "publish", "v1/gateway/telemetry", "deny", id="not-gw-tb"),
        pytest.param(
            "lamp-1", "subscribe", "sp/v1/lamp-1/gateway/rpc/request", "deny", id="not-gw-cmds"
        ),
        pytest.param(
            "smartpole", "publish", "sp/v1/gw-1/gateway/rpc/request", "allow", id="service-cmd"
        ),
        pytest.param(
            "smartpole", "publish", "sp/v1/gw-1/gateway/telemetry", "deny", id="service-no-up"
        ),
        pytest.param("smartpole", "publish", "sp/v1/lamp-1/status", "allow", id="sub-status"),
    ],
)
async def test_only_a_gateway_has_the_gateway_api_topics(
    client: httpx.AsyncClient,
    city: City,
    lamp: dict[str, Any],
    username: str,
    action: str,
    topic: str,
    result: str,
) -> None:
    await make_device(client, city, "lighting", "gateway", name="gw-1")
    assert await verdict(client, "authorize", username=username, action=action, topic=topic) == (
        result
    )
