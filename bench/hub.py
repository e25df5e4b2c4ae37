"""Hub benchmark: readings/s through the pipeline with the hub and 1,000 active rules, beside
the same pipeline without the hub in the same run; alarm latency (upload to committed alarm).

A fleet of 10,000 poles, each with a lamp and an air-quality sensor, on the embedded store.
Rules: thresholds, ``for`` durations, AQI bands and boolean combinations over the lamps' and
sensors' keys, scoped by district so that each reading meets a realistic handful of rules.

    python -m bench.hub            # full: 10,000 poles, 400,000 readings per run
    python -m bench.hub --short    # CI: 2,000 poles, 60,000 readings per run (< 60 s)
    python -m bench.hub --workers 2   # rules, anomalies and commits in worker processes (#16)

A warm-up run of the pipeline alone goes first and is not reported: the first run on a cold
store is slower, which would flatter the hub's ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.ingest.pipeline import Pipeline
from smartpole.model.alarms import AlarmChange
from smartpole.model.clock import now_ms
from smartpole.model.types import Reading
from smartpole.model.writes import WriteBatch
from smartpole.sim.seed import city_principal
from smartpole.store.schema import devices, poles

DISTRICTS = [f"D{i:02d}" for i in range(20)]
LAMP_KEYS = ("power", "voltage", "current", "dim", "temperature")
AIR_KEYS = ("pm25", "pm10", "no2")


def seed(p: Platform, n_poles: int) -> tuple[list[int], list[int]]:
    """Poles and devices straight into the registry tables; returns (lamp ids, air ids)."""
    owner = city_principal(p.tenants).tenant_id
    now = now_ms()
    rng = random.Random(3)
    with p.db.engine.begin() as conn:
        conn.execute(
            insert(poles),
            [
                {
                    "code": f"B{i:05d}",
                    "lat": 22.50 + rng.random() * 0.1,
                    "lon": 114.00 + rng.random() * 0.1,
                    "district": DISTRICTS[i % len(DISTRICTS)],
                    "created": now,
                }
                for i in range(n_poles)
            ],
        )
        rows = []
        for i in range(n_poles):
            for port, kind in ((1, "lamp"), (2, "air")):
                rows.append(
                    {
                        "name": f"{kind}-{i}",
                        "kind": kind,
                        "owner_id": owner,
                        "pole_id": i + 1,
                        "port": port,
                        "token_hash": f"h{kind}{i}",
                        "token_hint": "x",
                        "created": now,
                    }
                )
        conn.execute(insert(devices), rows)
    lamps = [2 * i + 1 for i in range(n_poles)]
    return lamps, [2 * i + 2 for i in range(n_poles)]


def rules(n: int) -> list[dict[str, Any]]:
    """``n`` rules over lamp and air keys, each scoped to one district."""
    rng = random.Random(5)
    out = []
    for i in range(n - 1):
        district = DISTRICTS[i % len(DISTRICTS)]
        if i % 2:
            key = rng.choice(AIR_KEYS)
            cond: dict[str, Any] = {"key": key, "op": ">", "value": 400 + i % 100}
            if key == "pm25" and i % 4 == 1:
                cond = {"key": "pm25", "aqi": True, "op": "between", "value": [301, 400]}
            kind = "air"
        else:
            key = rng.choice(LAMP_KEYS)
            cond = {"key": key, "op": ">=", "value": 10_000 + i}
            if i % 6 == 0:
                cond = {"all": [cond, {"key": "dim", "op": "<", "value": 1}]}
            kind = "lamp"
        if i % 5 == 0:
            cond = {**cond, "for": "10m"}
        out.append(
            {
                "name": f"bench-{i}",
                "scope": {"kinds": [kind], "districts": [district]},
                "condition": cond,
                "actions": [{"alarm": {"type": f"bench_{i}", "severity": "minor"}}],
            }
        )
    out.append(
        {
            "name": "bench-overvoltage",
            "scope": {"kinds": ["lamp"]},
            "condition": {"key": "voltage", "op": ">", "value": 250},
            "actions": [{"alarm": {"type": "overvoltage", "severity": "major"}}],
        }
    )
    return out


def batches(
    lamps: list[int], airs: list[int], total: int, t0: int, size: int = 500
) -> list[tuple[WriteBatch, dict[int, int]]]:
    """Uploads of ``size`` readings; every 5th upload carries an over-voltage (alarm) or its
    end, marked by the lamp it concerns."""
    rng = random.Random(11)
    out: list[tuple[WriteBatch, dict[int, int]]] = []
    n, k = 0, 0
    high: set[int] = set()
    while n < total:
        readings: list[Reading] = []
        marks: dict[int, int] = {}
        ts = t0 + k * 1000
        for i in rng.sample(range(len(lamps)), size // 8):  # one upload per pole and instant
            for key in LAMP_KEYS:
                value = rng.uniform(200, 240) if key == "voltage" else rng.uniform(0, 100)
                readings.append(Reading(lamps[i], key, ts, value))
            for key in AIR_KEYS:
                readings.append(Reading(airs[i], key, ts, rng.uniform(5, 120)))
        if k % 5 == 0:
            lamp = lamps[(k // 10) % len(lamps)]
            rising = lamp not in high
            readings.append(Reading(lamp, "voltage", ts + 1, 260.0 if rising else 220.0))
            (high.add if rising else high.discard)(lamp)
            if rising:
                marks[lamp] = 1
        out.append((WriteBatch(readings=readings), marks))
        n += len(readings)
        k += 1
    return out


async def run(
    p: Platform,
    pipeline: Pipeline,
    work: list[tuple[WriteBatch, dict[int, int]]],
    latency: bool,
    pace: float | None = None,
) -> float:
    """Submit every upload (16 in flight), or at ``pace`` readings/s; return readings/s to
    the last commit (and hub)."""
    sent: dict[int, float] = {}
    lat: list[float] = []

    def on_alarm(change: AlarmChange) -> None:
        start = sent.pop(change.alarm.details.get("device_id", -1), None)
        if change.change == "raised" and start is not None:
            lat.append(time.perf_counter() - start)

    with p.hub.alarms.watching(on_alarm):
        sem = asyncio.Semaphore(16)

        async def one(batch: WriteBatch, marks: dict[int, int], due: float) -> None:
            if pace is not None:
                await asyncio.sleep(max(0.0, start + due - time.perf_counter()))
            async with sem:
                for lamp in marks:
                    sent[lamp] = time.perf_counter()
                await pipeline.submit(batch)

        total = sum(len(b) for b, _ in work)
        dues, sent_before = [], 0
        for b, _ in work:
            dues.append(sent_before / pace if pace else 0.0)
            sent_before += len(b)
        start = time.perf_counter()
        await asyncio.gather(*(one(b, m, due) for (b, m), due in zip(work, dues, strict=True)))
        await pipeline.drain()
        await p.hub.settle()
        elapsed = time.perf_counter() - start
    if latency and lat:
        lat.sort()
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(
            f"  alarm latency: {len(lat)} alarms, median {statistics.median(lat) * 1000:.1f} ms,"
            f" p99 {p99 * 1000:.1f} ms"
        )
    return total / elapsed


def unhubbed(p: Platform) -> Pipeline:
    """A pipeline like the platform's, into the same store, with every listener but the hub."""
    s = p.settings
    return Pipeline(
        p.series,
        batch_size=s.batch_size,
        batch_age_ms=s.batch_age_ms,
        capacity=s.queue_readings,
        metrics=p.metrics,
        listeners=[f for f in p.pipeline.listeners if f != p.hub.on_batch],
    )


