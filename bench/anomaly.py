"""Anomaly detection benchmark: precision and recall on injected faults.

Series come from the simulator's physics (``smartpole.sim.physics``): air, noise and weather
stations and street lamps on one district's weather and traffic, reported every 5 minutes.
Two kinds of faults are injected after the warm-up:

- the simulator's own lamp faults (``lamp_failure``, ``day_burner``) through ``Model.inject``,
  repaired after 6-24 hours;
- sensor faults the simulator does not model, applied by this script to one key of an air,
  noise or weather station: ``burst`` (readings x3 to x5 for 30 minutes), ``offset`` (+60 %
  for 6 hours), ``dropout`` (zeros for 2 hours) and ``drift`` (a ramp to +150 % over 12 hours).

A fault counts as found when the detector raises on its series between its start and one hour
after its end (recall). A raise counts as right when it falls in such a window (precision);
every other raise is a false alarm — including raises on real but unusual weather, which the
physics produces (rain spells wash out particles and add road noise).

    python -m bench.anomaly                 # 14 days, 90 devices
    python -m bench.anomaly --short         # CI: 7 days, 30 devices
    python -m bench.anomaly --sweep         # also try other thresholds
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc
from collections import defaultdict
from dataclasses import dataclass, field

from smartpole.hub.analytics.detector import AnomalyEvent, Detector, floor_for
from smartpole.model.types import DeviceKind
from smartpole.sim.environment import District
from smartpole.sim.models import model_for
from smartpole.sim.physics import Lamp, Model, Site

STEP_S = 300
DAY_S = 86_400
START = 1_767_225_600  # 2026-01-01T00:00:00Z
WARMUP_DAYS = 3
GRACE_MS = 3_600_000
SENSOR_FAULTS = ("burst", "offset", "dropout", "drift")
SENSOR_KEYS = {
    DeviceKind.AIR: ("pm25", "no2", "co"),
    DeviceKind.NOISE: ("laeq",),
    DeviceKind.WEATHER: ("temperature", "humidity"),
}


@dataclass
class Fault:
    """One injected fault: where, what, when (ms)."""

    device: int
    key: str
    name: str
    start: int
    end: int
    found_at: int | None = None


@dataclass
class Plan:
    """The devices and their faults."""

    models: list[Model] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)


def plan(devices: dict[DeviceKind, int], days: int, rng: random.Random) -> Plan:
    """Build the devices; give each device one or two faults after the warm-up."""
    out = Plan()
    span = (days - WARMUP_DAYS) * DAY_S * 1000
    t0 = (START + WARMUP_DAYS * DAY_S) * 1000
    for kind, n in devices.items():
        for _ in range(n):
            i = len(out.models)
            site = Site(height_m=rng.choice((8.0, 10.0, 12.0)), busy=rng.uniform(0.6, 1.4))
            out.models.append(model_for(kind, f"{kind}-{i}", seed=7, site=site))
            for _ in range(rng.choice((1, 1, 2))):
                start = t0 + rng.randrange(span - 26 * 3_600_000)
                if kind is DeviceKind.LAMP:
                    name = rng.choice(("lamp_failure", "day_burner"))
                    hours = rng.uniform(6, 24)
                    out.faults.append(Fault(i, "power", name, start, int(start + hours * 3.6e6)))
                else:
                    name = rng.choice(SENSOR_FAULTS)
                    key = rng.choice(SENSOR_KEYS[kind])
                    hours = {"burst": 0.5, "offset": 6, "dropout": 2, "drift": 12}[name]
                    out.faults.append(Fault(i, key, name, start, int(start + hours * 3.6e6)))
    return out


def distort(fault: Fault, ts: int, value: float) -> float:
    """A sensor fault's effect on one reading at ``ts``."""
    if fault.name == "burst":
        return value * (3 + 2 * ((ts // 300_000) % 2))
    if fault.name == "offset":
        return value * 1.6
    if fault.name == "dropout":
        return 0.0
    return value * (1 + 1.5 * (ts - fault.start) / (fault.end - fault.start))  # drift


def run(p: Plan, days: int, detector: Detector) -> tuple[list[tuple[int, AnomalyEvent]], int]:
    """Feed every report through the detector; return the raises and the readings scored."""
    district = District(seed=7)
    active: dict[int, list[Fault]] = defaultdict(list)
    for f in p.faults:
        active[f.device].append(f)
    raises: list[tuple[int, AnomalyEvent]] = []
    readings = 0
    for step in range(days * DAY_S // STEP_S):
        t = START + step * STEP_S
        ts = t * 1000
        amb = district.at(t)
        for i, model in enumerate(p.models):
            faults = [f for f in active.get(i, ()) if f.start <= ts < f.end]
            if isinstance(model, Lamp):  # the simulator's own faults, repaired at the end
                lamp_faults = {f.name for f in faults}
                model.failed = "lamp_failure" in lamp_faults
                model.burning = "day_burner" in lamp_faults
            report = model.report(amb)
            for key, value in report.items():
                floor = floor_for(model.kind, key)
                if floor is None or isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                x = float(value)
                for f in faults:
                    if f.key == key and not isinstance(model, Lamp):
                        x = distort(f, ts, x)
                readings += 1
                event = detector.update(i, key, ts, x, floor)
                if event is not None and event.change == "raised":
                    raises.append((i, event))
    return raises, readings


def score(p: Plan, raises: list[tuple[int, AnomalyEvent]]) -> dict[str, float]:
    """Precision, recall and F1 of the raises against the injected faults."""
    by_series: dict[tuple[int, str], list[Fault]] = defaultdict(list)
    for f in p.faults:
        by_series[(f.device, f.key)].append(f)
    right = 0
    for device, e in raises:
        hit = [f for f in by_series.get((device, e.key), ()) if f.start <= e.ts <= f.end + GRACE_MS]
        if hit:
            right += 1
            for f in hit:
                if f.found_at is None:
                    f.found_at = e.ts
    found = sum(f.found_at is not None for f in p.faults)
    precision = right / len(raises) if raises else 1.0
    recall = found / len(p.faults) if p.faults else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "raises": len(raises)}


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="7 days, 30 devices")
    parser.add_argument("--sweep", action="store_true", help="try thresholds 5, 6, 8 and 10")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    days, scale = (7, 1) if args.short else (14, 3)
    devices = {
        DeviceKind.AIR: 8 * scale,
        DeviceKind.NOISE: 6 * scale,
        DeviceKind.WEATHER: 4 * scale,
        DeviceKind.LAMP: 12 * scale,
    }
    thresholds = (5.0, 6.0, 8.0, 10.0) if args.sweep else (Detector().threshold,)
    print(f"{sum(devices.values())} devices, {days} days every {STEP_S // 60} min")
    print("threshold  readings  raises  precision  recall    F1   µs/reading")
    for threshold in thresholds:
        p = plan(devices, days, random.Random(args.seed))
        detector = Detector(threshold=threshold)
        began = time.perf_counter()
        raises, readings = run(p, days, detector)
        took = time.perf_counter() - began
        s = score(p, raises)
        print(
            f"{threshold:9.1f} {readings:9d} {s['raises']:7.0f} {s['precision']:10.2f}"
            f" {s['recall']:7.2f} {s['f1']:5.2f} {1e6 * took / readings:10.1f}"
        )
        per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for f in p.faults:
            per[f.name][0] += 1
            per[f.name][1] += f.found_at is not None
        print(
            "           found per fault: "
            + ", ".join(f"{k} {v[1]}/{v[0]}" for k, v in sorted(per.items()))
        )
    tracemalloc.start()
    d = Detector()
    for i in range(10_000):
        d.update(i, "pm25", START * 1000, 10.0, 1.0)
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"memory: {size / 10_000:.0f} bytes per series (10,000 series)")


if __name__ == "__main__":
    main()
