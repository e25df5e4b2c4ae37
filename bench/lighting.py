"""Lighting plans benchmark: compile every lamp's plan for a week, then recompile after one
road's calendar change.

A city of lamps in Shenzhen (Asia/Shanghai): 10 lamps per gateway, spread over 10 districts of
50 roads each within about 0.5°; three programs (default, holiday, festival), a group per road
and per district, and the city's calendar (working days, rest days, China's holidays, a festival
night). The change gives one road a festival program for two nights; the recompile reuses the
cache of the first compile and reports how many lamps' plans changed.

    python -m bench.lighting            # 100,000 lamps, 10,000 gateways, 7 nights
    python -m bench.lighting --short    # CI: 10,000 lamps, 1,000 gateways, 7 nights
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import random
import time
import tracemalloc

from smartpole.lighting.calendar import Calendar
from smartpole.lighting.plan import PlanCache, changed, compile_plans
from smartpole.model.lighting import (
    CalendarEntry,
    Cap,
    Group,
    Lamp,
    OneOffDates,
    Program,
    PublicHolidays,
    RestDays,
    Selector,
    Step,
    TimeSpec,
    WorkingDays,
)

FIRST_NIGHT = dt.date(2026, 2, 12)  # across China's 2026 Spring Festival and a worked Saturday


def program(name: str, *steps: tuple[str, float]) -> Program:
    """A program from (time spec, level) pairs, 60 s fades."""
    return Program(name, tuple(Step(TimeSpec.parse(at), level, 60) for at, level in steps))


def city(lamps_n: int, per_gateway: int, rng: random.Random) -> list[Lamp]:
    """Lamps on poles (two per pole) every 30 m along straight roads of 10 districts around
    Futian, Shenzhen (roads are up to a few km long, districts about 0.15° wide)."""
    out = []
    roads = 500
    per_road = lamps_n // roads
    for road in range(roads):
        district = road * 10 // roads
        lat0 = 22.45 + (district // 5) * 0.15 + rng.random() * 0.12
        lon0 = 113.9 + (district % 5) * 0.15 + rng.random() * 0.12
        heading = rng.random() * 6.283
        for k in range(per_road):
            i = road * per_road + k
            along = (k // 2) * 0.00027  # 30 m
            out.append(
                Lamp(
                    id=f"L{i}",
                    pole=f"P{i // 2}",
                    gateway=f"G{i // per_gateway}",
                    lat=lat0 + along * math.sin(heading),
                    lon=lon0 + along * math.cos(heading),
                    tz="Asia/Shanghai",
                    district=f"D{district}",
                    road=f"R{road}",
                    tags=frozenset({"main"} if road % 5 == 0 else ()),
                    cap=Cap(
                        clo_start=0.8,
                        burn_hours=rng.choice((0, 10_000, 25_000, 50_000)),
                        rated_hours=50_000,
                    ),
                )
            )
    return out


def main() -> None:
    """Run the benchmark and print its numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="CI size: 10,000 lamps")
    parser.add_argument("--nights", type=int, default=7)
    parser.add_argument("--memory", action="store_true", help="trace peak memory (slower)")
    args = parser.parse_args()
    lamps_n = 10_000 if args.short else 100_000
    lamps = city(lamps_n, 10, random.Random(15))
    programs = {
        p.name: p
        for p in (
            program(
                "default",
                ("sunset", 100),
                ("23:00", 70),
                ("virtual_midnight+60", 50),
                ("civil_dawn", 80),
                ("sunrise", 0),
            ),
            program("holiday", ("sunset-10", 100), ("01:00", 60), ("sunrise", 0)),
            program("festival", ("sunset-15", 100), ("sunrise+15", 0)),
        )
    }
    groups = [Group(f"D{d}", Selector(districts=frozenset({f"D{d}"}))) for d in range(10)]
    groups += [Group(f"R{r}", Selector(roads=frozenset({f"R{r}"}))) for r in range(500)]
    entries = [
        CalendarEntry(f"work-{g.name}", "default", g.name, WorkingDays(), 0) for g in groups[:10]
    ] + [CalendarEntry(f"rest-{g.name}", "default", g.name, RestDays(), 0) for g in groups[:10]]
    entries += [
        CalendarEntry(f"hol-{g.name}", "holiday", g.name, PublicHolidays(), 10) for g in groups[:10]
    ]
    cache = PlanCache()
    if args.memory:
        tracemalloc.start()
    started = time.perf_counter()
    plans = compile_plans(
        lamps, groups, programs, Calendar(entries), [], FIRST_NIGHT, args.nights, cache
    )
    took = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory() if args.memory else (0, 0)
    tracemalloc.stop()
    # tracing slows the compile about 2x: the time is honest only without --memory
    memory = f"peak {peak / 2**20:.0f} MiB (traced)" if args.memory else "memory not traced"
    distinct = len({id(p) for p in plans.values()})
    steps = sum(len(p) for p in plans.values())
    print(
        f"compile: {lamps_n:,} lamps, {lamps_n // 10:,} gateways, {args.nights} nights:"
        f" {took:.2f} s, {memory}, {distinct:,} distinct plans,"
        f" {steps:,} steps"
    )
    festival = CalendarEntry(
        "festival-R7",
        "festival",
        "R7",
        OneOffDates(
            frozenset({FIRST_NIGHT + dt.timedelta(days=1), FIRST_NIGHT + dt.timedelta(days=2)})
        ),
        20,
    )
    started = time.perf_counter()
    again = compile_plans(
        lamps, groups, programs, Calendar([*entries, festival]), [], FIRST_NIGHT, args.nights, cache
    )
    took = time.perf_counter() - started
    print(
        f"recompile after one road's calendar change: {took:.2f} s,"
        f" {len(changed(plans, again)):,} lamps' plans changed"
    )


if __name__ == "__main__":
    main()
