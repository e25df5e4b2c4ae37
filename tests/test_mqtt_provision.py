"""Device provisioning: profiles over REST, the request over MQTT (the real SDK, paho) and HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest
import tb_device_mqtt
from sqlalchemy import select
from tb_device_mqtt import ProvisionClient, TBDeviceMqttClient

from fixtures_api import City, make_device, make_pole
from mqtt_client import V5, V311, Device
from smartpole.app import Platform
from smartpole.model.types import Role
from smartpole.registry.access import token_hint
from smartpole.registry.provisioning import provision_profiles

NOT_FOUND = {"status": "NOT_FOUND", "errorMsg": "Provision data was not found!"}
FAILURE = {"status": "FAILURE", "errorMsg": "Failed to provision device!"}


class RecordedProvisionClient(ProvisionClient):
    """The SDK's own provisioning client, recorded so that the test can close its sockets."""

    made: ClassVar[list[ProvisionClient]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        RecordedProvisionClient.made.append(self)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``TBDeviceMqttClient.provision`` unchanged, its client's sockets closed afterwards."""
    monkeypatch.setattr(tb_device_mqtt, "ProvisionClient", RecordedProvisionClient)
    yield
    for c in RecordedProvisionClient.made:
        for sock in (c._sockpairR, c._sockpairW):
            if sock is not None:
                sock.close()
    RecordedProvisionClient.made.clear()


async def sdk_provision(platform: Platform, key: str, secret: str, **kw: Any) -> Any:
    """``TBDeviceMqttClient.provision`` (blocking, a second at least) in a worker thread."""
    port = platform.mqtt[0].mqtt_port
    return await asyncio.to_thread(
        TBDeviceMqttClient.provision, "127.0.0.1", key, secret, port=port, **kw
    )


async def make_profile(
    client: httpx.AsyncClient, city: City, tenant: str = "lighting", **extra: Any
) -> dict[str, Any]:
    body = {"name": "lamps", "kind": "lamp", **extra}
    r = await client.post("/api/provision-profiles", json=body, headers=city.auth(tenant))
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.fixture
async def profile(client: httpx.AsyncClient, city: City) -> dict[str, Any]:
    """A lighting profile that creates lamps on pole FT-PV-0001."""
    await make_pole(client, city, "FT-PV-0001")
    return await make_profile(client, city, pole="FT-PV-0001")


async def devices(client: httpx.AsyncClient, city: City, tenant: str) -> dict[str, Any]:
    r = await client.get("/api/devices", headers=city.auth(tenant))
    return {d["name"]: d for d in r.json()["items"]}


async def connects(
    platform: Platform, username: str | None, password: str | None = None, client_id: str = ""
) -> int:
    """The CONNACK reason code of a connection with these credentials."""
    dev = Device(platform.mqtt[0].mqtt_port, None, client_id=client_id)
    if username is not None:
        dev.client.username_pw_set(username, password)
    try:
        return await dev.connect()
    finally:
        await dev.close()


async def provision_by_paho(platform: Platform, request: Any, version: int = V5) -> Any:
    """The provisioning handshake by hand: user name ``provision``, request, response."""
    dev = Device(platform.mqtt[0].mqtt_port, "provision", version)
    try:
        assert await dev.connect() == 0
        await dev.subscribe("/provision/response")
        await dev.publish("/provision/request", request)
        topic, answer = await dev.receive()
        assert topic == "/provision/response"
        return answer
    finally:
        await dev.close()


# -- profiles -----------------------------------------------------------------------------
async def test_profile_secret_is_shown_once_and_stored_hashed(
    client: httpx.AsyncClient, city: City, platform: Platform, profile: dict[str, Any]
) -> None:
    assert len(profile["secret"]) >= 16
    assert profile["pole"] == "FT-PV-0001"
    r = await client.get(f"/api/provision-profiles/{profile['id']}", headers=city.auth("lighting"))
    assert r.status_code == 200
    assert "secret" not in r.json()
    assert r.json()["secret_hint"] == token_hint(profile["secret"])
    with platform.db.engine.connect() as conn:
        stored = conn.execute(select(provision_profiles.c.secret_hash)).scalar_one()
    assert profile["secret"] not in stored


@pytest.mark.parametrize("role", [pytest.param(Role.OPERATOR, id="operator"), Role.VIEWER])
async def test_profiles_need_the_admin_role(
    client: httpx.AsyncClient, city: City, role: Role
) -> None:
    body = {"name": "lamps", "kind": "lamp"}
    r = await client.post("/api/provision-profiles", json=body, headers=city.auth("lighting", role))
    assert r.status_code == 403
    r = await client.get("/api/provision-profiles", headers=city.auth("lighting", role))
    assert r.status_code == 403


async def test_a_tenant_sees_only_its_own_profiles(
    client: httpx.AsyncClient, city: City, profile: dict[str, Any]
) -> None:
    r = await client.get(f"/api/provision-profiles/{profile['id']}", headers=city.auth("telecom"))
    assert r.status_code == 404
    r = await client.get("/api/provision-profiles", headers=city.auth("telecom"))
    assert r.json() == []
    r = await client.get("/api/provision-profiles", headers=city.auth("city"))
    assert [p["owner"] for p in r.json()] == ["lighting"]


# -- the SDK ------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Callback API version 1:DeprecationWarning")
@pytest.mark.usefixtures("recorded")
async def test_sdk_provisions_a_new_device_whose_token_works(
    client: httpx.AsyncClient, city: City, platform: Platform, profile: dict[str, Any]
) -> None:
    answer = await sdk_provision(
        platform, profile["key"], profile["secret"], device_name="FT-PV-0001-lamp"
    )
    assert answer["status"] == "SUCCESS"
    assert answer["credentialsType"] == "ACCESS_TOKEN"
    created = (await devices(client, city, "lighting"))["FT-PV-0001-lamp"]
    assert created["kind"] == "lamp"
    assert created["pole"] == "FT-PV-0001"
    assert await connects(platform, answer["credentialsValue"]) == 0


@pytest.mark.filterwarnings("ignore:Callback API version 1:DeprecationWarning")
@pytest.mark.usefixtures("recorded")
async def test_sdk_provisions_mqtt_basic_credentials(
    client: httpx.AsyncClient, city: City, platform: Platform, profile: dict[str, Any]
) -> None:
    answer = await sdk_provision(
        platform,
        profile["key"],
        profile["secret"],
        device_name="lamp-basic",
        client_id="lamp-basic-cid",
        username="lamp-basic-user",
        password="s3cret-pw",
    )
    assert answer == {
        "status": "SUCCESS",
        "credentialsType": "MQTT_BASIC",
        "credentialsValue": {
            "clientId": "lamp-basic-cid",
            "userName": "lamp-basic-user",
            "password": "s3cret-pw",
        },
    }
    kw = {"client_id": "lamp-basic-cid", "password": "s3cret-pw"}
    assert await connects(platform, "lamp-basic-user", **kw) == 0
    assert await connects(platform, "lamp-basic-user", client_id="x", password="s3cret-pw") == 0x86


@pytest.mark.filterwarnings("ignore:Callback API version 1:DeprecationWarning")
@pytest.mark.usefixtures("recorded")
async def test_sdk_with_a_wrong_secret_gets_no_credentials(
    platform: Platform, profile: dict[str, Any]
) -> None:
    assert await sdk_provision(platform, profile["key"], "wrong", device_name="x") is None


# -- paho: every outcome ------------------------------------------------------------------
@pytest.mark.parametrize(
    "version", [pytest.param(V5, id="mqtt5"), pytest.param(V311, id="mqtt311")]
)
async def test_provisioning_over_paho(
    platform: Platform, profile: dict[str, Any], version: int
) -> None:
    request = {
        "deviceName": f"lamp-paho-{version}",
        "provisionDeviceKey": profile["key"],
        "provisionDeviceSecret": profile["secret"],
        "credentialsType": "ACCESS_TOKEN",
        "token": f"my-own-token-{version}",
    }
    answer = await provision_by_paho(platform, request, version)
    assert answer == {
        "status": "SUCCESS",
        "credentialsType": "ACCESS_TOKEN",
        "credentialsValue": f"my-own-token-{version}",
    }
    assert await connects(platform, f"my-own-token-{version}") == 0


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"provisionDeviceSecret": "wrong-secret"}, id="wrong-secret"),
        pytest.param({"provisionDeviceKey": "no-such-key"}, id="unknown-key"),
        pytest.param({"provisionDeviceSecret": None}, id="no-secret"),
    ],
)
async def test_a_wrong_key_or_secret_is_not_found(
    client: httpx.AsyncClient,
    city: City,
    platform: Platform,
    profile: dict[str, Any],
    change: dict[str, Any],
) -> None:
    request = {
        "deviceName": "lamp-x",
        "provisionDeviceKey": profile["key"],
        "provisionDeviceSecret": profile["secret"],
        **change,
    }
    assert await provision_by_paho(platform, request) == NOT_FOUND
    assert "lamp-x" not in await devices(client, city, "lighting")


