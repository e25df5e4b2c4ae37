"""MQTT Basic credentials (client id, user name, password) instead of an access token."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from fixtures_api import City, make_device
from mqtt_client import V5, V311, Device
from smartpole.app import Platform
from smartpole.model.types import Role
from smartpole.registry.access import token_hint
from smartpole.registry.credentials import device_credentials
from smartpole.transport.mqtt import codec


async def connects(
    platform: Platform,
    username: str | None,
    password: str | None = None,
    client_id: str = "",
    version: int = V5,
) -> int:
    """The CONNACK reason code of a connection with these credentials."""
    dev = Device(platform.mqtt[0].mqtt_port, None, version, client_id=client_id)
    if username is not None:
        dev.client.username_pw_set(username, password)
    try:
        return await dev.connect()
    finally:
        await dev.close()


async def connack(
    platform: Platform,
    version: int,
    client_id: str,
    username: str | None = None,
    password: str | None = None,
) -> int:
    """The CONNACK code as sent on the wire (paho shows 3.1.1 codes as MQTT 5 ones)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", platform.mqtt[0].mqtt_port)
    pw = password.encode() if password is not None else None
    writer.write(codec.encode(codec.Connect(version, client_id, True, 30, username, pw), version))
    head = await reader.readexactly(2)
    ack = codec.decode(head[0] >> 4, head[0] & 15, await reader.readexactly(head[1]), version)
    assert isinstance(ack, codec.ConnAck)
    writer.close()
    await writer.wait_closed()
    return ack.reason_code


@pytest.fixture
async def lamp(client: httpx.AsyncClient, city: City) -> dict[str, Any]:
    return await make_device(client, city, "lighting", "lamp", name="lamp-basic")


async def put(
    client: httpx.AsyncClient, city: City, device_id: int, body: dict[str, Any], **auth: Any
) -> httpx.Response:
    headers = city.auth(auth.get("tenant", "lighting"), auth.get("role", Role.OPERATOR))
    return await client.put(f"/api/devices/{device_id}/credentials", json=body, headers=headers)


async def test_client_id_only(
    client: httpx.AsyncClient, city: City, platform: Platform, lamp: dict[str, Any]
) -> None:
    r = await put(client, city, lamp["id"], {"type": "mqtt_basic", "client_id": "LAMP-0001"})
    assert r.status_code == 200, r.text
    assert await connects(platform, None, client_id="LAMP-0001") == 0
    assert await connects(platform, None, client_id="LAMP-0002") == 0x87
    assert await connack(platform, 4, "LAMP-0001") == 0
    assert await connack(platform, 4, "LAMP-0002") == 0x05


@pytest.mark.parametrize(
    ("version", "code"),
    [pytest.param(V5, 0x86, id="mqtt5"), pytest.param(V311, 0x04, id="mqtt311")],
)
async def test_user_name_and_password(
    client: httpx.AsyncClient,
    city: City,
    platform: Platform,
    lamp: dict[str, Any],
    version: int,
    code: int,
) -> None:
    body = {"type": "mqtt_basic", "username": "lamp-user", "password": "pw-0001"}
    assert (await put(client, city, lamp["id"], body)).status_code == 200
    assert await connects(platform, "lamp-user", "pw-0001", "any-id", version) == 0
    assert await connack(platform, version, "any-id", "lamp-user", "pw-0001") == 0
    assert await connack(platform, version, "any-id", "lamp-user", "wrong") == code
    assert await connack(platform, version, "any-id", "lamp-user") == code
    assert await connack(platform, version, "any-id", "nobody", "pw-0001") == code


async def test_client_id_user_name_and_password_must_all_match(
    client: httpx.AsyncClient, city: City, platform: Platform, lamp: dict[str, Any]
) -> None:
    body = {"type": "mqtt_basic", "client_id": "cid-1", "username": "u-1", "password": "p-1"}
    assert (await put(client, city, lamp["id"], body)).status_code == 200
    assert await connects(platform, "u-1", "p-1", "cid-1") == 0
    assert await connects(platform, "u-1", "p-1", "cid-2") == 0x86
    assert await connects(platform, "u-1", "p-2", "cid-1") == 0x86


