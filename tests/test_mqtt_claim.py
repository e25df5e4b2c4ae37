"""Claiming: a device opens a window with a secret key; a tenant claims it and owns it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from tb_device_mqtt import TBDeviceMqttClient

from fixtures_api import City, make_device, make_pole
from helpers import claim, run, sent, shutdown, start
from mqtt_client import V5, Device
from smartpole.app import Platform
from smartpole.model.types import Role
from smartpole.registry.claims import Claims


@pytest.fixture
async def site(client: httpx.AsyncClient, city: City) -> dict[str, Any]:
    """Pole FT-CL-0001 with a city camera and a city gateway on it."""
    pole = await make_pole(client, city, "FT-CL-0001")
    return {
        "pole": pole,
        "camera": await make_device(client, city, "city", "camera", pole, name="cam-claim"),
        "gw": await make_device(client, city, "city", "gateway", pole, name="gw-claim"),
    }


@pytest.fixture
async def camera(platform: Platform, site: dict[str, Any]) -> AsyncIterator[Device]:
    dev = Device(platform.mqtt[0].mqtt_port, site["camera"]["token"], V5, client_id="cam")
    assert await dev.connect() == 0
    yield dev
    await dev.close()


async def test_a_tenant_claims_the_device_and_owns_it_on_its_pole(
    client: httpx.AsyncClient, city: City, camera: Device, site: dict[str, Any]
) -> None:
    claim_body = {"secretKey": "k-123", "durationMs": 60_000}
    assert await camera.publish("v1/devices/me/claim", claim_body) == 0
    r = await client.get(f"/api/devices/{site['camera']['id']}", headers=city.auth("telecom"))
    assert r.status_code == 404  # not telecom's yet
    r = await claim(client, city, "cam-claim", "k-123")
    assert r.status_code == 200, r.text
    assert r.json()["owner"] == "telecom"
    assert r.json()["pole_id"] == site["pole"]
    r = await client.get(f"/api/devices/{site['camera']['id']}", headers=city.auth("telecom"))
    assert r.json()["owner"] == "telecom"
    # the claim was used up
    again = await claim(client, city, "cam-claim", "k-123", tenant="lighting")
    assert again.status_code == 404


async def test_the_sdk_claim_call(
    client: httpx.AsyncClient, city: City, platform: Platform, site: dict[str, Any]
) -> None:
    sdk = TBDeviceMqttClient(
        "127.0.0.1", port=platform.mqtt[0].mqtt_port, username=site["camera"]["token"]
    )
    try:
        await start(sdk)
        assert await sent(lambda: sdk.claim(secret_key="sdk-secret", duration=30_000)) == 0
    finally:
        await run(shutdown, sdk)
    r = await claim(client, city, "cam-claim", "sdk-secret")
    assert r.status_code == 200, r.text


async def test_a_wrong_secret_and_an_unknown_name_look_the_same(
    client: httpx.AsyncClient, city: City, camera: Device
) -> None:
    assert await camera.publish("v1/devices/me/claim", {"secretKey": "right"}) == 0
    wrong = await claim(client, city, "cam-claim", "wrong")
    unknown = await claim(client, city, "no-such-device", "right")
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.headers["content-type"] == "application/problem+json"
    assert wrong.json() == unknown.json()
    # a device that opened no window is the same 404
    assert (await claim(client, city, "gw-claim", "")).json() == wrong.json()
    # and the wrong guess did not use the claim up
    assert (await claim(client, city, "cam-claim", "right")).status_code == 200


async def test_an_expired_claim_is_a_clear_conflict(
    client: httpx.AsyncClient, city: City, camera: Device
) -> None:
    assert await camera.publish("v1/devices/me/claim", {"secretKey": "s", "durationMs": 1}) == 0
    await asyncio.sleep(0.01)
    r = await claim(client, city, "cam-claim", "s")
    assert r.status_code == 409
    assert r.json()["title"] == "Claim expired"
    assert r.json()["type"].endswith("/claim-expired")
    assert (await claim(client, city, "cam-claim", "s")).status_code == 404


async def test_a_claim_survives_a_restart(
    client: httpx.AsyncClient, city: City, platform: Platform, camera: Device
) -> None:
    assert await camera.publish("v1/devices/me/claim", {"secretKey": "kept"}) == 0
    fresh = Claims(platform.db.engine, platform.assets)  # nothing in memory
    who = platform.tenants.authenticate(city.keys[("telecom", Role.OPERATOR)])
    device_id = await asyncio.to_thread(fresh.claim, who, "cam-claim", "kept")
    r = await client.get(f"/api/devices/{device_id}", headers=city.auth("telecom"))
    assert r.json()["owner"] == "telecom"


async def test_the_gateway_opens_the_claim_of_a_device_on_its_pole(
    client: httpx.AsyncClient, city: City, platform: Platform, site: dict[str, Any]
) -> None:
    gw = Device(platform.mqtt[0].mqtt_port, site["gw"]["token"], V5, client_id="gw")
    try:
        assert await gw.connect() == 0
        body = {"cam-claim": {"secretKey": "via-gw", "durationMs": 60_000}}
        assert await gw.publish("v1/gateway/claim", body) == 0
    finally:
        await gw.close()
    assert (await claim(client, city, "cam-claim", "via-gw")).status_code == 200


async def test_without_claiming_by_default_the_device_needs_claiming_allowed(
    client: httpx.AsyncClient, city: City, platform: Platform, camera: Device, site: dict[str, Any]
) -> None:
    platform.claims.allowed_by_default = False
    assert await camera.publish("v1/devices/me/claim", {"secretKey": "x"}) == 0x87
    r = await client.post(
        f"/api/devices/{site['camera']['id']}/attributes/server",
        json={"claimingAllowed": True},
        headers=city.auth("city"),
    )
    assert r.status_code == 200
    assert await camera.publish("v1/devices/me/claim", {"secretKey": "x"}) == 0
    assert (await claim(client, city, "cam-claim", "x")).status_code == 200
    # as ThingsBoard, the permission goes with the claim
    attrs = platform.assets.get_attributes(site["camera"]["id"])
    assert "claimingAllowed" not in attrs.get("server", {})


async def test_a_viewer_may_not_claim(
    client: httpx.AsyncClient, city: City, camera: Device
) -> None:
    assert await camera.publish("v1/devices/me/claim", {"secretKey": "v"}) == 0
    body = {"name": "cam-claim", "secret_key": "v"}
    r = await client.post(
        "/api/devices/claim", json=body, headers=city.auth("telecom", Role.VIEWER)
    )
    assert r.status_code == 403


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"[1]", id="not-an-object"),
        pytest.param({"secretKey": 5}, id="secret-not-a-string"),
        pytest.param({"secretKey": "s", "durationMs": "soon"}, id="duration-not-a-number"),
    ],
)
async def test_a_malformed_claim_is_refused(camera: Device, payload: Any) -> None:
    assert await camera.publish("v1/devices/me/claim", payload) == 0x99
