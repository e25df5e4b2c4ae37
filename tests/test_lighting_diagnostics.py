"""Lamp diagnostics (#15 L5): each diagnosis on its fault, none on a healthy lamp, clears, the
day burner by the sun of the lamp's own place and season, and one end to end over MQTT."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from fixtures_api import City, make_device, make_pole
from mqtt_client import V5, Device
from smartpole.app import Platform
from smartpole.lighting.astro import night_of
from smartpole.lighting.diagnostics import (
    BurnHours,
    Diagnosis,
    DiagnosisEvent,
    DiagnosticSettings,
    LampDiagnostics,
    LampFacts,
    burn_hours_forecast,
    burn_rate,
    is_daylight,
)
from smartpole.lighting.lamp_watch import RegistryLampFacts
from smartpole.model.lifecycle import Severity
from smartpole.model.types import Scope, Value
from smartpole.sim.environment import District
from smartpole.sim.physics import Lamp, Site

TZ = "Asia/Shanghai"
SHANGHAI = ZoneInfo(TZ)
LAT, LON = 22.54, 114.05  # Shenzhen, Futian
MIN = 60_000
FACTS = LampFacts(
    device_id=1, tenant_id=1, pole_id=1, lat=LAT, lon=LON, tz=TZ, rated_w=90.0, min_w=9.0
)


def at(y: int, m: int, d: int, h: int, mi: int = 0) -> int:
    """A local Shenzhen time as UTC ms."""
    return int(dt.datetime(y, m, d, h, mi, tzinfo=SHANGHAI).timestamp() * 1000)


def feed(
    diag: LampDiagnostics,
    reports: Iterable[tuple[int, Mapping[str, Value]]],
    facts: LampFacts = FACTS,
) -> list[DiagnosisEvent]:
    """Every report through the diagnostics; the events in order."""
    return [e for ts, values in reports for e in diag.observe(facts, ts, values)]


def steady(start: int, minutes: int, **values: Value) -> list[tuple[int, Mapping[str, Value]]]:
    """The same report every minute for ``minutes`` minutes."""
    return [(start + i * MIN, values) for i in range(minutes)]


def raised(events: list[DiagnosisEvent]) -> list[Diagnosis]:
    return [e.diagnosis for e in events if e.change == "raised"]


def healthy_power(level: float, rated_w: float = 90.0) -> float:
    led = rated_w * level / 100
    return round(led + 3 + 0.07 * led, 2)


NIGHT = at(2026, 3, 10, 22)
NOON = at(2026, 3, 10, 12)


# -- the simulator's lamp: healthy for three days, then each fault --------------------------


def simulate(fault: str | None, days: float, start: int, step_s: int = 60) -> list[DiagnosisEvent]:
    """A simulated 90 W lamp reporting every ``step_s``; ``fault`` injected at the start."""
    district = District(7, LAT, LON)
    lamp = Lamp("lamp-1", 7, Site(height_m=10.0))
    diag = LampDiagnostics()
    events: list[DiagnosisEvent] = []
    t0 = start / 1000
    for i in range(int(days * 86_400 / step_s)):
        amb = district.at(t0 + i * step_s)
        if fault is not None and i == 0:
            assert lamp.inject(fault, amb)
        report = lamp.report(amb)
        events += diag.observe(FACTS, int(amb.t * 1000), report)
    return events


def test_a_healthy_simulated_lamp_raises_nothing_through_dusk_dawn_and_midnight_dimming() -> None:
    assert simulate(None, 3, NOON) == []


@pytest.mark.parametrize(
    ("fault", "diagnosis"),
    [
        pytest.param("lamp_failure", Diagnosis.LAMP_FAILURE, id="lamp_failure"),
        pytest.param("day_burner", Diagnosis.DAY_BURNER, id="day_burner"),
        pytest.param("lamp_cycling", Diagnosis.LAMP_CYCLING, id="lamp_cycling"),
        pytest.param("low_power", Diagnosis.LOW_POWER, id="low_power"),
        pytest.param("gear_failure", Diagnosis.CONTROL_GEAR_FAILURE, id="gear_failure"),
    ],
)
def test_each_simulated_fault_raises_its_own_diagnosis_only(
    fault: str, diagnosis: Diagnosis
) -> None:
    events = simulate(fault, 1.5, NOON)
    assert set(raised(events)) == {diagnosis}


# -- each diagnosis: raise, hold, clear ------------------------------------------------------


def test_lamp_failure_raises_after_five_minutes_on_at_no_power_and_clears_when_repaired() -> None:
    diag = LampDiagnostics()
    dead = steady(NIGHT, 7, on=True, dim=100, power=1.5)
    events = feed(diag, dead)
    assert [(e.change, e.diagnosis, e.ts) for e in events] == [
        ("raised", Diagnosis.LAMP_FAILURE, NIGHT + 5 * MIN)
    ]
    fixed = steady(NIGHT + 7 * MIN, 10, on=True, dim=100, power=healthy_power(100))
    events = feed(diag, fixed)
    assert [(e.change, e.ts) for e in events] == [("cleared", NIGHT + 12 * MIN)]


def test_a_lamp_switched_off_with_no_power_is_no_failure() -> None:
    diag = LampDiagnostics()
    assert feed(diag, steady(NIGHT, 30, on=False, dim=100, power=0.4)) == []
    assert feed(diag, steady(NIGHT + 30 * MIN, 30, on=True, dim=0, power=0.4)) == []


@pytest.mark.parametrize(
    ("month", "burner"),
    [
        pytest.param(6, True, id="june-before-sunset"),
        pytest.param(12, False, id="december-after-sunset"),
    ],
)
def test_day_burner_follows_the_season_at_the_lamp(month: int, burner: bool) -> None:
    sunset = night_of(LAT, LON, TZ, dt.date(2026, month, 21)).sunset
    local = dt.datetime.fromtimestamp(sunset / 1000, SHANGHAI)
    # The premise: Shenzhen's sun sets near 19:11 in June and 17:42 in December.
    assert (local.hour, local.minute // 10) == ((19, 1) if month == 6 else (17, 4))
    diag = LampDiagnostics()
    events = feed(diag, steady(at(2026, month, 21, 18, 10), 21, on=True, dim=100, power=99.3))
    assert raised(events) == ([Diagnosis.DAY_BURNER] if burner else [])


@pytest.mark.parametrize(
    ("commanded", "burner"),
    [
        pytest.param(100.0, False, id="held-by-its-plan"),
        pytest.param(0.0, True, id="plan-says-off"),
        pytest.param(None, True, id="no-plan"),
    ],
)
def test_a_lamp_its_plan_lights_by_day_is_no_day_burner(
    commanded: float | None, burner: bool
) -> None:
    diag = LampDiagnostics()
    noon = at(2026, 6, 21, 12)
    reports = steady(noon, 20, on=True, dim=100, power=99.3)
    events = [e for ts, v in reports for e in diag.observe(FACTS, ts, v, commanded)]
    assert raised(events) == ([Diagnosis.DAY_BURNER] if burner else [])


def test_a_diagnosis_whose_alarm_was_not_written_is_made_again_by_the_next_report() -> None:
    diag = LampDiagnostics()
    noon = at(2026, 6, 21, 12)
    [event] = feed(diag, steady(noon, 16, on=True, dim=100, power=99.3))
    assert (event.change, event.diagnosis) == ("raised", Diagnosis.DAY_BURNER)
    diag.retry(event)  # the alarm store refused it
    again = feed(diag, [(noon + 16 * MIN, {"on": True, "dim": 100, "power": 99.3})])
    assert [(e.change, e.diagnosis) for e in again] == [("raised", Diagnosis.DAY_BURNER)]


def test_day_burner_clears_at_nightfall_and_when_switched_off() -> None:
    diag = LampDiagnostics()
    burn = at(2026, 6, 21, 10)
    assert raised(feed(diag, steady(burn, 16, on=True, dim=100, power=99.3))) == [
        Diagnosis.DAY_BURNER
    ]
    off = feed(diag, [(burn + 20 * MIN, {"on": False, "dim": 100, "power": 0.4})])
    assert [(e.change, e.diagnosis) for e in off] == [("cleared", Diagnosis.DAY_BURNER)]


def test_daylight_is_sunrise_to_sunset_at_the_lamps_own_position() -> None:
    kashgar = LampFacts(2, 1, None, 39.47, 75.99, TZ)  # China's one clock, two hours west
    eight = at(2026, 1, 15, 8, 30)
    assert is_daylight(FACTS, eight) is True  # Shenzhen: the sun rose at about 07:10
    assert is_daylight(kashgar, eight) is False  # Kashgar: it rises after 09:30


def test_cycling_raises_on_three_on_off_cycles_in_an_hour_and_clears_when_steady() -> None:
    diag = LampDiagnostics()
    reports = []
    for i in range(40):  # lit 6 minutes, dark 4
        lit = i % 10 < 6
        reports.append((NIGHT + i * MIN, {"on": True, "dim": 100, "power": 99.3 if lit else 1.5}))
    assert raised(feed(diag, reports)) == [Diagnosis.LAMP_CYCLING]
    events = feed(diag, steady(NIGHT + 40 * MIN, 90, on=True, dim=100, power=99.3))
    assert [(e.change, e.diagnosis) for e in events] == [("cleared", Diagnosis.LAMP_CYCLING)]


def test_switching_twice_an_hour_is_no_cycling() -> None:
    diag = LampDiagnostics()
    reports = [
        (NIGHT + i * MIN, {"on": i % 30 < 20, "dim": 100, "power": 99.3 if i % 30 < 20 else 0.4})
        for i in range(60)
    ]
    assert feed(diag, reports) == []


@pytest.mark.parametrize(
    ("level", "power", "weak"),
    [
        pytest.param(100, 55.0, True, id="full-at-55-percent"),
        pytest.param(50, 25.0, True, id="half-at-55-percent"),
        pytest.param(100, healthy_power(100), False, id="full-healthy"),
        pytest.param(50, healthy_power(50), False, id="dimmed-healthy"),
        pytest.param(5, 9.5, False, id="below-min-wattage-draws-the-minimum"),
    ],
)
def test_low_power_is_measured_against_the_level_rated_power_and_minimum_wattage(
    level: int, power: float, weak: bool
) -> None:
    diag = LampDiagnostics()
    events = feed(diag, steady(NIGHT, 20, on=True, dim=level, power=power))
    assert raised(events) == ([Diagnosis.LOW_POWER] if weak else [])


def test_low_power_clears_when_the_lamp_draws_its_share_again() -> None:
    diag = LampDiagnostics()
    assert raised(feed(diag, steady(NIGHT, 16, on=True, dim=100, power=50.0))) == [
        Diagnosis.LOW_POWER
    ]
    events = feed(diag, steady(NIGHT + 16 * MIN, 6, on=True, dim=100, power=healthy_power(100)))
    assert [(e.change, e.diagnosis) for e in events] == [("cleared", Diagnosis.LOW_POWER)]


def test_low_power_needs_a_rated_power() -> None:
    unknown = LampFacts(1, 1, 1, LAT, LON, TZ)
    assert feed(LampDiagnostics(), steady(NIGHT, 30, on=True, dim=100, power=40.0), unknown) == []


def test_a_fade_up_is_not_low_power_while_the_power_follows() -> None:
    diag = LampDiagnostics(DiagnosticSettings(low_power_hold_s=0))
    reports: list[tuple[int, Mapping[str, Value]]] = list(
        steady(NIGHT, 5, on=True, dim=30, power=healthy_power(30))
    )
    # A 90-second fade from 30 % to 100 %: the level jumps, the power follows.
    ts = NIGHT + 5 * MIN
    for i, p in enumerate((healthy_power(30), 50.0, 80.0, healthy_power(100))):
        reports.append((ts + i * 30_000, {"on": True, "dim": 100, "power": p}))
    reports += steady(ts + 2 * MIN, 20, on=True, dim=100, power=healthy_power(100))
    assert feed(diag, reports) == []


def test_control_gear_failure_is_power_while_reported_off_and_clears_when_it_stops() -> None:
    diag = LampDiagnostics()
    events = feed(diag, steady(NOON, 11, on=False, dim=100, power=99.3))
    assert [(e.change, e.diagnosis, e.ts) for e in events] == [
        ("raised", Diagnosis.CONTROL_GEAR_FAILURE, NOON + 10 * MIN)
    ]
    events = feed(diag, steady(NOON + 11 * MIN, 6, on=False, dim=100, power=0.4))
    assert [(e.change, e.diagnosis) for e in events] == [
        ("cleared", Diagnosis.CONTROL_GEAR_FAILURE)
    ]


def test_power_lagging_a_switch_off_at_dawn_is_no_gear_failure() -> None:
    diag = LampDiagnostics()
    dawn = at(2026, 3, 11, 6, 20)
    reports: list[tuple[int, Mapping[str, Value]]] = [
        (dawn, {"on": True, "dim": 60, "power": healthy_power(60)}),
        (dawn + MIN, {"on": False, "dim": 60, "power": healthy_power(60)}),  # not yet dark
        *steady(dawn + 2 * MIN, 30, on=False, dim=60, power=0.4),
    ]
    assert feed(diag, reports) == []


def test_a_late_stale_reading_does_not_reset_a_hold() -> None:
    diag = LampDiagnostics()
    dead = steady(NIGHT, 6, on=True, dim=100, power=1.5)
    stale = (NIGHT - 30 * MIN, {"on": True, "dim": 100, "power": 99.3})
    events = feed(diag, [*dead[:3], stale, *dead[3:]])
    assert raised(events) == [Diagnosis.LAMP_FAILURE]


def test_buffered_readings_delivered_late_raise_at_their_own_times() -> None:
    diag = LampDiagnostics(DiagnosticSettings(failure_hold_s=120))
    held = [(NIGHT + i * 20_000, {"on": True, "dim": 100, "power": 1.5}) for i in range(8)]
    events = feed(diag, held)  # all at once, an hour later: the times are the readings'
    assert [e.ts for e in events] == [NIGHT + 120_000]


# -- burn hours against rated life -----------------------------------------------------------


def test_burn_hours_forecast_counts_replacements_per_road_and_year() -> None:
    today = dt.date(2026, 12, 6)
    lamps = [
        BurnHours(1, "深南大道", "福田区", hours=51_000),  # past its 50,000 h
        BurnHours(2, "深南大道", "福田区", hours=50_000 - 11.5 * 100),  # 100 nights left
        BurnHours(3, "深南大道", "福田区", hours=10_000),
        BurnHours(4, "红荔路", "福田区", hours=1_000, rated_life_h=100_000),
    ]
    roads = {r.road: r for r in burn_hours_forecast(lamps, today=today, horizon_years=20)}
    shennan, hongli = roads["深南大道"], roads["红荔路"]
    assert (shennan.road, shennan.lamps, shennan.due_now, shennan.next_due) == (
        "深南大道",
        3,
        1,
        today,
    )
    second = today + dt.timedelta(days=100)
    assert shennan.by_year[0] == (second.year, 1)
    assert sum(n for _, n in shennan.by_year) == 2
    assert hongli.due_now == 0
    assert hongli.mean_life_used == 0.01
    assert hongli.next_due is not None
    assert hongli.next_due.year > 2046


def test_a_lamp_due_beyond_the_horizon_keeps_its_real_date_but_counts_in_no_year() -> None:
    today = dt.date(2026, 3, 10)
    lamp = BurnHours(1, "Binhe", "Futian", hours=10_000, rated_life_h=60_000)
    [binhe] = burn_hours_forecast([lamp], today=today, horizon_years=10)
    assert binhe.by_year == ()
    assert binhe.next_due == today + dt.timedelta(days=50_000 / 11.5)


DAY_MS = 86_400_000


@pytest.mark.parametrize(
    ("earlier", "latest", "rate"),
    [
        pytest.param((0, 1_000.0), (10 * DAY_MS, 1_120.0), 12.0, id="twelve-hours-a-night"),
        pytest.param((0, 1_000.0), (DAY_MS // 2, 1_006.0), None, id="under-a-day-apart"),
        pytest.param((0, 40_000.0), (30 * DAY_MS, 300.0), None, id="reset-by-a-new-lamp"),
        pytest.param((0, 1_000.0), (30 * DAY_MS, 1_000.0), None, id="a-stuck-counter"),
        pytest.param((0, 1_000.0), (DAY_MS, 1_030.0), None, id="more-than-a-day-has"),
        pytest.param(None, (DAY_MS, 1_030.0), None, id="one-reading"),
    ],
)
def test_a_burn_rate_comes_only_from_hours_growing_by_at_most_a_day_a_day(
    earlier: tuple[int, float] | None, latest: tuple[int, float], rate: float | None
) -> None:
    assert burn_rate(earlier, latest) == rate


# -- end to end: a lamp over MQTT, its alarm and its work order ------------------------------


async def test_a_dead_lamp_over_mqtt_raises_lamp_failure_and_opens_its_work_order(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    pole_id = await make_pole(client, city, "FT-L5-0001", lat=LAT, lon=LON, road="深南大道")
    lamp = await make_device(client, city, "lighting", "lamp", pole_id)
    device = Device(platform.mqtt[0].mqtt_port, lamp["token"], V5, client_id="lamp-l5")
    assert await device.connect() == 0
    try:
        reports = [
            {"ts": NIGHT + i * 30_000, "values": {"on": True, "dim": 100, "power": 1.4}}
            for i in range(12)
        ]
        await device.publish("v1/devices/me/telemetry", reports)
    finally:
        await device.close()
    await platform.pipeline.drain()
    await platform.lamp_watch.drain()
    await platform.hub.settle()
    r = await client.get("/api/alarms", headers=city.auth("lighting"))
    [alarm] = [a for a in r.json() if a["type"] == "lamp_failure"]
    assert (alarm["originator_id"], alarm["severity"], alarm["pole_id"]) == (
        lamp["id"],
        "major",
        pole_id,
    )
    assert alarm["details"]["since"] == NIGHT
    r = await client.get("/api/work-orders", headers=city.auth("lighting"))
    orders: list[dict[str, Any]] = r.json()["items"]
    assert [o["alarm_id"] for o in orders] == [alarm["id"]]


async def test_a_diagnosis_raised_before_a_restart_clears_when_its_fault_is_gone(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    pole_id = await make_pole(client, city, "FT-L5-0002", lat=LAT, lon=LON)
    lamp = await make_device(client, city, "lighting", "lamp", pole_id)
    before = await platform.hub.alarms.raise_alarm(
        tenant_id=city.ids["lighting"],
        originator_type="device",
        originator_id=lamp["id"],
        type="day_burner",
        severity=Severity.MINOR,
        ts=NOON - 60 * MIN,
    )
    body = {"ts": NOON, "values": {"on": False, "dim": 100, "power": 0.4}}
    r = await client.post(f"/api/v1/{lamp['token']}/telemetry", json=body)
    assert r.status_code == 200, r.text
    await platform.pipeline.drain()
    await platform.lamp_watch.drain()
    after = platform.hub.alarms.get(before.id)
    assert after is not None
    assert after.status == "cleared_unack"


async def test_lamp_facts_come_from_the_pole_and_the_rating_attributes(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    pole_id = await make_pole(client, city, "FT-L5-0003", lat=22.6, lon=114.1, road="红荔路")
    lamp = await make_device(client, city, "lighting", "lamp", pole_id)
    air = await make_device(client, city, "lighting", "air", pole_id)
    platform.assets.set_attributes(lamp["id"], Scope.SERVER, {"rated_power": 120})
    platform.assets.set_attributes(lamp["id"], Scope.CLIENT, {"min_power": 12.5})
    lookup = RegistryLampFacts(platform.db.engine, platform.tenants.zone)
    facts = lookup(None, lamp["id"])
    assert facts == LampFacts(
        device_id=lamp["id"],
        tenant_id=city.ids["lighting"],
        pole_id=pole_id,
        lat=22.6,
        lon=114.1,
        tz=TZ,
        rated_w=120.0,
        min_w=12.5,
        road="红荔路",
        district="Futian",
    )
    assert lookup(city.ids["telecom"], lamp["id"]) is None  # not that tenant's lamp
    assert lookup(None, air["id"]) is None  # no lamp
