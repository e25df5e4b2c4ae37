"""What a device is told when its data is refused or quarantined (docs/device-makers.md, "What
a refusal looks like"), and how an operator re-kinds a device a gateway created as generic."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fixtures_api import City, make_device, make_pole
from mqtt_client import V5, V311, Device
from smartpole import errors
from smartpole.app import Platform
from smartpole.model.devices import Device as RegisteredDevice
from smartpole.model.types import DeviceKind, Role
from smartpole.transport.refusals import REFUSALS, http_status, mqtt_reason

PAYLOAD_FORMAT_INVALID = 0x99


@pytest.fixture
async def lamp(client: httpx.AsyncClient, city: City) -> dict[str, Any]:
    pole = await make_pole(client, city, "FT-RF-0001")
    return await make_device(client, city, "lighting", "lamp", pole, name="lamp-rf")


@pytest.fixture
async def lamp5(platform: Platform, lamp: dict[str, Any]) -> AsyncIterator[Device]:
    dev = Device(platform.mqtt[0].mqtt_port, lamp["token"], V5, client_id="lamp-rf")
    assert await dev.connect() == 0
    yield dev
    await dev.close()


def reason_string(props: Any) -> str | None:
    return getattr(props, "ReasonString", None)


def user_properties(props: Any) -> list[tuple[str, str]]:
    return list(getattr(props, "UserProperty", []) or [])


# -- the table ----------------------------------------------------------------------------
ERRORS = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, errors.SmartpoleError) and cls is not errors.SmartpoleError
]


@pytest.mark.parametrize("error", [pytest.param(c, id=c.__name__) for c in ERRORS])
def test_every_error_of_the_tree_has_a_reason_code_and_a_status(
    error: type[errors.SmartpoleError],
) -> None:
    assert error in REFUSALS
    err = error("x")
    assert 0x80 <= mqtt_reason(err) <= 0xA2
    assert 400 <= http_status(err) < 600


def test_a_bug_is_unspecified_and_a_500() -> None:
    assert (mqtt_reason(RuntimeError("x")), http_status(RuntimeError("x"))) == (0x80, 500)


# -- MQTT 5 -------------------------------------------------------------------------------
async def test_a_refused_payload_gets_0x99_with_a_reason_string(lamp5: Device) -> None:
    assert await lamp5.publish("v1/devices/me/telemetry", {"dim": None}) == PAYLOAD_FORMAT_INVALID
    why = reason_string(lamp5.last_ack)
    assert why is not None
    assert "nothing was stored" in why
    assert "body/dim: null is not a value" in why
    assert why.count("null is not a value") == 1


async def test_malformed_json_gets_0x99_saying_where(lamp5: Device) -> None:
    assert await lamp5.publish("v1/devices/me/telemetry", b'{"dim": 5') == PAYLOAD_FORMAT_INVALID
    assert "malformed JSON at line 1" in (reason_string(lamp5.last_ack) or "")


async def test_quarantined_values_are_acknowledged_with_their_count(
    lamp5: Device, client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    body = {"dim": 150, "power": -3, "voltage": 230}
    assert await lamp5.publish("v1/devices/me/telemetry", body) == 0
    assert user_properties(lamp5.last_ack) == [("quarantined", "2")]
    assert (reason_string(lamp5.last_ack) or "").startswith("2 value(s) quarantined: dim=150")
    r = await client.get(f"/api/devices/{lamp['id']}/latest", headers=city.auth("lighting"))
    assert r.json()["voltage"]["value"] == 230  # the good value is stored


async def test_a_clean_message_is_acknowledged_without_properties(lamp5: Device) -> None:
    assert await lamp5.publish("v1/devices/me/telemetry", {"dim": 50}) == 0
    assert reason_string(lamp5.last_ack) is None
    assert user_properties(lamp5.last_ack) == []


async def test_no_reason_string_when_the_client_asked_for_no_problem_information(
    platform: Platform, lamp: dict[str, Any]
) -> None:
    props = Properties(PacketTypes.CONNECT)
    props.RequestProblemInformation = 0
    dev = Device(platform.mqtt[0].mqtt_port, lamp["token"], V5, properties=props)
    assert await dev.connect() == 0
    try:
        assert await dev.publish("v1/devices/me/telemetry", {"dim": None}) == 0x99
        assert reason_string(dev.last_ack) is None
        assert await dev.publish("v1/devices/me/telemetry", {"dim": 150}) == 0
        assert user_properties(dev.last_ack) == []
    finally:
        await dev.close()


# -- MQTT 3.1.1 ---------------------------------------------------------------------------
async def test_mqtt311_closes_the_connection_and_logs_the_device(
    platform: Platform, lamp: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    dev = Device(platform.mqtt[0].mqtt_port, lamp["token"], V311, client_id="lamp-rf")
    assert await dev.connect() == 0
    try:
        with caplog.at_level(logging.WARNING, "smartpole.transport.mqtt.session"):
            with pytest.raises(ConnectionError):
                await dev.publish("v1/devices/me/telemetry", {"dim": None})
        assert f"device {lamp['id']} (lamp-rf) rejected" in caplog.text
        assert "null is not a value" in caplog.text
    finally:
        await dev.close()


# -- HTTP ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(b'{"dim": 5', 400, id="not-json"),
        pytest.param(b'{"dim": null}', 422, id="wrong-shape"),
    ],
)
async def test_http_answers_the_status_of_the_table(
    client: httpx.AsyncClient, lamp: dict[str, Any], body: bytes, status: int
) -> None:
    r = await client.post(f"/api/v1/{lamp['token']}/telemetry", content=body)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"


async def test_http_answers_quarantined_values_with_their_count(
    client: httpx.AsyncClient, lamp: dict[str, Any]
) -> None:
    r = await client.post(f"/api/v1/{lamp['token']}/telemetry", json={"dim": 150, "on": True})
    assert r.status_code == 200
    assert r.json() == {"accepted": 1, "quarantined": 1}


# -- re-kinding a generic device ----------------------------------------------------------
@pytest.fixture
async def thermometer(platform: Platform, city: City) -> RegisteredDevice:
    """A generic device as a gateway creates it (profile ``Thermometer``)."""
    who = platform.tenants.authenticate(city.keys[("city", Role.ADMIN)])
    row, _ = platform.assets.create_device(
        who, DeviceKind.GENERIC, name="thermo-1", profile="Thermometer"
    )
    return row


async def test_an_admin_gives_a_generic_device_its_kind(
    client: httpx.AsyncClient, city: City, thermometer: RegisteredDevice
) -> None:
    url = f"/api/devices/{thermometer.id}"
    r = await client.patch(url, json={"kind": "air"}, headers=city.auth("city", Role.OPERATOR))
    assert r.status_code == 403, r.text
    r = await client.patch(url, json={"kind": "air", "model": "T-1"}, headers=city.auth("city"))
    assert r.status_code == 200, r.text
    assert (r.json()["kind"], r.json()["profile"], r.json()["model"]) == (
        "air",
        "Thermometer",
        "T-1",
    )


async def test_a_refused_change_changes_nothing_of_a_generic_device(
    client: httpx.AsyncClient, city: City, thermometer: RegisteredDevice, lamp: dict[str, Any]
) -> None:
    """The kind and the other fields of one PATCH are one change: a taken name leaves the
    device generic."""
    url = f"/api/devices/{thermometer.id}"
    r = await client.patch(
        url, json={"kind": "air", "name": lamp["name"]}, headers=city.auth("city")
    )
    assert r.status_code == 409, r.text
    assert r.json()["field"] == "name"
    r = await client.get(url, headers=city.auth("city"))
    assert (r.json()["kind"], r.json()["name"]) == ("generic", "thermo-1")


async def test_only_gateways_make_generic_devices(client: httpx.AsyncClient, city: City) -> None:
    r = await client.post(
        "/api/devices", json={"kind": "generic", "name": "g-1"}, headers=city.auth("city")
    )
    assert r.status_code == 422, r.text
    assert "register the device with its real kind" in r.json()["detail"]


async def test_a_device_of_a_known_kind_keeps_it(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    r = await client.patch(
        f"/api/devices/{lamp['id']}", json={"kind": "camera"}, headers=city.auth("city")
    )
    assert r.status_code == 409, r.text
    assert "only a generic device" in r.json()["detail"]
