"""Firmware updates (OTA): packages over REST, assignment, and the chunked download over MQTT."""

from __future__ import annotations

import hashlib
import logging
import queue
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from tb_device_mqtt import TBDeviceMqttClient, TBFirmwareState

from fixtures_api import City, make_device, make_pole
from helpers import FIRMWARE, assign, poll, run, shutdown, start, take, upload
from mqtt_client import V5, V311, Device
from smartpole.app import Platform
from smartpole.model.types import Role


@pytest.fixture
async def lamp(client: httpx.AsyncClient, city: City) -> dict[str, Any]:
    pole = await make_pole(client, city, "FT-OTA-0001")
    return await make_device(client, city, "lighting", "lamp", pole, name="lamp-ota")


# -- packages -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        pytest.param("SHA256", hashlib.sha256(FIRMWARE).hexdigest(), id="sha256"),
        pytest.param("MD5", hashlib.md5(FIRMWARE).hexdigest(), id="md5"),  # noqa: S324
        pytest.param(
            "CRC32", zlib.crc32(FIRMWARE).to_bytes(4, "little").hex(), id="crc32-little-endian"
        ),
    ],
)
async def test_upload_computes_the_checksum(
    client: httpx.AsyncClient, city: City, algorithm: str, expected: str
) -> None:
    r = await upload(client, city, checksum_algorithm=algorithm)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["checksum"] == expected
    assert body["checksum_algorithm"] == algorithm
    assert body["size"] == len(FIRMWARE)
    auth = city.auth("lighting")
    assert [f["id"] for f in (await client.get("/api/firmware", headers=auth)).json()] == [
        body["id"]
    ]
    data = await client.get(f"/api/firmware/{body['id']}/data", headers=auth)
    assert data.content == FIRMWARE


async def test_the_default_algorithm_is_sha256(
    client: httpx.AsyncClient, package: dict[str, Any]
) -> None:
    assert package["checksum_algorithm"] == "SHA256"


async def test_an_upload_that_does_not_match_its_checksum_is_refused(
    client: httpx.AsyncClient, city: City
) -> None:
    r = await upload(client, city, checksum="00" * 32)
    assert r.status_code == 422
    assert r.json()["checksum"] == hashlib.sha256(FIRMWARE).hexdigest()


async def test_the_size_limit_is_the_setting(
    client: httpx.AsyncClient, city: City, platform: Platform
) -> None:
    platform.settings.firmware_max_bytes = 4096
    r = await upload(client, city)
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"


async def test_a_version_is_uploaded_once(
    client: httpx.AsyncClient, city: City, package: dict[str, Any]
) -> None:
    assert (await upload(client, city)).status_code == 409
    assert (await upload(client, city, version="2.0.1")).status_code == 201


async def test_packages_are_the_tenants_own(
    client: httpx.AsyncClient, city: City, package: dict[str, Any]
) -> None:
    r = await client.get(f"/api/firmware/{package['id']}", headers=city.auth("telecom"))
    assert r.status_code == 404
    assert (await client.get("/api/firmware", headers=city.auth("telecom"))).json() == []
    r = await client.get("/api/firmware", headers=city.auth("city"))
    assert [f["owner"] for f in r.json()] == ["lighting"]


async def test_a_package_of_another_kind_cannot_be_assigned(
    client: httpx.AsyncClient, city: City
) -> None:
    camera = await make_device(client, city, "lighting", "camera", name="cam-ota")
    r = await upload(client, city, kind="camera", title="cam-fw")
    assert r.status_code == 201
    lamp_fw = (await upload(client, city)).json()
    assert (await assign(client, city, camera["id"], lamp_fw["id"])).status_code == 422
    assert (await assign(client, city, camera["id"], r.json()["id"])).status_code == 200


async def test_assignment_writes_the_shared_attributes(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any], package: dict[str, Any]
) -> None:
    r = await client.get(f"/api/devices/{lamp['id']}/firmware", headers=city.auth("lighting"))
    assert r.json()["assigned"] is None
    r = await assign(client, city, lamp["id"], package["id"])
    assert r.status_code == 200, r.text
    assert r.json()["assigned"]["version"] == "2.0.0"
    assert r.json()["up_to_date"] is False
    r = await client.get(
        f"/api/devices/{lamp['id']}/attributes",
        params={"scope": "shared"},
        headers=city.auth("lighting"),
    )
    assert {k: v["value"] for k, v in r.json()["shared"].items()} == {
        "fw_title": "lamp-fw",
        "fw_version": "2.0.0",
        "fw_size": len(FIRMWARE),
        "fw_checksum": package["checksum"],
        "fw_checksum_algorithm": "SHA256",
    }
    # an assigned package cannot be deleted; unassigned, it can
    auth = city.auth("lighting", Role.OPERATOR)
    assert (await client.delete(f"/api/firmware/{package['id']}", headers=auth)).status_code == 409
    r = await client.delete(f"/api/devices/{lamp['id']}/firmware", headers=auth)
    assert r.status_code == 204
    r = await client.get(f"/api/devices/{lamp['id']}/attributes", headers=auth)
    assert "shared" not in r.json()
    assert (await client.delete(f"/api/firmware/{package['id']}", headers=auth)).status_code == 204


