"""Lamp diagnostics benchmark: each diagnosis's precision and recall, and the time to its alarm.

A district's street lamps (the simulator's physics, ``smartpole.sim.physics.Lamp``, on one
district's sun and weather in Shenzhen) report every minute for 14 simulated days. After a
day's warm-up, some lamps get one of the simulator's lamp faults through ``Model.inject``:
``lamp_failure``, ``day_burner``, ``lamp_cycling``, ``low_power`` and ``gear_failure``, each
repaired after 12-48 hours; the others stay healthy. To make the healthy ones hard to tell
from faulty ones, every lamp is also dimmed by hand now and then at night (a ``setDim`` to
10-100 %, back to its program at the next dusk or dawn), 2 % of the reports are lost and a
lamp's gateway now and then holds back 15-60 minutes of reports, sent later in one go.

A fault counts as found (recall) when its own diagnosis is raised on its lamp between its start
and one hour after its end; a raise is right (precision) when it falls in such a window of a
fault it diagnoses; every other raise is a false alarm. The time to alarm runs from the fault's
start; a fault seen only at certain hours (a dead driver at night, a welded relay by day) waits
for them, so the p95 includes up to half a day.

    python -m bench.lighting_diagnostics            # 14 days, 200 lamps
    python -m bench.lighting_diagnostics --short    # CI: 7 days, 30 lamps (well under 60 s)
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from smartpole.lighting.diagnostics import Diagnosis, DiagnosisEvent, LampDiagnostics, LampFacts
from smartpole.sim.environment import District
from smartpole.sim.physics import Lamp, Report, Site

STEP_S = 60
DAY_S = 86_400
TZ = "Asia/Shanghai"
START = int(dt.datetime(2026, 3, 1, tzinfo=ZoneInfo(TZ)).timestamp())
WARMUP_S = DAY_S
GRACE_MS = 3_600_000
LAT, LON = 22.54, 114.05
DIAGNOSIS = {
    "lamp_failure": Diagnosis.LAMP_FAILURE,
    "day_burner": Diagnosis.DAY_BURNER,
    "lamp_cycling": Diagnosis.LAMP_CYCLING,
    "low_power": Diagnosis.LOW_POWER,
    "gear_failure": Diagnosis.CONTROL_GEAR_FAILURE,
}


@dataclass
class Fault:
    """One injected fault: which lamp, which, when (ms)."""

    lamp: int
    name: str
    start: int
    end: int
    found_at: int | None = None


def plan(
    lamps: int, days: int, faulty: float, rng: random.Random
) -> tuple[list[Lamp], list[Fault]]:
    """The lamps, and one fault on a share ``faulty`` of them (after the warm-up)."""
    models = [
        Lamp(f"lamp-{i}", 7, Site(height_m=rng.choice((8.0, 10.0, 12.0)))) for i in range(lamps)
    ]
    faults = []
    span = (days * DAY_S - WARMUP_S - 2 * DAY_S) * 1000
    for i in range(lamps):
        if rng.random() < faulty:
            start = (START + WARMUP_S) * 1000 + rng.randrange(span)
            hours = rng.uniform(12, 48)
            name = rng.choice(sorted(DIAGNOSIS))
            faults.append(Fault(i, name, start, int(start + hours * 3.6e6)))
    return models, faults


def repair(lamp: Lamp) -> None:
    """Undo every fault of a simulated lamp."""
    lamp.failed = lamp.burning = lamp.cycling = lamp.welded = False
    lamp.weak = 1.0


def run(
    models: list[Lamp], faults: list[Fault], days: int
) -> tuple[list[tuple[int, DiagnosisEvent]], int]:
    """Feed every report through the diagnostics; return the raises and the reports."""
    district = District(7, LAT, LON)
    facts = [
        LampFacts(i, 1, i, LAT, LON, TZ, rated_w=m.rated_w, min_w=0.1 * m.rated_w)
        for i, m in enumerate(models)
    ]
    by_lamp = {f.lamp: f for f in faults}
    diag = LampDiagnostics()
    rng = random.Random(11)
    held: dict[int, list[tuple[int, Report]]] = defaultdict(list)
    held_until: dict[int, int] = {}
    raises: list[tuple[int, DiagnosisEvent]] = []
    reports = 0

    def observe(i: int, ts: int, report: Report) -> None:
        for e in diag.observe(facts[i], ts, report):
            if e.change == "raised":
                raises.append((i, e))

    for step in range(days * DAY_S // STEP_S):
        t = START + step * STEP_S
        ts = t * 1000
        amb = district.at(t)
        for i, lamp in enumerate(models):
            f = by_lamp.get(i)
            if f is not None and ts == f.start - f.start % (STEP_S * 1000):
                lamp.inject(f.name, amb)
            elif f is not None and f.end <= ts < f.end + STEP_S * 1000:
                repair(lamp)
            if amb.is_dark and rng.random() < 1 / 600:  # by hand, about once a night
                lamp.command("setDim", {"level": rng.choice((10, 30, 50, 80, 100))}, amb)
            report = lamp.report(amb)
            if rng.random() < 0.02:
                continue  # lost
            reports += 1
            if i not in held_until and rng.random() < 1 / 2000:
                held_until[i] = ts + rng.randint(15, 60) * 60_000
            if i in held_until:
                held[i].append((ts, report))
                if ts < held_until[i]:
                    continue
                del held_until[i]
                for late_ts, late in held.pop(i):
                    observe(i, late_ts, late)
                continue
            observe(i, ts, report)
    return raises, reports


def score(faults: list[Fault], raises: list[tuple[int, DiagnosisEvent]]) -> None:
    """Print precision, recall and time to alarm per diagnosis."""
    by_lamp = {f.lamp: f for f in faults}
    right: dict[Diagnosis, int] = defaultdict(int)
    total: dict[Diagnosis, int] = defaultdict(int)
    for lamp, e in raises:
        total[e.diagnosis] += 1
        f = by_lamp.get(lamp)
        if f is None or DIAGNOSIS[f.name] is not e.diagnosis:
            continue
        if f.start <= e.ts <= f.end + GRACE_MS:
            right[e.diagnosis] += 1
            if f.found_at is None:
                f.found_at = e.ts
    print("diagnosis              faults found recall raises precision  p50 min  p95 min")
    for name, diagnosis in DIAGNOSIS.items():
        mine = [f for f in faults if f.name == name]
        found = [f for f in mine if f.found_at is not None]
        delays = sorted((f.found_at - f.start) / 60_000 for f in found if f.found_at is not None)
        recall = len(found) / len(mine) if mine else 1.0
        precision = right[diagnosis] / total[diagnosis] if total[diagnosis] else 1.0
        p50 = statistics.median(delays) if delays else float("nan")
        p95 = delays[min(len(delays) - 1, int(0.95 * len(delays)))] if delays else float("nan")
        print(
            f"{diagnosis.value:22s} {len(mine):6d} {len(found):5d} {recall:6.2f}"
            f" {total[diagnosis]:6d} {precision:9.2f} {p50:8.0f} {p95:8.0f}"
        )


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--short", action="store_true", help="7 days, 30 lamps")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    days, lamps = (7, 30) if args.short else (14, 200)
    models, faults = plan(lamps, days, 0.5, random.Random(args.seed))
    print(f"{lamps} lamps, {days} days every {STEP_S} s, {len(faults)} faults")
    began = time.perf_counter()
    raises, reports = run(models, faults, days)
    took = time.perf_counter() - began
    score(faults, raises)
    print(f"{reports} reports in {took:.1f} s: {1e6 * took / reports:.1f} µs per report")


if __name__ == "__main__":
    main()
