"""The simulator against a real platform over real sockets: it streams, it obeys, it fails.

The district is seeded in-process (as ``smartpole demo`` does); the simulator then only speaks
MQTT to the platform's port, and the checks go through the REST API.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from smartpole.app import Platform
from smartpole.sim.faults import FaultRates
from smartpole.sim.fleet import fleet_from_plan
from smartpole.sim.runner import Mode, SimOptions, Simulator
from smartpole.sim.scenario import Event, Step
from smartpole.sim.seed import Seeded, seed_district

NIGHT = datetime(2025, 1, 15, 21, 0, tzinfo=timezone(timedelta(hours=8))).timestamp()
POLES = 6


@pytest.fixture
def seeded(platform: Platform) -> Seeded:
    """A small Futian district registered in the platform."""
    return seed_district(platform.tenants, platform.assets, POLES, seed=3)


@asynccontextmanager
async def running(
    platform: Platform, seeded: Seeded, mode: Mode = "gateway", **options: Any
) -> AsyncIterator[Simulator]:
    """The simulator streaming the seeded district until the block ends."""
    fleet = fleet_from_plan(seeded.plan, seeded.tokens, 3, "Futian")
    faults = options.pop("faults", FaultRates.parse(["none"]))
    scenario = options.pop("scenario", ())
    options.setdefault("interval", 0.2)
    opts = SimOptions(mode=mode, mqtt_port=platform.mqtt[0].mqtt_port, start=NIGHT, **options)
    sim = Simulator(fleet, opts, faults, scenario=scenario)
    task = asyncio.create_task(sim.run())
    try:
        yield sim
    finally:
        sim.stop()
        await task


async def until(check: Callable[[], Awaitable[Any]], what: str, tries: int = 300) -> Any:
    """Poll ``check`` until it returns something truthy (the platform is asynchronous)."""
    for _ in range(tries):
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def auth(seeded: Seeded) -> dict[str, str]:
    """The city operator's admin key (commands need an operator)."""
    return {"Authorization": f"Bearer {seeded.keys['city']['admin']}"}


async def lamps(client: httpx.AsyncClient, seeded: Seeded) -> list[dict[str, Any]]:
    r = await client.get("/api/devices", params={"kind": "lamp"}, headers=auth(seeded))
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def latest(client: httpx.AsyncClient, seeded: Seeded, device_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/devices/{device_id}/latest", headers=auth(seeded))
    assert r.status_code == 200, r.text
    return {k: v["value"] for k, v in r.json().items()}


async def lamp_report(client: httpx.AsyncClient, seeded: Seeded, device_id: int) -> Any:
    """The lamp's latest values once it has reported (before that, only ``online`` is there)."""
    values = await latest(client, seeded, device_id)
    return values if "on" in values and "power" in values else None


@pytest.mark.parametrize("mode", ["gateway", "device"])
async def test_the_district_comes_online_with_readings_of_every_device(
    platform: Platform, client: httpx.AsyncClient, seeded: Seeded, mode: Mode
) -> None:
    async with running(platform, seeded, mode):

        async def all_reported() -> bool:
            r = await client.get("/api/devices", params={"limit": 1000}, headers=auth(seeded))
            items = r.json()["items"]
            return len(items) == seeded.devices and all(d["online"] for d in items)

        await until(all_reported, "every device online")
        first = (await lamps(client, seeded))[0]
        values = await until(lambda: lamp_report(client, seeded, first["id"]), "lamp readings")
    # at 21:00 in January the photocell has the lamps on, drawing their rated power
    assert values["on"] is True
    assert 60 < values["power"] < 170
    assert values["energy"] > 0


async def test_a_dim_command_through_the_api_lowers_the_lamps_power(
    platform: Platform, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    async with running(platform, seeded):
        lamp = (await lamps(client, seeded))[0]

        async def lit() -> dict[str, Any] | None:
            values = await latest(client, seeded, lamp["id"])
            return values if values.get("dim") == 100 else None

        before = await until(lit, "the lamp at full power")
        r = await client.post(
            f"/api/devices/{lamp['id']}/rpc",
            json={"method": "setDim", "params": {"level": 20}, "timeout": 5000},
            headers=auth(seeded),
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "succeeded"
        assert r.json()["response"] == {"on": True, "dim": 20}

        async def dimmed() -> dict[str, Any] | None:
            values = await latest(client, seeded, lamp["id"])
            return values if values.get("dim") == 20 else None

        after = await until(dimmed, "the lamp reporting dim 20")
    assert after["power"] < 0.4 * before["power"]
    assert after["energy"] >= before["energy"]


async def test_an_unknown_method_fails_the_command_with_the_devices_reason(
    platform: Platform, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    async with running(platform, seeded):
        lamp = (await lamps(client, seeded))[0]
        await until(lambda: lamp_report(client, seeded, lamp["id"]), "lamp readings")
        r = await client.post(
            f"/api/devices/{lamp['id']}/rpc",
            json={"method": "selfDestruct", "timeout": 5000},
            headers=auth(seeded),
        )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "failed"
    assert "selfDestruct" in r.json()["error"]


async def test_a_fault_injected_at_rate_one_shows_up(
    platform: Platform, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    # one simulated hour per report: at rate 1 per device-hour every lamp fails at once
    faults = FaultRates.parse(["none", "lamp_failure=1"])
    async with running(platform, seeded, speed=3600 / 0.2, faults=faults) as sim:
        lamp = (await lamps(client, seeded))[0]

        async def failed() -> dict[str, Any] | None:
            values = await latest(client, seeded, lamp["id"])
            return values if values.get("on") and values.get("power", 99) < 3 else None

        await until(failed, "the lamp switched on but dark")
    assert sim.stats.faults["lamp_failure"] >= 1


async def test_a_gateway_cut_off_at_once_first_reports_every_device_it_carries(
    platform: Platform, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    # The step is due at once, before the pole's first report (its phase in a 2 s interval):
    # cut off then, the platform would never learn which devices go dark with it.
    cut = [Step(0, Event.GATEWAY_OFFLINE, for_s=3600)]
    async with running(platform, seeded, interval=2.0, scenario=cut) as sim:
        [cue] = sim.cues
        names = {d.name for p in sim.fleet.poles if p.code == cue.pole for d in p.devices}

        async def dark() -> list[dict[str, Any]] | None:
            r = await client.get("/api/devices", params={"limit": 1000}, headers=auth(seeded))
            mine = [d for d in r.json()["items"] if d["name"] in names]
            return mine if mine and not any(d["online"] for d in mine) else None

        async def reported_then_dark() -> bool:
            mine = await dark()
            if mine is None:
                return False
            values = [await latest(client, seeded, d["id"]) for d in mine]
            return all(v.get("online") is False and len(v) > 1 for v in values)

        await until(reported_then_dark, "every device of the cut pole reported, then offline")
    assert len(names) >= 2
    assert sim.stats.faults["gateway_offline"] == 1
