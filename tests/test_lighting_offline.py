"""An override that ends while its gateway is offline: the simulator's gateway, connected over
MQTT, follows the compiled plan it was pushed and hands its lamp back to the program at the
override's end on its own (at accelerated simulated time, as in ``test_lighting_push``)."""

from __future__ import annotations

import asyncio
import datetime as dt
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from smartpole.app import Platform
from smartpole.lighting.calendar import Calendar
from smartpole.lighting.plan import compile_plans
from smartpole.lighting.push import gateway_plans
from smartpole.model.gateway_plan import PLAN_ATTRIBUTE, plan_attribute, plan_level
from smartpole.model.lighting import (
    CalendarEntry,
    Group,
    Lamp,
    Override,
    Program,
    Selector,
    Step,
    TimeSpec,
    Weekdays,
)
from smartpole.sim.faults import FaultRates
from smartpole.sim.fleet import fleet_from_plan
from smartpole.sim.runner import SimOptions, Simulator
from smartpole.sim.seed import Seeded, seed_district

MIN_MS = 60_000
SHENZHEN = timezone(timedelta(hours=8))
EVENING = datetime(2025, 1, 15, 21, 0, tzinfo=SHENZHEN).timestamp()
PROGRAM_LEVEL = 60.0
OVERRIDE_LEVEL = 20.0
ALL_NIGHT = Program(
    "all-night",
    (Step(TimeSpec.parse("sunset"), PROGRAM_LEVEL), Step(TimeSpec.parse("sunrise"), 0)),
)


@pytest.fixture
def seeded(platform: Platform) -> Seeded:
    return seed_district(platform.tenants, platform.assets, 2, seed=3)


async def until(check: Any, what: str, tries: int = 400) -> Any:
    """Poll ``check`` (bounded) until it answers something true; that answer."""
    for _ in range(tries):
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def compiled(lamp: str, gateway: str, now: int, override_ends: int) -> Any:
    """``lamp``'s gateway plan: the program all night, overridden from ``now`` to
    ``override_ends``."""
    fleet = [Lamp(lamp, pole=gateway, gateway=gateway, lat=22.54, lon=114.06, tz="Asia/Shanghai")]
    hold = Override("road-works", "city", OVERRIDE_LEVEL, override_ends, start_ms=now)
    plans = compile_plans(
        fleet,
        [Group("city", Selector())],
        {ALL_NIGHT.name: ALL_NIGHT},
        Calendar([CalendarEntry("all", ALL_NIGHT.name, "city", Weekdays(frozenset(range(7))))]),
        [hold],
        dt.date(2025, 1, 15),
        2,
    )
    return gateway_plans(plans, lambda lamp_id: gateway, now)[gateway]


async def test_an_override_that_ends_while_the_gateway_is_offline_ends_on_the_gateway(
    platform: Platform, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    headers = {"Authorization": f"Bearer {seeded.keys['city']['admin']}"}
    r = await client.get("/api/devices", params={"limit": 100}, headers=headers)
    ids = {d["name"]: d["id"] for d in r.json()["items"]}
    code = seeded.plan[0].code
    gateway, lamp = f"{code}-gateway", f"{code}-lamp"
    fleet = fleet_from_plan(seeded.plan, seeded.tokens, 3, "Futian")
    opts = SimOptions(  # a 0.2 s report interval is 4 simulated minutes
        mqtt_port=platform.mqtt[0].mqtt_port, interval=0.2, start=EVENING, speed=1200.0
    )
    sim = Simulator(fleet, opts, FaultRates.parse(["none"]))
    task = asyncio.create_task(sim.run())
    try:

        async def latest() -> dict[str, Any]:
            r = await client.get(f"/api/devices/{ids[lamp]}/latest", headers=headers)
            return dict(r.json())

        await until(latest, "the lamp reporting")
        (ps,) = [p for p in sim.poles if p.pole.code == code]
        assert ps.gateway is not None
        now = int(sim.now() * 1000)
        ends = now + 20 * MIN_MS
        plan = compiled(lamp, gateway, now, ends)
        r = await client.post(
            f"/api/devices/{ids[gateway]}/attributes/shared",
            json={PLAN_ATTRIBUTE: plan_attribute(plan)},
            headers=headers,
        )
        assert r.status_code == 200, r.text

        async def stored() -> bool:
            return ps.gateway is not None and ps.gateway.plan is not None

        await until(stored, "the gateway holding its plan")
        cut = sim.now()
        ps.pole_away_until = cut + 30 * 60  # the link is down for 30 simulated minutes

        async def back() -> Any:
            dim = (await latest()).get("dim", {})
            return dim if dim.get("ts", 0) > (cut + 35 * 60) * 1000 else None

        after = await until(back, "a report after the outage")
        r = await client.get(
            f"/api/devices/{ids[lamp]}/timeseries",
            params={"keys": "dim", "start": int(cut * 1000), "end": after["ts"] + 1},
            headers=headers,
        )
        during = r.json()["dim"]
    finally:
        sim.stop()
        await task
    cut_ms, back_ms = int(cut * 1000), int((cut + 30 * 60) * 1000)
    assert cut_ms < ends < back_ms, "the override must end during the outage"
    steps = plan.lamps[lamp]
    offline = [p for p in during if p["ts"] < back_ms]
    held = [p["value"] for p in offline if p["ts"] < ends - MIN_MS]
    released = [p["value"] for p in offline if p["ts"] > ends + MIN_MS]
    assert held, "no report kept from before the override's end"
    assert released, "no report kept from after the override's end"
    for value in held:
        assert abs(value - OVERRIDE_LEVEL) <= 1, held
    for value in released:
        assert abs(value - PROGRAM_LEVEL) <= PROGRAM_LEVEL / 100, released
    for point in during:
        assert abs(point["value"] - plan_level(steps, point["ts"])) <= 1, point