async def test_a_name_taken_fails_alike_whoever_has_it(
    client: httpx.AsyncClient, city: City, platform: Platform, profile: dict[str, Any]
) -> None:
    await make_device(client, city, "telecom", "small_cell", name="theirs")
    await make_device(client, city, "lighting", "lamp", name="ours")
    base = {"provisionDeviceKey": profile["key"], "provisionDeviceSecret": profile["secret"]}
    theirs = await provision_by_paho(platform, {**base, "deviceName": "theirs"})
    ours = await provision_by_paho(platform, {**base, "deviceName": "ours"})
    assert theirs == ours == FAILURE  # nothing tells that another tenant has "theirs"
    assert (await devices(client, city, "telecom"))["theirs"]["owner"] == "telecom"


async def test_a_pre_registered_device_fetches_new_credentials_once(
    client: httpx.AsyncClient, city: City, platform: Platform
) -> None:
    profile = await make_profile(client, city, create_new=False, pre_registered=True)
    lamp = await make_device(client, city, "lighting", "lamp", name="lamp-pre")
    base = {"provisionDeviceKey": profile["key"], "provisionDeviceSecret": profile["secret"]}
    answer = await provision_by_paho(platform, {**base, "deviceName": "lamp-pre"})
    assert answer["status"] == "SUCCESS"
    assert await connects(platform, answer["credentialsValue"]) == 0
    assert await connects(platform, lamp["token"]) == 0x86  # the registered token is replaced
    assert await provision_by_paho(platform, {**base, "deviceName": "lamp-pre"}) == FAILURE
    # not registered, and the profile may not create
    assert await provision_by_paho(platform, {**base, "deviceName": "lamp-new"}) == FAILURE


