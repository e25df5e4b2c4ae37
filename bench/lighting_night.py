"""A district's lamps through a whole simulated night on the plans pushed to their gateways:
every lamp within 1 % of its plan at every report, also across a 30-minute link outage.

The district is the simulator's (``plan_district``: Futian, one lamp per pole, behind the pole's
gateway). Each lamp gets a plan (``compile_plans``: a dimming program on the astronomical clock,
with fades, and a cap per lamp so that the plans differ); each gateway gets its ``lightingPlan``
attribute (``gateway_plans``, ``plan_attribute``, sent through JSON as over MQTT) and the
simulator's gateways follow it on their own clock, reporting each lamp's ``dim`` every
``--step`` simulated seconds. Around virtual midnight every gateway loses its link for 30
minutes: its readings wait in its buffer and are checked when they arrive. Each reading is
compared with the platform's plan at its timestamp (``level_at``).

    python -m bench.lighting_night            # 500 poles, a report a minute, dusk to dawn
    python -m bench.lighting_night --short    # CI: 100 poles, a report every 5 minutes
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import time

import orjson

from smartpole.lighting.calendar import Calendar
from smartpole.lighting.plan import Plan, compile_plans, level_at
from smartpole.lighting.push import gateway_plans
from smartpole.model.gateway_plan import PLAN_ATTRIBUTE, plan_attribute
from smartpole.model.lighting import (
    CalendarEntry,
    Cap,
    Group,
    Lamp,
    Program,
    Selector,
    Step,
    TimeSpec,
    Weekdays,
)
from smartpole.model.types import DeviceKind
from smartpole.sim.district import plan_district
from smartpole.sim.environment import District
from smartpole.sim.faults import FaultRates
from smartpole.sim.fleet import FleetPole, PoleSim, fleet_from_plan

NIGHT = dt.date(2026, 3, 2)
TZ = "Asia/Shanghai"
OUTAGE_S = 30 * 60
WITHIN = 1.0  # percentage points
PROGRAM = Program(
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


def lamps_of(poles: list[FleetPole], rng: random.Random) -> list[Lamp]:
    """Each pole's lamp, behind its gateway, with a maintenance factor of its own."""
    out = []
    for pole in poles:
        gateway = pole.gateway
        for device in pole.devices:
            if device.kind == DeviceKind.LAMP and gateway is not None:
                cap = Cap(maintenance=round(rng.uniform(0.7, 1.0), 2))
                out.append(
                    Lamp(device.name, pole.code, gateway.name, pole.lat, pole.lon, TZ, cap=cap)
                )
    return out


def main() -> None:
    """Run the night and print the deviations."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="CI size: 100 poles, 5-min steps")
    parser.add_argument("--poles", type=int, default=500)
    parser.add_argument("--step", type=float, default=60.0, help="simulated s between reports")
    args = parser.parse_args()
    poles, step_s = (100, 300.0) if args.short else (args.poles, args.step)
    started = time.perf_counter()
    planned = plan_district(poles, seed=7)
    tokens = {f"{p.code}-{d.kind}": "token" for p in planned for d in p.devices}
    fleet = fleet_from_plan(planned, tokens, 7, "Futian")
    lamps = lamps_of(fleet.poles, random.Random(7))
    plans: dict[str, Plan] = compile_plans(
        lamps,
        [Group("city", Selector())],
        {"nightly": PROGRAM},
        Calendar([CalendarEntry("all", "nightly", "city", Weekdays(frozenset(range(7))))]),
        [],
        NIGHT,
        1,
    )
    gateway_of = {lamp.id: lamp.gateway for lamp in lamps}
    first = min(plan[0].ts_ms for plan in plans.values()) / 1000
    last = max(plan[-1].ts_ms for plan in plans.values()) / 1000
    midnight = (first + last) / 2
    district = District(7, fleet.poles[0].lat, fleet.poles[0].lon)
    sims = [PoleSim(p, 7, district, FaultRates.parse(["none"])) for p in fleet.poles]
    sizes = []
    for gateway, plan in gateway_plans(plans, gateway_of.get).items():
        body = orjson.dumps({PLAN_ATTRIBUTE: plan_attribute(plan)})
        sizes.append(len(body))
        for ps in sims:
            if ps.gateway_name == gateway:
                ps.update(gateway, orjson.loads(body), first - 3600)
    prepared = time.perf_counter() - started

    checked = within = outage_checked = outage_within = 0
    worst = (0.0, "", 0)
    t = first - 1800
    while t <= last + 1800:
        cut = midnight - OUTAGE_S / 2 <= t < midnight + OUTAGE_S / 2
        for ps in sims:
            if cut and not ps.pole_away(t):
                ps.pole_away_until = midnight + OUTAGE_S / 2
            for name, entries in ps.tick(t).telemetry.items():
                if name not in plans:
                    continue
                for entry in entries:
                    expected = level_at(plans[name], entry["ts"])[0]
                    off = abs(entry["values"]["dim"] - expected)
                    ok = off <= WITHIN
                    checked += 1
                    within += ok
                    if midnight - OUTAGE_S / 2 <= entry["ts"] / 1000 < midnight + OUTAGE_S / 2:
                        outage_checked += 1
                        outage_within += ok
                    if off > worst[0]:
                        worst = (off, name, entry["ts"])
        t += step_s
    elapsed = time.perf_counter() - started
    hours = (last - first) / 3600
    print(
        f"{len(sims)} poles, {len(plans)} lamps, a {hours:.1f} h night, "
        f"a report every {step_s:.0f} s"
    )
    print(
        f"  plan attributes: {min(sizes)}-{max(sizes)} bytes per gateway; "
        f"prepared in {prepared:.1f} s"
    )
    print(f"  lamp-steps checked: {checked:,}; within {WITHIN:g} %: {100 * within / checked:.3f} %")
    print(
        f"  during the 30-min outage: {outage_checked:,} checked, "
        f"{100 * outage_within / max(outage_checked, 1):.3f} % within {WITHIN:g} %"
    )
    print(f"  worst deviation: {worst[0]:.2f} points ({worst[1] or '-'} at {worst[2]})")
    print(f"  wall time: {elapsed:.1f} s")


if __name__ == "__main__":
    main()
