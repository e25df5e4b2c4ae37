"""Broker mode: device-initiated RPC, claiming and OTA firmware through a real Mosquitto.

Fixtures: ``fixtures_broker.py`` (Mosquitto with the generated files, a platform consuming from it).
"""

from __future__ import annotations

import hashlib
import random
import time
from typing import Any

import httpx
import orjson
import pytest

from fixtures_api import City, make_device, make_pole
from helpers import Inbox, assign, device, eventually, sync_files, upload
from mosquitto import Mosquitto
from smartpole.app import Platform

FIRMWARE = random.Random(11).randbytes(20 * 1024 + 123)


@pytest.fixture
def platform(broker_platform: Platform) -> Platform:
    """Broker mode: the platform consumes from ``broker`` (``fixtures_broker``)."""
    return broker_platform


async def lamp(
    client: httpx.AsyncClient, city: City, platform: Platform, broker: Mosquitto
) -> dict[str, Any]:
    pole = await make_pole(client, city, "FT-BX-0001")
    body = await make_device(client, city, "lighting", "lamp", pole, name="lamp-x")
    sync_files(platform, broker)
    return body


async def test_a_device_asks_the_platform_for_the_time_and_its_limits(
    client: httpx.AsyncClient, city: City, platform: Platform, broker: Mosquitto
) -> None:
    body = await lamp(client, city, platform, broker)
    inbox = Inbox()
    mqtt = await device(broker, "lamp-x", body["token"], on_message=inbox)
    assert await mqtt.subscribe([("sp/v1/lamp-x/rpc/result/+", 1)]) == [1]
    before = int(time.time() * 1000)
    await mqtt.publish(
        "sp/v1/lamp-x/rpc/call/1", b'{"method": "getCurrentTime", "params": {}}', qos=1
    )
    (answer,) = await inbox.on("sp/v1/lamp-x/rpc/result/1")
    assert before <= answer["currentTime"] <= int(time.time() * 1000)
    await mqtt.publish("sp/v1/lamp-x/rpc/call/2", b'{"method": "getSessionLimits"}', qos=1)
    (limits,) = await inbox.on("sp/v1/lamp-x/rpc/result/2")
    assert limits["maxPayloadSize"] == platform.devices.limits.max_payload
    await mqtt.publish("sp/v1/lamp-x/rpc/call/3", b'{"method": "selfDestruct"}', qos=1)
    (unknown,) = await inbox.on("sp/v1/lamp-x/rpc/result/3")
    assert "selfDestruct" in unknown["error"]
    await mqtt.close()


async def telecom_claims(
    client: httpx.AsyncClient, city: City, name: str, secret: str, device_id: int
) -> None:
    """The telecom operator claims the device (once the broker has brought the claim window)
    and owns it."""

    async def claimed() -> bool:
        r = await client.post(
            "/api/devices/claim",
            json={"name": name, "secret_key": secret},
            headers=city.auth("telecom"),
        )
        return r.status_code == 200

    await eventually(claimed)
    r = await client.get(f"/api/devices/{device_id}", headers=city.auth("telecom"))
    assert r.json()["owner"] == "telecom"


async def test_a_device_opens_its_claim_and_a_tenant_claims_it(
    client: httpx.AsyncClient, city: City, platform: Platform, broker: Mosquitto
) -> None:
    body = await lamp(client, city, platform, broker)
    mqtt = await device(broker, "lamp-x", body["token"])
    claim = {"secretKey": "k-77", "durationMs": 60_000}
    await mqtt.publish("sp/v1/lamp-x/claim", orjson.dumps(claim), qos=1)

    await telecom_claims(client, city, "lamp-x", "k-77", body["id"])
    await mqtt.close()


async def test_a_gateway_opens_the_claim_of_a_device_on_its_pole(
    client: httpx.AsyncClient, city: City, platform: Platform, broker: Mosquitto
) -> None:
    pole = await make_pole(client, city, "FT-BX-0002")
    gw = await make_device(client, city, "city", "gateway", pole, name="gw-x")
    cam = await make_device(client, city, "city", "camera", pole, name="cam-x")
    sync_files(platform, broker)
    mqtt = await device(broker, "gw-x", gw["token"])
    body = {"cam-x": {"secretKey": "g-1", "durationMs": 60_000}}
    await mqtt.publish("sp/v1/gw-x/gateway/claim", orjson.dumps(body), qos=1)

    await telecom_claims(client, city, "cam-x", "g-1", cam["id"])
    await mqtt.close()