async def test_a_pre_registered_device_of_another_kind_fails(
    client: httpx.AsyncClient, city: City, platform: Platform
) -> None:
    profile = await make_profile(client, city, create_new=False, pre_registered=True)
    await make_device(client, city, "lighting", "camera", name="cam-pre")
    base = {"provisionDeviceKey": profile["key"], "provisionDeviceSecret": profile["secret"]}
    assert await provision_by_paho(platform, {**base, "deviceName": "cam-pre"}) == FAILURE


async def test_a_disabled_profile_is_not_found(
    client: httpx.AsyncClient, city: City, platform: Platform
) -> None:
    profile = await make_profile(client, city, create_new=False, pre_registered=False)
    base = {"provisionDeviceKey": profile["key"], "provisionDeviceSecret": profile["secret"]}
    assert await provision_by_paho(platform, {**base, "deviceName": "x"}) == NOT_FOUND


async def test_without_a_name_the_device_is_named_for_its_kind(
    client: httpx.AsyncClient, city: City, platform: Platform, profile: dict[str, Any]
) -> None:
    base = {"provisionDeviceKey": profile["key"], "provisionDeviceSecret": profile["secret"]}
    answer = await provision_by_paho(platform, base)
    assert answer["status"] == "SUCCESS"
    names = list(await devices(client, city, "lighting"))
    assert len(names) == 1
    assert names[0].startswith("lamp-")


async def test_malformed_request_fails(platform: Platform) -> None:
    assert await provision_by_paho(platform, b"{not json") == FAILURE


async def test_a_provisioning_session_may_do_nothing_else(platform: Platform) -> None:
    dev = Device(platform.mqtt[0].mqtt_port, "provision", V5)
    try:
        assert await dev.connect() == 0
        assert await dev.publish("v1/devices/me/telemetry", {"x": 1}) == 0x90
    finally:
        await dev.close()


# -- HTTP ---------------------------------------------------------------------------------
async def test_provisioning_over_http(
    client: httpx.AsyncClient, city: City, platform: Platform, profile: dict[str, Any]
) -> None:
    request = {
        "deviceName": "lamp-http",
        "provisionDeviceKey": profile["key"],
        "provisionDeviceSecret": profile["secret"],
    }
    r = await client.post("/api/v1/provision", json=request)
    assert r.status_code == 200
    assert r.json()["status"] == "SUCCESS"
    token = r.json()["credentialsValue"]
    r = await client.post(f"/api/v1/{token}/telemetry", json={"power": 12.5})
    assert r.status_code == 200, r.text
    r = await client.post("/api/v1/provision", json={**request, "provisionDeviceSecret": "bad"})
    assert r.status_code == 200
    assert r.json() == NOT_FOUND
    r = await client.post("/api/v1/provision", json=request)  # the name is taken now
    assert r.json() == FAILURE
