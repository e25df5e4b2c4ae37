"""The registry hands out poles and devices as values: what a reader may rely on."""

from __future__ import annotations

import dataclasses

import pytest

from smartpole.model.devices import Device
from smartpole.model.poles import MountedDevice
from smartpole.model.types import DeviceKind, Role
from smartpole.registry.access import Principal, Tenants, token_hint
from smartpole.registry.assets import Assets, PoleFilter
from smartpole.store import Database


@pytest.fixture
def assets(database: Database) -> Assets:
    return Assets(database.engine)


@pytest.fixture
def city(database: Database) -> Principal:
    tenant = Tenants(database.engine).create("city", is_operator=True)
    return Principal(tenant["id"], "city", Role.ADMIN, True)


def test_a_device_holds_its_token_only_by_its_hint(assets: Assets, city: Principal) -> None:
    device, token = assets.create_device(city, DeviceKind.LAMP, token="secret-token-of-lamp-1")
    assert device.token_hint == token_hint(token)
    assert token not in dataclasses.astuple(device)
    assert not {"token", "token_hash"} & {f.name for f in dataclasses.fields(Device)}


def test_a_device_reads_back_with_its_owner_and_pole(assets: Assets, city: Principal) -> None:
    pole = assets.create_pole(city, code="FT-1", lat=22.5, lon=114.0)
    made, _ = assets.create_device(city, DeviceKind.LAMP, name="lamp-1", pole_id=pole.id, port=3)
    device = assets.get_device(city, made.id)
    assert device == made
    assert (device.kind, device.owner, device.pole, device.port) == (
        DeviceKind.LAMP,
        "city",
        "FT-1",
        3,
    )
    assert assets.get_pole(city, pole.id).devices == (
        MountedDevice(made.id, "lamp-1", DeviceKind.LAMP, 3),
    )
    [listed], total = assets.list_devices(city)
    assert (listed, total) == (device, 1)


def test_a_listed_pole_does_not_read_its_devices(assets: Assets, city: Principal) -> None:
    pole = assets.create_pole(city, code="FT-1", lat=22.5, lon=114.0)
    assert pole.devices == ()
    [listed], _ = assets.list_poles(city, PoleFilter())
    assert listed.devices is None
    assert dataclasses.replace(listed, devices=()) == pole