# -- the SDK performs an update -----------------------------------------------------------
@pytest.fixture
async def sdk(platform: Platform, lamp: dict[str, Any]) -> AsyncIterator[TBDeviceMqttClient]:
    """The lamp connected with ``TBDeviceMqttClient``, fetching firmware in 8 KiB chunks."""
    c = TBDeviceMqttClient(
        "127.0.0.1", port=platform.mqtt[0].mqtt_port, username=lamp["token"], chunk_size=8192
    )
    try:
        await start(c)
        yield c
    finally:
        await run(shutdown, c)


async def test_the_sdk_downloads_verifies_and_reports_an_update(
    sdk: TBDeviceMqttClient,
    client: httpx.AsyncClient,
    city: City,
    lamp: dict[str, Any],
    package: dict[str, Any],
) -> None:
    received: queue.Queue[tuple[bytes, str]] = queue.Queue()

    def on_firmware(c: TBDeviceMqttClient, data: bytes, version: str) -> None:
        received.put((data, version))
        c.update_firmware_info(state=TBFirmwareState.UPDATING)
        c.update_firmware_info(title="lamp-fw", version=version, state=TBFirmwareState.UPDATED)

    sdk.set_on_firmware_received_callback(on_firmware)
    await run(sdk.get_firmware_update)  # subscribes to v2/fw/response/+; nothing assigned yet
    r = await assign(client, city, lamp["id"], package["id"])
    assert r.status_code == 200, r.text
    data, version = await take(received, 20)
    assert data == FIRMWARE  # five chunks, and the SDK verified the SHA-256 itself
    assert version == "2.0.0"
    auth = city.auth("lighting")

    async def updated() -> bool:
        r = await client.get(f"/api/devices/{lamp['id']}/firmware", headers=auth)
        return bool(r.json()["up_to_date"])

    await poll(updated, 30)  # the SDK pauses between the states it reports
    r = await client.get(f"/api/devices/{lamp['id']}/firmware", headers=auth)
    assert r.json()["reported"] == {
        "title": "lamp-fw",
        "version": "2.0.0",
        "state": "UPDATED",
        "error": None,
        "ts": r.json()["reported"]["ts"],
    }
    r = await client.get(
        f"/api/devices/{lamp['id']}/timeseries",
        params={"keys": "fw_state", "start": 0},
        headers=auth,
    )
    states = [p["value"] for p in r.json()["fw_state"]]
    assert states[-5:] == ["DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATING", "UPDATED"]


# -- chunks by hand -----------------------------------------------------------------------
@pytest.fixture(params=[pytest.param(V5, id="mqtt5"), pytest.param(V311, id="mqtt311")])
async def device(
    request: pytest.FixtureRequest, platform: Platform, lamp: dict[str, Any]
) -> AsyncIterator[Device]:
    dev = Device(platform.mqtt[0].mqtt_port, lamp["token"], request.param, client_id="lamp")
    assert await dev.connect() == 0
    yield dev
    await dev.close()


async def test_chunks_are_slices_and_past_the_end_is_empty(
    device: Device, client: httpx.AsyncClient, city: City, lamp: dict[str, Any], package: Any
) -> None:
    assert (await assign(client, city, lamp["id"], package["id"])).status_code == 200
    await device.subscribe("v2/fw/response/+")  # what the SDK subscribes to
    await device.publish("v2/fw/request/7/chunk/2", b"4096")
    assert await device.receive() == ("v2/fw/response/7/chunk/2", FIRMWARE[8192:12288])
    await device.publish("v2/fw/request/7/chunk/10", b"4096")
    assert await device.receive() == ("v2/fw/response/7/chunk/10", b"")
    await device.publish("v2/fw/request/8/chunk/0", b"")  # no size: the whole package
    topic, data = await device.receive()
    assert topic == "v2/fw/response/8/chunk/0"
    assert data == FIRMWARE


async def test_a_chunk_request_without_firmware_gets_not_found_and_the_session_ends(
    device: Device, lamp: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    await device.publish("v2/fw/request/1/chunk/0", b"1024", qos=0)
    assert await device.receive() == ("v2/fw/error", b"NOT_FOUND")  # as ThingsBoard
    await device.wait_disconnected()  # MQTT 5: DISCONNECT 0x83, as ThingsBoard
    assert any(
        f"device {lamp['id']} " in r.getMessage() and "no firmware assigned" in r.getMessage()
        for r in caplog.records
    )
