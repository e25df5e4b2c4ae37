"""Plans on the gateways: the ``lightingPlan`` attribute's shape and size, pushing it when plans
change and before it runs out, timed commands for lamps without a gateway, the simulator's
gateway following its plan offline (and forgetting it: ``lost_plan``), and out-of-program
alarms."""

from __future__ import annotations

import asyncio
import datetime as dt
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import orjson
import pytest

from smartpole.app import Platform
from smartpole.errors import StoreUnavailable
from smartpole.hub.alarms.store import Alarms
from smartpole.lighting.calendar import Calendar
from smartpole.lighting.conformance import ALARM_TYPE, Conformance, LampRef
from smartpole.lighting.plan import Plan, compile_plans, level_at
from smartpole.lighting.push import PlanPusher, TimedCommands, command_sender, gateway_plans
from smartpole.model.clock import now_ms
from smartpole.model.commands import CommandStatus
from smartpole.model.gateway_plan import (
    PLAN_ATTRIBUTE,
    GatewayPlan,
    plan_attribute,
    plan_level,
    read_plan_attribute,
)
from smartpole.model.lighting import (
    CalendarEntry,
    Cap,
    Group,
    Lamp,
    PlanStep,
    Program,
    Reason,
    Selector,
    Step,
    TimeSpec,
    Weekdays,
)
from smartpole.model.types import Reading
from smartpole.model.writes import WriteBatch
from smartpole.registry.access import Tenants
from smartpole.sim.environment import District
from smartpole.sim.faults import FaultRates
from smartpole.sim.fleet import FleetDevice, FleetPole, PoleSim, fleet_from_plan
from smartpole.sim.physics import Lamp as SimLamp
from smartpole.sim.runner import SimOptions, Simulator
from smartpole.sim.seed import Seeded, seed_district
from smartpole.store import Database

DAY_MS = 86_400_000
MQTT_LIMIT = 48_000  # the simulator's largest PUBLISH, under the platform's 64 KiB
MIN_MS = 60_000
EVENING = datetime(2025, 1, 15, 21, 0, tzinfo=timezone(timedelta(hours=8))).timestamp()
T0 = int(EVENING * 1000)
NIGHTLY = Program(
    "nightly",
    (
        Step(TimeSpec.parse("sunset"), 100, 60),
        Step(TimeSpec.parse("22:00"), 80, 300),
        Step(TimeSpec.parse("virtual_midnight-60"), 50, 600),
        Step(TimeSpec.parse("04:30"), 70, 300),
        Step(TimeSpec.parse("civil_dawn"), 40),
        Step(TimeSpec.parse("sunrise"), 0),
    ),
)


def lamps(n: int, gateways: int = 1, distinct: bool = False) -> list[Lamp]:
    """``n`` Shenzhen lamps on ``gateways`` gateways; ``distinct``: each with its own cap, so
    no two share a plan (the largest attribute)."""
    return [
        Lamp(
            f"FT-{i:04d}-lamp",
            pole=f"FT-{i:04d}",
            gateway=f"GW-{i % gateways}",
            lat=22.54,
            lon=114.06,
            tz="Asia/Shanghai",
            cap=Cap(maintenance=round(0.99 - i / 100, 2)) if distinct else Cap(),
        )
        for i in range(n)
    ]


def compile_for(fleet: list[Lamp], nights: int, first: dt.date = dt.date(2026, 3, 2)) -> Any:
    return compile_plans(
        fleet,
        [Group("city", Selector())],
        {"nightly": NIGHTLY},
        Calendar([CalendarEntry("all", "nightly", "city", Weekdays(frozenset(range(7))))]),
        [],
        first,
        nights,
    )


def steps(*items: tuple[int, float, int]) -> Plan:
    return tuple(PlanStep(ts, level, fade, Reason(program="p")) for ts, level, fade in items)


# -- the attribute ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "distinct", [pytest.param(False, id="shared-plans"), pytest.param(True, id="own-plans")]
)
def test_the_plan_attribute_reads_back_as_the_same_plan_through_json(distinct: bool) -> None:
    fleet = lamps(6, gateways=2, distinct=distinct)
    plans = gateway_plans(compile_for(fleet, 3), {lamp.id: lamp.gateway for lamp in fleet}.get, T0)
    assert sorted(plans) == ["GW-0", "GW-1"]
    for name, plan in plans.items():
        wire = orjson.loads(orjson.dumps(plan_attribute(plan)))
        back = read_plan_attribute(wire, name)
        assert back == plan
        assert wire["hash"] == back.hash == plan.hash
        assert len(wire["plans"]) == (3 if distinct else 1)  # equal steps are sent once
        assert back.valid_until_ms == max(s[-1][0] for s in plan.lamps.values()) + 6 * 3_600_000