async def test_a_device_downloads_its_firmware_in_chunks_and_verifies_it(
    client: httpx.AsyncClient, city: City, platform: Platform, broker: Mosquitto
) -> None:
    body = await lamp(client, city, platform, broker)
    r = await upload(client, city, FIRMWARE, version="3.1.0")
    assert r.status_code == 201, r.text
    assert (await assign(client, city, body["id"], r.json()["id"])).status_code == 200
    inbox = Inbox()
    mqtt = await device(broker, "lamp-x", body["token"], on_message=inbox)
    granted = await mqtt.subscribe(
        [
            ("sp/v1/lamp-x/attributes/response/+", 1),
            ("sp/v1/lamp-x/fw/response/+/chunk/+", 1),
            ("sp/v1/lamp-x/fw/error", 1),
        ]
    )
    assert granted == [1, 1, 1]
    # as the SDK does: read the fw_* shared attributes, then ask chunk after chunk
    ask = {"sharedKeys": "fw_title,fw_version,fw_size,fw_checksum,fw_checksum_algorithm"}
    await mqtt.publish("sp/v1/lamp-x/attributes/request/1", orjson.dumps(ask), qos=1)
    (attrs,) = await inbox.on("sp/v1/lamp-x/attributes/response/1")
    fw = attrs["shared"]
    assert fw["fw_version"] == "3.1.0"
    assert fw["fw_size"] == len(FIRMWARE)
    size = 8192
    chunks = -(-fw["fw_size"] // size)
    data = b""
    for n in range(chunks):
        await mqtt.publish(f"sp/v1/lamp-x/fw/request/9/chunk/{n}", str(size).encode(), qos=1)
        topic = f"sp/v1/lamp-x/fw/response/9/chunk/{n}"

        async def arrived(topic: str = topic) -> bool:
            return any(p.topic == topic for p in inbox.got)

        await eventually(arrived)
        data += next(p.payload for p in inbox.got if p.topic == topic)
    assert data == FIRMWARE
    assert fw["fw_checksum_algorithm"] == "SHA256"
    assert hashlib.sha256(data).hexdigest() == fw["fw_checksum"]
    too_big = str(platform.devices.limits.max_payload + 1).encode()
    await mqtt.publish("sp/v1/lamp-x/fw/request/9/chunk/0", too_big, qos=1)

    async def refused() -> bool:
        return any(p.topic == "sp/v1/lamp-x/fw/error" for p in inbox.got)

    await eventually(refused)
    assert [p.payload for p in inbox.got if p.topic == "sp/v1/lamp-x/fw/error"] == [
        b"PAYLOAD_TOO_LARGE"
    ]
    await mqtt.close()


async def test_a_device_without_firmware_is_told_not_found(
    client: httpx.AsyncClient, city: City, platform: Platform, broker: Mosquitto
) -> None:
    body = await lamp(client, city, platform, broker)
    inbox = Inbox()
    mqtt = await device(broker, "lamp-x", body["token"], on_message=inbox)
    await mqtt.subscribe([("sp/v1/lamp-x/fw/error", 1)])
    await mqtt.publish("sp/v1/lamp-x/fw/request/1/chunk/0", b"4096", qos=1)

    async def told() -> bool:
        return any(p.topic == "sp/v1/lamp-x/fw/error" for p in inbox.got)

    await eventually(told)
    assert [p.payload for p in inbox.got] == [b"NOT_FOUND"]
    await mqtt.close()


async def test_a_malformed_chunk_request_is_dropped_and_counted(
    client: httpx.AsyncClient, city: City, platform: Platform, broker: Mosquitto
) -> None:
    body = await lamp(client, city, platform, broker)
    assert platform.broker is not None
    stats = platform.broker.stats
    mqtt = await device(broker, "lamp-x", body["token"])
    await mqtt.publish("sp/v1/lamp-x/fw/request/1/chunk/x", b"4096", qos=1)
    await mqtt.publish("sp/v1/lamp-x/rpc/call/1", b'{"no": "method"}', qos=1)

    async def dropped() -> bool:
        return stats.dropped >= 2

    await eventually(dropped)
    await mqtt.close()