async def main(short: bool, workers: int) -> None:
    """Both runs on one platform: the hub detached, then attached."""
    n_poles, total, n_rules = (2_000, 60_000, 1_000) if short else (10_000, 400_000, 1_000)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            mqtt_port=-1,
            sqlite_synchronous="NORMAL",
            hub_workers=1 if workers >= 2 else 0,
            anomaly_worker=workers >= 2,
            store_writer_process=workers >= 2,
        )
        p = Platform(settings)
        p.upgrade()
        lamps, airs = seed(p, n_poles)
        await p.start()
        try:
            who = city_principal(p.tenants)
            for body in rules(n_rules):
                p.hub.rules.put(who, body)
            await p.hub.reload()
            where = "in worker processes" if workers >= 2 else "in the ingest process"
            print(
                f"hub: {n_poles:,} poles, {2 * n_poles:,} devices, {p.hub.active_rules()} rules"
                f" evaluated, anomalies scored and readings committed {where}"
            )
            t0 = now_ms() - 3_600_000
            without = unhubbed(p)
            await without.start()
            try:
                warm = batches(lamps, airs, total // 4, t0 - 86_400_000)
                await run(p, without, warm, latency=False)  # warm-up, not reported
                bare = await run(p, without, batches(lamps, airs, total, t0), latency=False)
            finally:
                await without.stop()
            print(f"  pipeline without the hub: {bare:,.0f} readings/s")
            evaluated = p.hub.evaluated
            work = batches(lamps, airs, total, t0 + 86_400_000)
            hubbed = await run(p, p.pipeline, work, latency=True)
            print(
                f"  pipeline with the hub:    {hubbed:,.0f} readings/s"
                f" ({hubbed / bare:.0%}), {p.hub.evaluated - evaluated:,} rule evaluations"
            )
            # below saturation: what an alarm waits for when the platform keeps up
            pace = hubbed / 2
            print(f"  at half that load ({pace:,.0f} readings/s):")
            work = batches(lamps, airs, total // 4, t0 + 2 * 86_400_000)
            await run(p, p.pipeline, work, latency=True, pace=pace)
        finally:
            await p.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the quick CI run")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes, as smartpole serve --workers: 1 evaluates rules, scores anomalies and"
        " commits in the ingest process, 2 or more each in a worker process",
    )
    args = parser.parse_args()
    asyncio.run(main(args.short, args.workers))