def test_a_gateway_of_50_lamps_for_7_nights_fits_one_mqtt_message() -> None:
    fleet = lamps(50, distinct=True)
    (plan,) = gateway_plans(compile_for(fleet, 7), lambda lamp: "GW-0", T0).values()
    size = len(orjson.dumps({PLAN_ATTRIBUTE: plan_attribute(plan)}))
    shared = gateway_plans(compile_for(lamps(50), 7), lambda lamp: "GW-0", T0)["GW-0"]
    shared_size = len(orjson.dumps({PLAN_ATTRIBUTE: plan_attribute(shared)}))
    assert len(plan.lamps) == 50
    assert len({*plan.lamps.values()}) == 50
    assert size < MQTT_LIMIT, f"{size} bytes with 50 different plans"
    assert shared_size < 3_000, f"{shared_size} bytes with one plan shared by 50 lamps"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param({"v": 2}, "v:", id="unknown-version"),
        pytest.param({"plans": [[[1, 120, 0]]]}, "plans[0][0]", id="level-over-100"),
        pytest.param({"plans": [[[5, 10, 0], [1, 20, 0]]]}, "time order", id="steps-backwards"),
        pytest.param({"lamps": {"L1": 3}}, "lamps.L1", id="index-out-of-range"),
        pytest.param({"validUntil": "soon"}, "validUntil", id="valid-until-not-ms"),
    ],
)
def test_a_bad_plan_attribute_is_refused_naming_where(change: dict[str, Any], problem: str) -> None:
    good = {
        "v": 1,
        "generated": 1,
        "validUntil": 9,
        "base": 1_000,
        "plans": [[[1, 50, 0]]],
        "lamps": {"L1": 0},
    }
    with pytest.raises(ValueError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        read_plan_attribute({**good, **change})


def test_the_gateway_level_is_the_platforms_level_through_a_fade() -> None:
    plan = steps((T0, 100, 0), (T0 + 10 * MIN_MS, 40, 600), (T0 + 60 * MIN_MS, 0, 0))
    wire = tuple((s.ts_ms, s.level, s.fade_s) for s in plan)
    for minute in range(-5, 70, 1):
        ts = T0 + minute * MIN_MS
        assert plan_level(wire, ts) == level_at(plan, ts)[0]


# -- pushing ----------------------------------------------------------------------------------


class Gateways:
    """The platform side of the pusher: what each gateway was sent (a real recorder, no mock)."""

    def __init__(self, delivered: bool = True) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.delivered = delivered
        self.broken: set[str] = set()  # gateways whose attributes cannot be stored

    async def set_shared(self, tenant: str, device: str, values: dict[str, Any]) -> bool:
        if device in self.broken:
            raise StoreUnavailable("database is locked")
        self.sent.append((tenant, device, values))
        return self.delivered

    def names(self) -> list[str]:
        return sorted(device for _, device, _ in self.sent)


def pusher_for(fleet: list[Lamp], plans: dict[str, Plan], out: Gateways) -> PlanPusher:
    gateway = {lamp.id: lamp.gateway for lamp in fleet}
    return PlanPusher(lambda tenant: plans, lambda tenant, lamp: gateway[lamp], out.set_shared)


async def test_only_the_gateways_of_changed_lamps_are_pushed() -> None:
    fleet = lamps(12, gateways=4)
    plans: dict[str, Plan] = dict(compile_for(fleet, 3))
    out = Gateways()
    pusher = pusher_for(fleet, plans, out)
    pusher.plans_changed("city", set(plans))
    assert sorted(await pusher.tick(T0)) == ["GW-0", "GW-1", "GW-2", "GW-3"]
    out.sent.clear()
    plans["FT-0005-lamp"] = steps((T0 + 3_600_000, 30, 0), (T0 + 2 * DAY_MS, 0, 0))
    pusher.plans_changed("city", {"FT-0005-lamp"})
    assert await pusher.tick(T0 + MIN_MS) == ["GW-1"]
    ((tenant, device, values),) = out.sent
    pushed = read_plan_attribute(values[PLAN_ATTRIBUTE], device)
    assert (tenant, device, len(pushed.lamps)) == ("city", "GW-1", 3)
    assert pushed.lamps["FT-0005-lamp"] == ((T0 + 3_600_000, 30.0, 0), (T0 + 2 * DAY_MS, 0.0, 0))
    assert await pusher.tick(T0 + 2 * MIN_MS) == []  # nothing changed since


async def test_a_gateway_that_cannot_be_pushed_neither_stops_the_others_nor_is_forgotten() -> None:
    fleet = lamps(6, gateways=3)
    plans: dict[str, Plan] = dict(compile_for(fleet, 3))
    out = Gateways()
    out.broken = {"GW-0"}
    pusher = pusher_for(fleet, plans, out)
    pusher.plans_changed("city", set(plans))
    assert sorted(await pusher.tick(T0)) == ["GW-0", "GW-1", "GW-2"]  # tried, all three
    assert out.names() == ["GW-1", "GW-2"]
    out.broken.clear()
    assert await pusher.tick(T0 + 3_600_000) == ["GW-0"]  # an hour later, again
    assert out.names() == ["GW-0", "GW-1", "GW-2"]


async def test_a_plan_is_pushed_again_before_it_runs_out() -> None:
    fleet = lamps(2)
    plans: dict[str, Plan] = {"FT-0000-lamp": steps((T0, 100, 0), (T0 + 7 * DAY_MS, 0, 0))}
    plans["FT-0001-lamp"] = plans["FT-0000-lamp"]
    out = Gateways()
    pusher = pusher_for(fleet, plans, out)
    pusher.plans_changed("city", set(plans))
    assert await pusher.tick(T0) == ["GW-0"]
    assert await pusher.tick(T0 + 4 * DAY_MS) == []  # three days left: not yet
    rolled = steps((T0, 100, 0), (T0 + 9 * DAY_MS, 0, 0))  # the service compiled on
    plans.update(dict.fromkeys(plans, rolled))
    assert await pusher.tick(T0 + 5 * DAY_MS + 7 * 3_600_000) == ["GW-0"]  # under two days
    last = read_plan_attribute(out.sent[-1][2][PLAN_ATTRIBUTE])
    assert last.valid_until_ms == T0 + 9 * DAY_MS + 6 * 3_600_000


async def test_a_push_the_gateway_did_not_get_is_tried_again_an_hour_later() -> None:
    fleet = lamps(1)
    plans: dict[str, Plan] = {"FT-0000-lamp": steps((T0, 100, 0), (T0 + 7 * DAY_MS, 0, 0))}
    out = Gateways(delivered=False)
    pusher = pusher_for(fleet, plans, out)
    pusher.plans_changed("city", set(plans))
    await pusher.tick(T0)
    assert await pusher.tick(T0 + 30 * MIN_MS) == []
    out.delivered = True
    assert await pusher.tick(T0 + 61 * MIN_MS) == ["GW-0"]
    assert await pusher.tick(T0 + 200 * MIN_MS) == []


async def test_a_lamp_without_a_gateway_gets_a_timed_dim_at_each_step_with_its_fade_left() -> None:
    plan = steps((T0, 100, 0), (T0 + 60 * MIN_MS, 50, 600), (T0 + 120 * MIN_MS, 0, 0))
    sent: list[tuple[str, float, int, int]] = []

    async def send(tenant: str, lamp: str, level: float, fade_s: int, until: int) -> None:
        sent.append((lamp, level, fade_s, until))

    timed = TimedCommands(
        lambda tenant: {"L-direct": plan, "L-behind": plan},
        lambda tenant, lamp: None if lamp == "L-direct" else "GW-0",
        send,
    )
    timed.plans_changed("city", {"L-direct", "L-behind"})
    for minute in (-1, 0, 1, 61, 62, 125):
        await timed.tick(T0 + minute * MIN_MS)
    assert sent == [
        ("L-direct", 100, 0, T0 + 60 * MIN_MS),
        ("L-direct", 50, 540, T0 + 120 * MIN_MS),  # a minute late: what is left of the fade
        ("L-direct", 0, 0, T0 + 125 * MIN_MS + DAY_MS),
    ]


async def test_timed_commands_wait_in_the_command_queue_for_an_offline_lamp_until_the_next_step(
    platform: Platform,
) -> None:
    seeded = seed_district(platform.tenants, platform.assets, 1, seed=3)
    name = f"{seeded.plan[0].code}-lamp"
    device = platform.assets.device_by_name(name)
    assert device is not None
    now = now_ms()
    plan = steps((now - 2 * MIN_MS, 60, 300), (now + 30 * MIN_MS, 20, 0))
    timed = TimedCommands(
        lambda tenant: {name: plan},
        lambda tenant, lamp: None,
        command_sender(platform.control, lambda tenant, lamp: device.id),
    )
    timed.plans_changed("city", {name})
    assert await timed.tick(now) == 1
    (queued,) = platform.control.of_device(device.id)
    assert (queued.method, queued.params) == ("setDim", {"level": 60, "fade_s": 180})
    assert (queued.status, queued.persistent, queued.oneway) == (CommandStatus.QUEUED, True, True)
    assert abs(queued.expires - (now + 30 * MIN_MS)) < 5_000


# -- the simulator's gateway ------------------------------------------------------------------


def pole_sim(faults: FaultRates | None = None) -> PoleSim:
    pole = FleetPole(
        "FT-0001",
        22.54,
        114.06,
        10.0,
        [FleetDevice("FT-0001-gateway", "gateway", None, "t1"), FleetDevice("L1", "lamp", 0, "t2")],
    )
    return PoleSim(pole, 3, District(3, 22.54, 114.06), faults or FaultRates.parse(["none"]))


def push(ps: PoleSim, plan: Plan, at: float) -> None:
    gp = GatewayPlan(
        "FT-0001-gateway",
        T0,
        plan[-1].ts_ms,
        {"L1": tuple((s.ts_ms, s.level, s.fade_s) for s in plan)},
    )
    ps.update("FT-0001-gateway", {PLAN_ATTRIBUTE: plan_attribute(gp)}, at)


def dims(ps: PoleSim, minutes: range) -> list[int]:
    out = []
    for minute in minutes:
        tick = ps.tick(EVENING + minute * 60)
        out.append(tick.telemetry["L1"][-1]["values"]["dim"])
    return out


PLAN = steps(
    (T0, 100, 0), (T0 + 10 * MIN_MS, 40, 0), (T0 + 20 * MIN_MS, 70, 0), (T0 + 600 * MIN_MS, 0, 0)
)


def test_a_sim_gateway_sets_its_lamps_from_its_plan() -> None:
    ps = pole_sim()
    push(ps, PLAN, EVENING - 60)
    assert dims(ps, range(0, 30, 5)) == [100, 100, 40, 40, 70, 70]


def test_a_sim_gateway_past_its_plans_end_hands_its_lamps_back_to_the_photocell() -> None:
    ps = pole_sim()
    push(ps, steps((T0, 30, 0), (T0 + 10 * MIN_MS, 20, 0)), EVENING - 60)
    assert dims(ps, range(0, 15, 5)) == [30, 30, 20]
    assert dims(ps, range(15, 20, 5)) == [100]  # a January evening in Shenzhen: dark


def test_a_dim_command_holds_until_the_next_plan_step() -> None:
    ps = pole_sim()
    push(ps, PLAN, EVENING - 60)
    dims(ps, range(2))
    reply = ps.command("L1", "setDim", {"level": 5}, EVENING + 150)
    assert reply == {"on": True, "dim": 5}
    assert dims(ps, range(3, 25, 3)) == [5, 5, 5, 40, 40, 40, 70, 70]


def test_a_gateway_that_lost_its_plan_leaves_its_lamps_at_their_last_level() -> None:
    ps = pole_sim()
    push(ps, PLAN, EVENING - 60)
    assert dims(ps, range(0, 15, 5)) == [100, 100, 40]
    assert ps.gateway is not None
    ps.faults = FaultRates.parse(["none", "lost_plan=1000000"])
    tick = ps.tick(EVENING + 16 * 60)
    assert ("FT-0001-gateway", "lost_plan") in tick.faults
    assert ps.gateway.plan is None
    assert dims(ps, range(20, 60, 10)) == [40, 40, 40, 40]  # no photocell, no program: stuck
    lamp = ps.models["L1"]
    assert isinstance(lamp, SimLamp)
    assert lamp.planned


# -- out of program ---------------------------------------------------------------------------


@pytest.fixture
def lamp_ref(database: Database) -> LampRef:
    tenant = Tenants(database.engine).create("lighting", "lighting")["id"]
    return LampRef("lighting", "L1", tenant_id=tenant, device_id=41, pole_id=None)


async def test_a_lamp_off_its_plan_for_ten_minutes_raises_out_of_program_then_clears(
    database: Database, lamp_ref: LampRef
) -> None:
    alarms = Alarms(database.engine)
    plan = steps((T0, 100, 0), (T0 + 30 * MIN_MS, 50, 0), (T0 + 120 * MIN_MS, 0, 0))
    detector = Conformance(
        lambda tenant, lamp, ts: level_at(plan, ts)[0] if lamp == "L1" else None,
        alarms,
        lambda device_id: lamp_ref if device_id == 41 else None,
    )

    def batch(minute: int, level: float) -> WriteBatch:
        return WriteBatch([Reading(41, "dim", T0 + minute * MIN_MS, level)])

    for minute in range(0, 60, 2):  # stuck at 100 % from the 30-minute step on
        await detector.on_batch(batch(minute, 100))
        active = alarms.active("device", 41, ALARM_TYPE)
        # a report within a minute of a step may show either level: out from minute 32
        assert (active is not None) == (minute >= 42), minute
    assert active is not None
    assert active.details == {
        "commanded": 50,
        "actual": 100,
        "since": T0 + 32 * MIN_MS,
        "tolerance": 2.0,
    }
    await detector.on_batch(batch(62, 51))
    assert alarms.active("device", 41, ALARM_TYPE) is None


async def test_a_sim_gateway_that_lost_its_plan_is_found_out_of_program(
    database: Database, lamp_ref: LampRef
) -> None:
    alarms = Alarms(database.engine)
    plan = steps((T0, 100, 0), (T0 + 30 * MIN_MS, 50, 300), (T0 + 600 * MIN_MS, 0, 0))
    detector = Conformance(
        lambda tenant, lamp, ts: level_at(plan, ts)[0], alarms, lambda device_id: lamp_ref
    )
    ps = pole_sim()
    push(ps, plan, EVENING - 60)
    raised_at = None
    for minute in range(0, 90, 2):
        if minute == 20:
            ps.faults = FaultRates.parse(["none", "lost_plan=1000000"])
        tick = ps.tick(EVENING + minute * 60)
        for entry in tick.telemetry["L1"]:
            dim = entry["values"]["dim"]
            await detector.on_batch(WriteBatch([Reading(41, "dim", entry["ts"], dim)]))
        if raised_at is None and alarms.active("device", 41, ALARM_TYPE) is not None:
            raised_at = minute
    alarm = alarms.active("device", 41, ALARM_TYPE)
    assert alarm is not None
    assert raised_at == 42  # the step at 30 min was missed; 10 min later (and a minute's grace)
    assert (alarm.details["commanded"], alarm.details["actual"]) == (50, 100)


@pytest.mark.parametrize(
    ("minute", "level"),
    [
        pytest.param(35, 71, id="within-a-fade"),
        pytest.param(30, 99.5, id="a-report-at-the-step"),
        pytest.param(50, 48.5, id="within-tolerance"),
    ],
)
def test_a_fade_a_step_boundary_and_the_tolerance_are_in_program(minute: int, level: float) -> None:
    plan = steps((T0, 100, 0), (T0 + 30 * MIN_MS, 50, 600), (T0 + 120 * MIN_MS, 0, 0))
    detector = Conformance(lambda tenant, lamp, ts: level_at(plan, ts)[0], None, lambda d: None)
    ref = LampRef("lighting", "L1", 1, 41)
    assert detector.in_program(ref, T0 + minute * MIN_MS, level)[0]
    assert not detector.in_program(ref, T0 + 60 * MIN_MS, 55)[0]


# -- a real sim gateway over MQTT -------------------------------------------------------------


@pytest.fixture
def seeded(platform: Platform) -> Seeded:
    return seed_district(platform.tenants, platform.assets, 2, seed=3)


async def until(check: Any, what: str, tries: int = 400) -> Any:
    for _ in range(tries):
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def test_a_sim_gateway_follows_its_pushed_plan_through_a_link_outage(
    platform: Platform, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    headers = {"Authorization": f"Bearer {seeded.keys['city']['admin']}"}
    r = await client.get("/api/devices", params={"limit": 100}, headers=headers)
    ids = {d["name"]: d["id"] for d in r.json()["items"]}
    code = seeded.plan[0].code
    gateway, lamp = f"{code}-gateway", f"{code}-lamp"
    fleet = fleet_from_plan(seeded.plan, seeded.tokens, 3, "Futian")
    speed = 1200.0  # a 0.2 s report interval is 4 simulated minutes
    opts = SimOptions(
        mqtt_port=platform.mqtt[0].mqtt_port, interval=0.2, start=EVENING, speed=speed
    )
    sim = Simulator(fleet, opts, FaultRates.parse(["none"]))
    task = asyncio.create_task(sim.run())
    try:

        async def latest() -> dict[str, Any]:
            r = await client.get(f"/api/devices/{ids[lamp]}/latest", headers=headers)
            return dict(r.json())

        await until(latest, "the lamp reporting")
        now = int(sim.now() * 1000)
        plan = (
            (now + 8 * MIN_MS, 30.0, 0),
            (now + 40 * MIN_MS, 70.0, 600),
            (now + 90 * MIN_MS, 15.0, 0),
            (now + 600 * MIN_MS, 0.0, 0),
        )
        attribute = plan_attribute(GatewayPlan(gateway, now, plan[-1][0], {lamp: plan}))
        r = await client.post(
            f"/api/devices/{ids[gateway]}/attributes/shared",
            json={PLAN_ATTRIBUTE: attribute},
            headers=headers,
        )
        assert r.status_code == 200, r.text

        async def at_30() -> bool:
            return (await latest()).get("dim", {}).get("value") == 30

        await until(at_30, "the lamp at the plan's first step")
        (ps,) = [p for p in sim.poles if p.pole.code == code]
        cut = sim.now()
        ps.pole_away_until = cut + 30 * 60  # the link is down for 30 simulated minutes

        async def back() -> Any:
            dim = (await latest()).get("dim", {})
            return dim if dim.get("ts", 0) > (cut + 40 * 60) * 1000 else None

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
    assert abs(after["value"] - plan_level(plan, after["ts"])) <= 1
    offline = [p for p in during if p["ts"] < (cut + 30 * 60) * 1000]
    assert len(offline) >= 5  # kept by the gateway, sent when it was back
    for point in during:
        assert abs(point["value"] - plan_level(plan, point["ts"])) <= 1, point
    assert {p["value"] for p in offline} >= {30}


async def test_a_sim_gateway_away_when_its_plan_was_pushed_asks_for_it_when_back(
    platform: Platform, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    headers = {"Authorization": f"Bearer {seeded.keys['city']['admin']}"}
    r = await client.get("/api/devices", params={"limit": 100}, headers=headers)
    ids = {d["name"]: d["id"] for d in r.json()["items"]}
    code = seeded.plan[0].code
    gateway, lamp = f"{code}-gateway", f"{code}-lamp"
    fleet = fleet_from_plan(seeded.plan, seeded.tokens, 3, "Futian")
    opts = SimOptions(
        mqtt_port=platform.mqtt[0].mqtt_port, interval=0.2, start=EVENING, speed=1200.0
    )
    sim = Simulator(fleet, opts, FaultRates.parse(["none"]))
    task = asyncio.create_task(sim.run())
    try:

        async def dim() -> Any:
            r = await client.get(f"/api/devices/{ids[lamp]}/latest", headers=headers)
            return r.json().get("dim")

        await until(dim, "the lamp reporting")
        (ps,) = [p for p in sim.poles if p.pole.code == code]
        cut = sim.now()
        ps.pole_away_until = cut + 20 * 60

        async def gone() -> bool:
            r = await client.get(f"/api/devices/{ids[gateway]}", headers=headers)
            return not r.json()["online"]

        await until(gone, "the gateway offline")
        now = int(sim.now() * 1000)
        plan = ((now, 35.0, 0), (now + 600 * MIN_MS, 0.0, 0))
        attribute = plan_attribute(GatewayPlan(gateway, now, plan[-1][0], {lamp: plan}))
        r = await client.post(
            f"/api/devices/{ids[gateway]}/attributes/shared",
            json={PLAN_ATTRIBUTE: attribute},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        assert ps.gateway is not None
        assert ps.gateway.plan is None  # it was away: nothing reached it

        async def following() -> Any:
            value = await dim()
            return value if value and value["value"] == 35 else None

        back = await until(following, "the lamp at the plan's level after the reconnection")
    finally:
        sim.stop()
        await task
    assert back["ts"] >= (cut + 20 * 60) * 1000
