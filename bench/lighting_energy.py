"""Lighting energy benchmark: a year of lamps' energy by month, from the rollups and raw.

Seeds an SQLite store through its real write path (``SeriesStore.write``) with lamps reporting
their cumulative ``energy`` counter every hour (on at night, dimmed after midnight, 1 % of
lamps reset their counter once), then times:

- ``report``: :func:`read_energy` by month (daily lows and highs from the hourly rollups, the
  days with a reset re-read raw) and the savings per district;
- ``naive``: every lamp's raw readings read back and walked reading by reading.

    python -m bench.lighting_energy            # 10,000 lamps x 365 days (87.6 M readings)
    python -m bench.lighting_energy --short    # 500 lamps x 60 days
    python -m bench.lighting_energy --lamps 2000 --days 120
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from smartpole.lighting.energy import Span, counter_energy, read_energy, savings
from smartpole.model.energy import GridFactor, LampPlace, Tariff
from smartpole.model.types import Reading
from smartpole.model.writes import WriteBatch
from smartpole.store import Database, open_series

ZONE = ZoneInfo("Asia/Shanghai")
HOUR = 3_600_000
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


def load(hour_of_day: int) -> float:
    """kWh a 100 W lamp uses in that local hour: full from 18:00, half from midnight."""
    if hour_of_day >= 18:
        return 0.1
    return 0.05 if hour_of_day < 6 else 0.0


def seed(store_url: str, lamps: int, days: int, rng: random.Random) -> tuple[float, int]:
    """Write the readings a day at a time; return seconds taken and readings written."""
    db = Database(store_url)
    db.upgrade()
    series = open_series(db, flush_ms=1000)
    levels = [rng.uniform(0, 5000) for _ in range(lamps)]
    resets = {i: rng.randrange(days * 24) for i in range(0, lamps, 100)}
    t = time.perf_counter()
    n = 0
    for h in range(days * 24):
        kwh = load(h % 24)
        batch = []
        for i in range(lamps):
            levels[i] = 0.0 if resets.get(i) == h else levels[i] + kwh
            batch.append(Reading(i + 1, "energy", START + h * HOUR, round(levels[i], 4)))
        series.write(WriteBatch(readings=batch))
        n += len(batch)
    series.close()
    db.dispose()
    return time.perf_counter() - t, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="500 lamps x 60 days")
    parser.add_argument("--lamps", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--db", type=Path, help="keep the store here (default: a temp dir)")
    args = parser.parse_args()
    lamps, days = (500, 60) if args.short else (args.lamps, args.days)
    rng = random.Random(15)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "energy.db"
        url = f"sqlite:///{path}"
        took, n = seed(url, lamps, days, rng)
        print(f"seeded {lamps:,} lamps x {days} days: {n:,} readings in {took:.1f} s")
        db = Database(url)
        series = open_series(db)
        ids = list(range(1, lamps + 1))
        places = [
            LampPlace(i, i, f"road-{i % 50}", f"district-{i % 8}", 100.0, 31.23, 121.47)
            for i in ids
        ]
        end = START + days * 24 * HOUR
        t = time.perf_counter()
        energy = read_energy(series, ids, START, end, ZONE, "month")
        read_s = time.perf_counter() - t
        rows = savings(energy, places, START, end, ZONE, "month", TARIFF, GRID, "district")
        report_s = time.perf_counter() - t
        total = sum(sum(v.values()) for v in energy.values())
        t = time.perf_counter()
        naive = 0.0
        for lamp in ids:
            raw = series.history(lamp, ["energy"], START - 7 * 24 * HOUR, end, 10_000_000)
            spans = (Span(0, float(v), float(v)) for _, v in raw["energy"])  # type: ignore[arg-type]
            used, _ = counter_energy(spans)
            naive += sum(used.values())
        naive_s = time.perf_counter() - t
        print(f"{'report by month (rollups)':32} {report_s:8.3f} s  (read {read_s:.3f} s)")
        print(f"{'naive (raw readings scanned)':32} {naive_s:8.3f} s")
        print(f"total kWh: report {total:,.1f}, naive {naive:,.1f}; {len(rows)} report rows")
        print(
            f"target: 10,000 lamps x 365 days <= 1 s; this run: {lamps:,} x {days} ({date.today()})"
        )
        db.dispose()


if __name__ == "__main__":
    main()
