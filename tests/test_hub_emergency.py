"""The hub must not miss an emergency: readings in timestamp order, persistent rule commands,
hysteresis, pole-level root alarms and the latched SOS alarm (issue 11, section 3).

The SOS and flood cases run the shipped default rules, over real MQTT as a pole gateway
sends them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures_api import City, make_device, make_pole, started
from mqtt_client import V5, Device
from smartpole.app import Platform
from smartpole.errors import InvalidInput
from smartpole.hub.rules.documents import default_rules
from smartpole.hub.rules.model import CommandAction
from smartpole.hub.rules.parser import compile_rule
from smartpole.model.clock import now_ms
from smartpole.store import Database

T0 = 1_764_000_000_000
SEC = 1000
MIN = 60 * SEC


@pytest.fixture
async def platform(database: Database, tmp_path: Path) -> AsyncIterator[Platform]:
    """A started platform whose hub timer runs only when a test calls ``hub.tick``: the tests
    move the clock forward (ten minutes offline), and the wall clock must not move it back."""
    async with started(database, tmp_path, hub_tick_ms=3_600_000) as p:
        yield p


async def settle(platform: Platform) -> None:
    """Wait until every upload so far is committed, evaluated and acted on."""
    await platform.pipeline.drain()
    await platform.hub.settle()


async def alarms_of(
    client: httpx.AsyncClient, city: City, tenant: str = "city", **q: Any
) -> list[dict[str, Any]]:
    """Alarms the tenant sees."""
    r = await client.get("/api/alarms", params=q, headers=city.auth(tenant))
    assert r.status_code == 200, r.text
    return list(r.json())


async def all_online(
    client: httpx.AsyncClient, city: City, devices: list[dict[str, Any]], online: bool
) -> None:
    """Poll (bounded) until every device's online state is ``online``: the server sees a
    connection end after the client has returned."""
    for _ in range(400):
        states = []
        for d in devices:
            r = await client.get(f"/api/devices/{d['id']}", headers=city.auth("city"))
            states.append(r.json()["online"])
        if all(s is online for s in states):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"devices never all {'online' if online else 'offline'}: {states}")


@dataclass
class Street:
    """A pole with a city gateway, an SOS button, a lamp and a flood sensor (lighting's)."""

    pole: int
    gw: dict[str, Any]
    sos: dict[str, Any]
    lamp: dict[str, Any]
    flood: dict[str, Any]


@pytest.fixture
async def street(client: httpx.AsyncClient, city: City) -> Street:
    r = await client.post("/api/rules/import", json=default_rules(), headers=city.auth("city"))
    assert r.status_code == 200, r.text
    pole = await make_pole(client, city, "FT-SOS-0001")
    return Street(
        pole=pole,
        gw=await make_device(client, city, "city", "gateway", pole, name="gw-1", port=1),
        sos=await make_device(client, city, "lighting", "sos", pole, name="sos-1", port=2),
        lamp=await make_device(client, city, "lighting", "lamp", pole, name="lamp-1", port=3),
        flood=await make_device(client, city, "lighting", "flood", pole, name="flood-1", port=4),
    )


@pytest.fixture
async def gateway(platform: Platform, street: Street) -> AsyncIterator[Device]:
    """The pole gateway, connected over MQTT 5 and listening for commands."""
    dev = Device(platform.mqtt[0].mqtt_port, street.gw["token"], V5, client_id="gw-1")
    assert await dev.connect() == 0
    await dev.subscribe("v1/gateway/rpc")
    yield dev
    await dev.close()


def presses(*pressed: bool) -> dict[str, Any]:
    """One gateway message with the SOS button's reports a second apart."""
    return {
        "sos-1": [{"ts": T0 + i * SEC, "values": {"pressed": p}} for i, p in enumerate(pressed)]
    }


async def test_a_press_between_releases_in_one_batch_raises_sos_and_lights_the_lamp(
    platform: Platform, client: httpx.AsyncClient, city: City, street: Street, gateway: Device
) -> None:
    assert await gateway.publish("v1/gateway/connect", {"device": "lamp-1"}) == 0
    # A gateway back from an outage delivers the press and its release in one message.
    assert await gateway.publish("v1/gateway/telemetry", presses(False, True, False)) == 0
    await settle(platform)
    [sos] = await alarms_of(client, city, type="sos")
    assert (sos["originator_type"], sos["originator_id"]) == ("pole", street.pole)
    assert sos["first_ts"] == T0 + SEC  # the press, not the batch's newest reading
    topic, body = await gateway.receive()
    assert (topic, body["device"], body["data"]["method"]) == (
        "v1/gateway/rpc",
        "lamp-1",
        "setDim",
    )
    assert body["data"]["params"] == {"level": 100}


async def test_a_press_reported_after_its_release_still_raises_sos(
    platform: Platform, client: httpx.AsyncClient, city: City, street: Street, gateway: Device
) -> None:
    release = {"sos-1": [{"ts": T0 + 2 * SEC, "values": {"pressed": False}}]}
    press = {"sos-1": [{"ts": T0 + SEC, "values": {"pressed": True}}]}  # late: older than it
    assert await gateway.publish("v1/gateway/telemetry", release) == 0
    await settle(platform)
    assert await gateway.publish("v1/gateway/telemetry", press) == 0
    await settle(platform)
    [sos] = await alarms_of(client, city, type="sos")
    assert sos["first_ts"] == T0 + SEC


async def commands_of(
    client: httpx.AsyncClient, city: City, device: dict[str, Any]
) -> list[dict[str, Any]]:
    """The device's commands, newest first."""
    r = await client.get(f"/api/devices/{device['id']}/commands", headers=city.auth("city"))
    assert r.status_code == 200, r.text
    return list(r.json())


async def test_a_lamp_offline_at_the_press_is_lit_when_it_comes_back(
    platform: Platform, client: httpx.AsyncClient, city: City, street: Street, gateway: Device
) -> None:
    assert await gateway.publish("v1/gateway/telemetry", presses(True)) == 0  # lamp-1 is dark
    await settle(platform)
    [queued] = await commands_of(client, city, street.lamp)
    assert (queued["method"], queued["status"], queued["persistent"]) == ("setDim", "queued", True)
    assert queued["expires"] - queued["created"] == 30 * 60 * SEC  # the default SOS rule's
    assert await gateway.publish("v1/gateway/connect", {"device": "lamp-1"}) == 0
    topic, body = await gateway.receive()
    assert (topic, body["device"], body["data"]["method"]) == (
        "v1/gateway/rpc",
        "lamp-1",
        "setDim",
    )
    assert body["data"]["params"] == {"level": 100}


async def test_a_rule_command_past_its_expiry_is_not_sent(
    platform: Platform, client: httpx.AsyncClient, city: City, street: Street, gateway: Device
) -> None:
    assert await gateway.publish("v1/gateway/telemetry", presses(True)) == 0
    await settle(platform)
    [queued] = await commands_of(client, city, street.lamp)
    assert await platform.control.expire(now=queued["expires"]) == 1
    assert await platform.control.on_connect(street.lamp["id"]) == 0
    [expired] = await commands_of(client, city, street.lamp)
    assert (expired["status"], expired["error"]) == ("expired", "not sent before it expired")


def command_rule(**command: Any) -> dict[str, Any]:
    """A rule with one command action."""
    spec = {"method": "setDim", "params": {"level": 100}, **command}
    return {
        "name": "r",
        "condition": {"key": "x", "op": ">", "value": 1},
        "actions": [{"command": spec}],
    }


def test_rule_commands_are_persistent_with_a_default_or_given_expiry() -> None:
    [default] = compile_rule(command_rule()).actions
    assert isinstance(default, CommandAction)
    assert (default.persistent, default.expires_ms) == (True, 10 * 60 * SEC)
    [given] = compile_rule(command_rule(expires="2m")).actions
    assert isinstance(given, CommandAction)
    assert given.expires_ms == 2 * 60 * SEC


@pytest.mark.parametrize(
    "command",
    [
        pytest.param({"persistent": False, "expires": "5m"}, id="expiry-without-persistence"),
        pytest.param({"expires": "soon"}, id="not-a-duration"),
        pytest.param({"expires": "2d"}, id="longer-than-a-day"),
        pytest.param({"persistent": "yes"}, id="persistent-not-a-bool"),
    ],
)
def test_a_bad_command_expiry_is_located(command: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as info:
        compile_rule(command_rule(**command))
    assert info.value.errors[0]["loc"][:3] == ["actions", 0, "command"]


async def test_flood_alarm_holds_below_its_raise_level_until_the_water_is_gone(
    platform: Platform, client: httpx.AsyncClient, city: City, street: Street, gateway: Device
) -> None:
    t = now_ms() - MIN

    async def level(ts: int, cm: float) -> None:
        body = {"flood-1": [{"ts": ts, "values": {"water_level": cm}}]}
        assert await gateway.publish("v1/gateway/telemetry", body) == 0
        await settle(platform)

    await level(t, 15.0)
    await level(t + 10 * SEC, 14.7)  # the water is still rising: no clear, no second raise
    await level(t + 20 * SEC, 12.5)
    [flood] = await alarms_of(client, city, type="flood")
    assert (flood["status"], flood["count"], flood["first_ts"]) == ("active_unack", 1, t)
    await level(t + 30 * SEC, 11.0)  # below the clear level: the 10 minute hold begins
    await platform.hub.tick(now=t + 30 * SEC + 9 * MIN)
    await settle(platform)
    [flood] = await alarms_of(client, city, type="flood")
    assert flood["status"] == "active_unack"
    await platform.hub.tick(now=t + 30 * SEC + 10 * MIN)
    await settle(platform)
    [flood] = await alarms_of(client, city, type="flood")
    assert (flood["status"], flood["cleared_ts"]) == ("cleared_unack", t + 30 * SEC + 10 * MIN)


def threshold_rule(**condition: Any) -> dict[str, Any]:
    """A rule with one threshold condition."""
    return {
        "name": "r",
        "condition": {"key": "x", **condition},
        "actions": [{"alarm": {"type": "x", "severity": "minor"}}],
    }


@pytest.mark.parametrize(
    "condition",
    [
        pytest.param({"op": ">=", "value": 15, "clear": 16}, id="above-a-rising-threshold"),
        pytest.param({"op": "<", "value": 5, "clear": 4}, id="below-a-falling-threshold"),
        pytest.param({"op": "between", "value": [1, 2], "clear": [1.5, 2]}, id="narrower-band"),
        pytest.param({"op": "==", "value": 1, "clear": 0}, id="equality"),
        pytest.param({"op": ">", "value": 1, "hold": "soon"}, id="hold-not-a-duration"),
    ],
)
def test_a_clear_value_that_does_not_widen_the_threshold_is_located(
    condition: dict[str, Any],
) -> None:
    with pytest.raises(InvalidInput) as info:
        compile_rule(threshold_rule(**condition))
    [error] = info.value.errors
    assert error["loc"][0] == "condition"
    assert error["loc"][-1] in ("clear", "hold")


async def ack(client: httpx.AsyncClient, city: City, alarm_id: int) -> dict[str, Any]:
    """Acknowledge an alarm as the city operator."""
    r = await client.post(f"/api/alarms/{alarm_id}/ack", headers=city.auth("city"))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_sos_stays_active_after_the_release_until_acknowledged(
    platform: Platform, client: httpx.AsyncClient, city: City, street: Street, gateway: Device
) -> None:
    assert await gateway.publish("v1/gateway/telemetry", presses(True, False, False)) == 0
    await settle(platform)
    [sos] = await alarms_of(client, city, type="sos")
    assert (sos["status"], sos["latch"], sos["released_ts"]) == ("active_unack", True, T0 + SEC)
    acked = await ack(client, city, sos["id"])
    # The button was released meanwhile: the acknowledgement ends the alarm.
    assert (acked["status"], acked["cleared_ts"]) == ("cleared_ack", T0 + SEC)


async def test_an_acknowledged_sos_clears_with_the_release(
    platform: Platform, client: httpx.AsyncClient, city: City, street: Street, gateway: Device
) -> None:
    assert await gateway.publish("v1/gateway/telemetry", presses(True)) == 0
    await settle(platform)
    [sos] = await alarms_of(client, city, type="sos")
    assert (await ack(client, city, sos["id"]))["status"] == "active_ack"  # still pressed
    release = {"sos-1": [{"ts": T0 + SEC, "values": {"pressed": False}}]}
    assert await gateway.publish("v1/gateway/telemetry", release) == 0
    await settle(platform)
    [sos] = await alarms_of(client, city, type="sos")
    assert (sos["status"], sos["cleared_ts"]) == ("cleared_ack", T0 + SEC)


async def test_a_dark_pole_is_one_root_alarm_with_its_devices_grouped_under_it(
    platform: Platform, client: httpx.AsyncClient, city: City, street: Street, gateway: Device
) -> None:
    for name in ("sos-1", "lamp-1", "flood-1"):
        assert await gateway.publish("v1/gateway/connect", {"device": name}) == 0
    t = now_ms()
    everything = [street.gw, street.sos, street.lamp, street.flood]
    await gateway.close()  # the pole loses power: the gateway and its devices go offline
    await all_online(client, city, everything, False)
    await settle(platform)
    await platform.hub.tick(now=t + 11 * MIN)  # the default rule: offline for 10 minutes
    await settle(platform)
    offline = await alarms_of(client, city, type="device_offline")
    assert len(offline) == 4
    [root] = await alarms_of(client, city, roots="true", active="true")
    assert (root["type"], root["originator_type"], root["originator_id"]) == (
        "pole_offline",
        "pole",
        street.pole,
    )
    assert root["children"] == 4
    assert {a["root_id"] for a in offline} == {root["id"]}
    grouped = await alarms_of(client, city, root_id=root["id"])
    assert sorted(a["originator_id"] for a in grouped) == sorted(d["id"] for d in everything)
    # The lighting department sees the root and its own three devices under it.
    [seen] = await alarms_of(client, city, "lighting", roots="true")
    assert (seen["id"], seen["children"]) == (root["id"], 3)
    assert await alarms_of(client, city, "telecom") == []

    back = Device(platform.mqtt[0].mqtt_port, street.gw["token"], V5, client_id="gw-1")
    assert await back.connect() == 0  # power is back: the pole's outage ends
    try:
        await all_online(client, city, [street.gw], True)
        await settle(platform)
        [root] = await alarms_of(client, city, type="pole_offline")
        assert root["status"] == "cleared_unack"
        # Devices not heard from yet are problems of their own again.
        left = await alarms_of(client, city, roots="true", active="true")
        assert sorted(a["originator_id"] for a in left) == sorted(
            d["id"] for d in (street.sos, street.lamp, street.flood)
        )
    finally:
        await back.close()


async def test_a_late_reading_does_not_clear_and_raise_again_an_alarm_that_stands(
    platform: Platform, client: httpx.AsyncClient, city: City, street: Street
) -> None:
    cover = await make_device(client, city, "lighting", "manhole", street.pole, port=5)

    async def send(ts: int, is_open: bool) -> None:
        body = {"ts": ts, "values": {"open": is_open}}
        r = await client.post(f"/api/v1/{cover['token']}/telemetry", json=body)
        assert r.status_code == 200, r.text
        await settle(platform)

    await send(T0 + 2 * SEC, True)
    await send(T0 + SEC, False)  # from before the cover was lifted, delivered late
    [alarm] = await alarms_of(client, city, type="manhole_open")
    assert (alarm["status"], alarm["count"], alarm["first_ts"]) == ("active_unack", 1, T0 + 2 * SEC)