async def test_the_device_is_the_same_whichever_credentials(
    client: httpx.AsyncClient, city: City, platform: Platform, lamp: dict[str, Any]
) -> None:
    body = {"type": "mqtt_basic", "username": "u-2", "password": "p-2"}
    assert (await put(client, city, lamp["id"], body)).status_code == 200
    dev = Device(platform.mqtt[0].mqtt_port, None, client_id="lamp")
    dev.client.username_pw_set("u-2", "p-2")
    try:
        assert await dev.connect() == 0
        assert await dev.publish("v1/devices/me/telemetry", {"power": 7.5}) == 0
    finally:
        await dev.close()
    r = await client.get(f"/api/devices/{lamp['id']}/latest", headers=city.auth("lighting"))
    assert r.json()["power"]["value"] == 7.5


async def test_mqtt_basic_replaces_the_token_and_back(
    client: httpx.AsyncClient, city: City, platform: Platform, lamp: dict[str, Any]
) -> None:
    body = {"type": "mqtt_basic", "client_id": "c", "username": "u", "password": "p"}
    assert (await put(client, city, lamp["id"], body)).status_code == 200
    assert await connects(platform, lamp["token"]) == 0x86
    r = await client.get(f"/api/devices/{lamp['id']}/credentials", headers=city.auth("lighting"))
    assert r.json() == {
        "device_id": lamp["id"],
        "type": "mqtt_basic",
        "client_id": "c",
        "username": "u",
        "password": True,
    }
    with platform.db.engine.connect() as conn:
        stored = conn.execute(select(device_credentials.c.password_hash)).scalar_one()
    assert stored.startswith("scrypt$")
    r = await put(client, city, lamp["id"], {"type": "access_token"})
    assert r.status_code == 200
    token = r.json()["token"]
    assert await connects(platform, token) == 0
    assert await connects(platform, "u", "p", "c") == 0x86
    r = await client.get(f"/api/devices/{lamp['id']}/credentials", headers=city.auth("lighting"))
    assert r.json() == {
        "device_id": lamp["id"],
        "type": "access_token",
        "token_hint": token_hint(token),
    }


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"type": "mqtt_basic"}, id="nothing"),
        pytest.param({"type": "mqtt_basic", "password": "p"}, id="password-alone"),
        pytest.param({"type": "mqtt_basic", "client_id": "c", "password": "p"}, id="no-user"),
        pytest.param({"type": "access_token", "username": "u"}, id="token-with-user"),
        pytest.param({"type": "mqtt_basic", "username": "u", "token": "t" * 10}, id="basic-token"),
        pytest.param({"type": "x509"}, id="x509"),
    ],
)
async def test_invalid_credentials_are_refused(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any], body: dict[str, Any]
) -> None:
    r = await put(client, city, lamp["id"], body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"


async def test_two_devices_cannot_share_credentials(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    other = await make_device(client, city, "lighting", "lamp", name="lamp-other")
    body = {"type": "mqtt_basic", "client_id": "same"}
    assert (await put(client, city, lamp["id"], body)).status_code == 200
    assert (await put(client, city, other["id"], body)).status_code == 409
    # nor may a user name be another device's access token
    body = {"type": "mqtt_basic", "username": other["token"]}
    assert (await put(client, city, lamp["id"], body)).status_code == 409


@pytest.mark.parametrize(
    ("tenant", "role", "status"),
    [
        pytest.param("telecom", Role.ADMIN, 404, id="other-tenant"),
        pytest.param("lighting", Role.VIEWER, 403, id="viewer"),
    ],
)
async def test_only_the_owner_operator_sets_credentials(
    client: httpx.AsyncClient,
    city: City,
    lamp: dict[str, Any],
    tenant: str,
    role: Role,
    status: int,
) -> None:
    body = {"type": "mqtt_basic", "client_id": "mine"}
    r = await put(client, city, lamp["id"], body, tenant=tenant, role=role)
    assert r.status_code == status


async def test_an_access_token_login_never_looks_at_mqtt_basic_credentials(
    platform: Platform, lamp: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_: Any) -> Any:
        raise AssertionError("MQTT Basic lookup on the token path")

    monkeypatch.setattr(platform.credentials, "authenticate", fail)
    assert await connects(platform, lamp["token"]) == 0
