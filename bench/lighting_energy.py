"""Lighting energy benchmark: a city's year of lamp energy by month, on SQLite and PostgreSQL.

Target (issue #15): the energy report of 10,000 lamps over a year by month in <= 1 s.

A year of hourly counter readings for 10,000 lamps is 87.6 M readings: too many to ingest in a
bench run. The report reads each counter at the bucket boundaries (its last reading before
each: one index seek per lamp and boundary, 10,000 x 13 for a year by month), so what it costs
depends on the boundary count and the index's depth, not on how many readings lie between
boundaries. The big store therefore gets ``--per-day`` readings per lamp and day (2 by default:
05:00 and 17:00 local, so every month boundary falls between two readings), written straight
into ``readings`` and ``rollups`` in bulk (the rows the write path would make), with 1 % of
lamps resetting their counter once and 1 % of lamps on a young meter (under 3 months of use:
their months are checked against the rollup lows). The raw-scan comparison runs on a smaller
store with hourly readings, where both ways are timed and must give the same total.

Times are the report (``read_energy`` by month + ``savings`` per district, lamps spread over
a 0.3 x 0.3 degree city: 36 cells of the night cache) on a warm store: p50/p95 of ``--runs``
repeats; the first run (the nights' cache cold) is printed apart.

    python -m bench.lighting_energy                   # 10,000 lamps x 365 days, both engines
    python -m bench.lighting_energy --short           # 500 lamps x 365 days, CI (< 30 s)
    python -m bench.lighting_energy --engines sqlite --dsn postgresql://...  # an existing PG
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pg import PostgresCluster
from smartpole.config import Settings
from smartpole.lighting.energy import Span, counter_energy, read_energy, savings
from smartpole.model.energy import GridFactor, LampPlace, Tariff
from smartpole.model.types import Reading
from smartpole.model.writes import WriteBatch
from smartpole.store import Database, open_series

ZONE = ZoneInfo("Asia/Shanghai")
HOUR = 3_600_000
DAY = 24 * HOUR
START = 1_767_196_800_000  # 2026-01-01T00:00+08:00
TARIFF = Tariff.parse(
    {
        "name": "bench",
        "currency": "CNY",
        "periods": [
            {"kind": "valley", "start": "23:00", "end": "07:00", "price": 0.3},
            {"kind": "flat", "start": "07:00", "end": "18:00", "price": 0.7},
            {"kind": "peak", "start": "18:00", "end": "23:00", "price": 1.2},
        ],
    }
)
GRID = GridFactor(0.5366, "MEE/NBS 2024: 2022 national grid average")
LEAD = 7 * 24  # hours of readings before the year: the level it starts from
NIGHTLY = [0.1 if h >= 18 else 0.05 if h < 6 else 0.0 for h in range(24)]  # kWh, 100 W lamp
Row = tuple[Any, ...]


def counters(lamps: int, days: int, per_day: int, rng: random.Random) -> Iterator[Row]:
    """``readings`` rows (device, key, ts, vtype, num, txt) in key order: each lamp's counter
    at ``per_day`` evenly spaced local hours, 1 % resetting once, 1 % on a young meter."""
    hours = [5 + i * 24 // per_day for i in range(per_day)] if per_day < 24 else list(range(24))
    # kWh used from the start to each hour (START is a local midnight: hour n is local n % 24)
    used = [0.0, *itertools.accumulate(NIGHTLY[n % 24] for n in range(-LEAD, days * 24))]
    for lamp in range(1, lamps + 1):
        base = rng.uniform(0, 0.5) if lamp % 100 == 50 else rng.uniform(500, 5000)
        reset = rng.randrange(days * 24) if lamp % 100 == 1 else days * 24
        for n in (day * 24 + h for day in range(-LEAD // 24, days) for h in hours):
            if n >= reset:
                base, reset = -used[n + LEAD], days * 24  # a reset: the counter starts again at 0
            yield (lamp, "energy", START + n * HOUR, 0, round(base + used[n + LEAD], 4), None)


def rollup(row: Row) -> Row:
    """The hourly rollup of a reading alone in its hour."""
    device, key, ts, _, num, _ = row
    return (device, key, ts - ts % HOUR, 1, num, num, num)


def chunks(rows: Iterator[Row], size: int = 200_000) -> Iterator[list[Row]]:
    """Rows in lists of ``size``."""
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def load(url: str, rows: Iterator[Row], days: int) -> int:
    """Migrate the store and bulk-write ``rows`` and their rollups; return how many."""
    db = Database(url)
    db.upgrade()
    n = 0
    if db.dialect == "sqlite":
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        conn.execute("PRAGMA synchronous=OFF")
        for batch in chunks(rows):
            conn.executemany("INSERT INTO readings VALUES (?,?,?,?,?,?)", batch)
            conn.executemany("INSERT INTO rollups VALUES (?,?,?,?,?,?,?)", map(rollup, batch))
            conn.commit()
            n += len(batch)
        conn.execute("ANALYZE")
        conn.close()
    else:
        # the real write path makes the monthly partitions (device 0 is no lamp)
        series = open_series(db)
        ends = (START - 8 * DAY, START + days * DAY)
        series.write(WriteBatch(readings=[Reading(0, "marker", t, 0) for t in ends]))
        series.close()  # type: ignore[attr-defined]
        raw = db.engine.raw_connection()
        with raw.driver_connection.cursor() as cur:
            for batch in chunks(rows):
                with cur.copy("COPY readings FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row(row)
                with cur.copy("COPY rollups FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row(rollup(row))
                n += len(batch)
            cur.execute("ANALYZE readings")
            cur.execute("ANALYZE rollups")
        raw.commit()
        raw.close()
    db.dispose()
    return n


def city(lamps: int, rng: random.Random) -> list[LampPlace]:
    """Lamps spread over a 0.3 x 0.3 degree city (central Shanghai), 8 districts, 50 roads."""
    return [
        LampPlace(
            i,
            i,
            f"road-{i % 50}",
            f"district-{i % 8}",
            100.0,
            31.10 + rng.random() * 0.3,
            121.30 + rng.random() * 0.3,
        )
        for i in range(1, lamps + 1)
    ]


def timed(what: Callable[[], object], runs: int) -> tuple[float, list[float]]:
    """The first run's seconds and the others'."""
    took = []
    for _ in range(runs + 1):
        t = time.perf_counter()
        what()
        took.append(time.perf_counter() - t)
    return took[0], took[1:]


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report_numbers(url: str, lamps: int, days: int, runs: int, rng: random.Random) -> None:
    """Time the report by month on a loaded store; print first run, p50, p95."""
    db = Database(url)
    series = open_series(db)
    ids = list(range(1, lamps + 1))
    places = city(lamps, rng)
    end = START + days * DAY

    def report() -> object:
        energy = read_energy(series, ids, START, end, ZONE, "month")
        return savings(energy, places, START, end, ZONE, "month", TARIFF, GRID, "district")

    first, rest = timed(report, runs)
    t = time.perf_counter()
    energy = read_energy(series, ids, START, end, ZONE, "month")
    read_s = time.perf_counter() - t
    t = time.perf_counter()
    savings(energy, places, START, end, ZONE, "month", TARIFF, GRID, "district")
    base_s = time.perf_counter() - t
    print(
        f"  report by month: first {first:6.3f} s (in-process caches cold on the first engine), "
        f"p50 {statistics.median(rest):6.3f} s, p95 {pct(rest, 0.95):6.3f} s "
        f"({len(rest)} runs; read {read_s:.3f} s + savings {base_s:.3f} s)"
    )
    series.close()  # type: ignore[attr-defined]
    db.dispose()


def compare(url: str, lamps: int, days: int) -> None:
    """Boundaries against a raw scan of every reading, on hourly readings."""
    db = Database(url)
    series = open_series(db)
    ids = list(range(1, lamps + 1))
    end = START + days * DAY
    t = time.perf_counter()
    energy = read_energy(series, ids, START, end, ZONE, "month")
    fast_s = time.perf_counter() - t
    t = time.perf_counter()
    naive = 0.0
    for lamp in ids:
        raw = series.history(lamp, ["energy"], START - 7 * DAY, end, 10_000_000)["energy"]
        # the week before only sets the level: rises count from START on
        spans = (Span(int(t >= START), float(v), float(v)) for t, v in raw)  # type: ignore[arg-type]
        used, _ = counter_energy(spans)
        naive += used.get(1, 0.0)
    naive_s = time.perf_counter() - t
    total = sum(sum(v.values()) for v in energy.values())
    print(
        f"  raw-scan comparison, {lamps:,} lamps x {days} days hourly: boundaries {fast_s:.3f} s, "
        f"raw scan {naive_s:.3f} s ({naive_s / fast_s:.0f}x); kWh {total:,.1f} vs {naive:,.1f}"
    )
    assert abs(total - naive) < 1e-6 * max(1.0, naive), "the boundaries and the raw scan differ"
    series.close()  # type: ignore[attr-defined]
    db.dispose()


@contextlib.contextmanager
def engine(name: str, dsn: str | None) -> Iterator[Callable[[str], str]]:
    """Database URLs by name on ``name``'s engine: temp SQLite files, ``dsn``, or a private
    PostgreSQL cluster (fsync off: this bench times reads)."""
    if name == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield lambda db: f"sqlite:///{tmp}/{db}.db"
    elif dsn is not None:
        yield lambda db: Settings(db=dsn).database_url
    else:
        cluster = PostgresCluster().start()
        try:
            yield lambda db: Settings(db=cluster.create_database(db)).database_url
        finally:
            cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="500 lamps, a year, 1 reading a day")
    parser.add_argument("--lamps", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--per-day", type=int, default=2, help="counter readings per lamp-day")
    parser.add_argument("--runs", type=int, default=7, help="timed repeats after the first")
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--dsn", help="an existing PostgreSQL (emptied tables expected)")
    args = parser.parse_args()
    lamps, runs = (500, 2) if args.short else (args.lamps, args.runs)
    per_day = 1 if args.short else args.per_day
    small = (100, 30) if args.short else (1_000, 120)
    print(
        f"energy report by month: {lamps:,} lamps x {args.days} days, {per_day} counter"
        f" readings per lamp-day written in bulk ({lamps * args.days * per_day:,} rows;"
        f" the read costs {lamps:,} x 13 boundary seeks whatever lies between)"
    )
    for name in args.engines.split(","):
        with engine(name, args.dsn) as url_of:
            print(f"{name}:")
            big = url_of("energy")
            t = time.perf_counter()
            n = load(big, counters(lamps, args.days, per_day, random.Random(15)), args.days)
            print(f"  loaded {n:,} readings and rollups in {time.perf_counter() - t:.1f} s")
            report_numbers(big, lamps, args.days, runs, random.Random(16))
            hourly = url_of("hourly")
            load(hourly, counters(*small, 24, random.Random(17)), small[1])
            compare(hourly, *small)
    print("target: 10,000 lamps x 365 days by month <= 1 s (issue #15)")


if __name__ == "__main__":
    main()
