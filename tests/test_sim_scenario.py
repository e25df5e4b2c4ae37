"""The demo's scenario: a timeline bound to the fleet's poles, whose events the default rules see.

The held-back readings of the lamp failure and the day burner go through the real HTTP device
API into a platform running the city's default rules, at four hours of the day: whenever a
newcomer starts the demo, those alarms are raised.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from fixtures_api import City, make_device, make_pole
from smartpole.app import Platform
from smartpole.model.types import DeviceKind
from smartpole.sim.district import plan_district
from smartpole.sim.environment import District
from smartpole.sim.faults import FaultRates
from smartpole.sim.fleet import Fleet, FleetDevice, FleetPole, PoleSim, fleet_from_plan
from smartpole.sim.scenario import DEMO, KIND, Cue, Event, Step, by_time, cast, play, play_history

SHANGHAI = ZoneInfo("Asia/Shanghai")
LAT, LON = 22.54, 114.05


def district_fleet(poles: int) -> Fleet:
    plan = plan_district(poles, 1, "Futian", None, None)
    tokens = {f"{p.code}-{d.kind}": f"t-{p.code}-{d.kind}" for p in plan for d in p.devices}
    return fleet_from_plan(plan, tokens, 1, "Futian")


def test_each_step_gets_its_own_pole_with_the_device_it_needs() -> None:
    fleet = district_fleet(60)
    cues, left = cast(DEMO, fleet)
    assert left == []
    assert [c.step for c in cues] == list(DEMO)
    assert len({c.pole for c in cues}) == len(DEMO)
    kinds = {d.name: d.kind for p in fleet.poles for d in p.devices}
    assert all(kinds[c.device] == KIND[c.step.event] for c in cues)


def test_a_step_no_pole_can_take_is_left_out() -> None:
    lamps_only = Fleet(
        1,
        "Futian",
        [
            FleetPole(
                f"P-{i}",
                LAT,
                LON,
                10,
                [
                    FleetDevice(f"P-{i}-gateway", "gateway", None, "g"),
                    FleetDevice(f"P-{i}-lamp", "lamp", 1, "l"),
                ],
            )
            for i in range(3)
        ],
    )
    cues, left = cast(DEMO, lamps_only)
    assert {c.step.event for c in cues} == {
        Event.LAMP_FAILURE,
        Event.DAY_BURNER,
        Event.GATEWAY_OFFLINE,
    }
    assert {s.event for s in left} == {Event.SOS, Event.FLOOD}


def test_live_steps_play_in_time_order_and_history_steps_at_the_first_report() -> None:
    fleet = district_fleet(60)
    steps = (Step(30, Event.SOS), Step(20, Event.FLOOD), Step(40, Event.LAMP_FAILURE))
    cues, _ = cast(steps, fleet)
    assert [c.step.event for c in by_time(cues)] == [Event.FLOOD, Event.SOS]


def test_a_flood_step_raises_the_water_past_the_flood_mark_at_once() -> None:
    fleet = district_fleet(60)
    [cue], _ = cast([Step(10, Event.FLOOD)], fleet)
    ps = pole_sim(fleet, cue)
    t = datetime(2026, 6, 1, 12, tzinfo=SHANGHAI).timestamp()
    ps.tick(t)
    assert play(ps, cue, t + 10)
    [report] = ps.report_now(cue.device, t + 10)
    assert report["values"]["flooded"] is True
    assert float(report["values"]["water_level"]) >= 35


def test_a_gateway_offline_step_cuts_the_pole_off_for_its_duration() -> None:
    fleet = district_fleet(60)
    [cue], _ = cast([Step(15, Event.GATEWAY_OFFLINE, for_s=90)], fleet)
    ps = pole_sim(fleet, cue)
    t = datetime(2026, 6, 1, 12, tzinfo=SHANGHAI).timestamp()
    assert not play(ps, cue, t)  # the runner drops the connection
    assert ps.pole_away(t + 89)
    assert not ps.pole_away(t + 90)


def pole_sim(fleet: Fleet, cue: Cue) -> PoleSim:
    pole = next(p for p in fleet.poles if p.code == cue.pole)
    return PoleSim(pole, fleet.seed, District(fleet.seed), FaultRates.parse(["none"]))


@pytest.mark.parametrize("hour", [3, 9, 15, 21], ids=lambda h: f"{h:02d}h")
async def test_held_back_readings_raise_the_lamp_alarms_whenever_the_demo_starts(
    platform: Platform, client: httpx.AsyncClient, city: City, hour: int
) -> None:
    now = datetime(2026, 3, 10, hour, 7, tzinfo=SHANGHAI).timestamp()
    for event in (Event.LAMP_FAILURE, Event.DAY_BURNER):
        pole_id = await make_pole(client, city, f"P-{event}", lat=LAT, lon=LON)
        lamp = await make_device(client, city, "lighting", "lamp", pole_id)
        gateway = FleetDevice(f"P-{event}-gateway", str(DeviceKind.GATEWAY), None, "-")
        device = FleetDevice(lamp["name"], "lamp", 1, lamp["token"])
        pole = FleetPole(f"P-{event}", LAT, LON, 10, [gateway, device])
        ps = PoleSim(pole, 1, District(1, LAT, LON), FaultRates.parse(["none"]))
        play_history(ps, Cue(Step(0, event), pole.code, device.name), now)
        held = ps.tick(now).telemetry[device.name]  # the first report carries the history
        r = await client.post(f"/api/v1/{lamp['token']}/telemetry", json=held)
        assert r.status_code == 200, r.text
    await settle(platform)
    await platform.hub.tick(int(now * 1000))  # the timer, at the moment the demo started
    await platform.hub.settle()
    r = await client.get("/api/alarms", headers=city.auth("lighting"))
    raised = {a["type"]: a for a in r.json()}
    assert raised["lamp_failure"]["status"] == "active_unack"  # latched: day or night
    day = 9 <= hour < 17
    assert raised["day_burner"]["status"] == ("active_unack" if day else "cleared_unack")


async def settle(platform: Platform) -> None:
    """Wait until every upload so far is committed, evaluated and acted on."""
    await platform.pipeline.drain()
    await platform.hub.settle()
    await platform.lamp_watch.drain()
    await asyncio.sleep(0)
