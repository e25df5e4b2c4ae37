"""Where an ingested reading's time goes: each stage of the MQTT gateway path, in µs a reading.

One process, no sockets: a gateway report of 100 sub-devices x 2 keys goes through each stage
the server runs (JSON decode, payload parsing, catalog check into a batch, the store's write
with its derived state, the anomaly detector), and the total is printed against the raw ceiling
of the embedded engine measured in the same run (a plain ``executemany`` of the same rows into
a table with the same primary key). A server that does all of this on one core (the GIL) can
ingest at most 1 / total readings a second.

    python -m bench.stages            # 1,000 reports (200,000 readings)
    python -m bench.stages --short    # CI: 200 reports
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from smartpole.config import Settings
from smartpole.hub.analytics.anomaly import AnomalyService
from smartpole.ingest.payload import decode_json, parse_telemetry, to_batch
from smartpole.model.types import DeviceKind
from smartpole.model.writes import WriteBatch
from smartpole.store import Database, open_series

T0 = 1_764_000_000_000
SUBS = 100


def timed(label: str, readings: int, fn: Callable[[], Any], out: list[tuple[str, float]]) -> Any:
    t = time.perf_counter()
    result = fn()
    out.append((label, (time.perf_counter() - t) / readings * 1e6))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--short", action="store_true")
    args = ap.parse_args()
    reports = 200 if args.short else 1000
    template = orjson.dumps(
        {
            f"sub-{d}": [{"ts": T0, "values": {"power": 100 + d % 50, "voltage": 230}}]
            for d in range(SUBS)
        }
    )
    at = str(T0).encode()
    bodies = [template.replace(at, str(T0 + i * 10_000).encode()) for i in range(reports)]
    n = reports * SUBS * 2
    stages: list[tuple[str, float]] = []
    data = timed("JSON decode (orjson)", n, lambda: [decode_json(b) for b in bodies], stages)
    parsed = timed(
        "payload parsing (ThingsBoard forms)",
        n,
        lambda: [[parse_telemetry(v, T0) for v in d.values()] for d in data],
        stages,
    )

    def checked() -> list[WriteBatch]:
        out = []
        for report in parsed:
            batch = WriteBatch()
            for device, triples in enumerate(report, start=1):
                to_batch(device, DeviceKind.METER, triples, T0, into=batch)
            out.append(batch)
        return out

    batches = timed("catalog check into a batch", n, checked, stages)
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Settings(data_dir=Path(tmp)).database_url)
        db.upgrade()
        ids = range(1, SUBS + 1)
        with db.engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO tenants (id, name, created) VALUES (1, 'city', 0)")
            conn.exec_driver_sql(
                "INSERT INTO devices (id, name, kind, owner_id, token_hash, token_hint, created)"
                " VALUES " + ",".join(f"({d}, 'sub-{d}', 'meter', 1, 'h{d}', '', 0)" for d in ids)
            )
        store = open_series(db, flush_ms=1000)
        # the pipeline merges reports into batches (here 2,000 readings)
        merged = [WriteBatch() for _ in range(0, reports, 10)]
        for i, b in enumerate(batches):
            merged[i // 10].extend(b)

        def write() -> None:
            for b in merged:
                store.write(b)
            store.flush()

        timed("store write (SQLite, derived state)", n, write, stages)
        anomaly = AnomalyService(db.engine, None)
        timed("anomaly detector", n, lambda: [anomaly.process(b.readings) for b in merged], stages)
        store.close()  # type: ignore[attr-defined]
        db.dispose()
        rows = [
            [(r.device_id, r.key, r.ts, 0, float(r.value), None) for r in b.readings]
            for b in merged
        ]
        key_id = {"power": 1, "voltage": 2}
        raw_us = raw_insert(Path(tmp) / "raw.db", "device_id, key TEXT, ts", rows, n)
        # other layouts of the same readings, for the record (smartpole's is the first)
        layouts = [
            (
                "integer key ids (device, key id, ts)",
                raw_insert(
                    Path(tmp) / "ids.db",
                    "device_id, key INTEGER, ts",
                    [[(d, key_id[k], *rest) for d, k, *rest in c] for c in rows],
                    n,
                ),
            ),
            (
                "one integer series id (series, ts)",
                raw_insert(
                    Path(tmp) / "series.db",
                    "series, ts",
                    [[(d * 4 + key_id[k], ts, v) for d, k, ts, _, v, _ in c] for c in rows],
                    n,
                ),
            ),
            (
                "append-only, no key",
                raw_insert(
                    Path(tmp) / "heap.db",
                    None,
                    [[(d * 4 + key_id[k], ts, v) for d, k, ts, _, v, _ in c] for c in rows],
                    n,
                ),
            ),
        ]
    total = sum(us for _, us in stages)
    print(f"smartpole ingest stages: {reports:,} gateway reports of {SUBS} devices x 2 keys")
    for label, us in stages:
        print(f"  {label:40} {us:6.2f} µs a reading  {100 * us / total:4.0f} %")
    print(f"  {'total':40} {total:6.2f} µs a reading  = {1e6 / total:,.0f} readings/s on one core")
    print(
        f"  raw SQLite executemany, same rows:       {raw_us:6.2f} µs a reading"
        f"  (the stages cost {total / raw_us:.1f}x the engine's own insert)"
    )
    for label, us in layouts:
        print(f"    other layout: {label:38} {us:6.2f} µs  ({us / raw_us:.2f}x)")
    target = 200_000
    print(
        f"  at {target:,} readings/s the stages alone need {total * target / 1e6:.2f} cores"
        f" (this machine: {os.cpu_count()})"
    )


def raw_insert(path: Path, key: str | None, rows: list[list[tuple[Any, ...]]], n: int) -> float:
    """µs a reading of a plain ``executemany`` of ``rows`` into a new table: the columns of
    ``readings`` keyed by ``key`` (WITHOUT ROWID), or, when ``key`` is None, three columns
    (series, ts, value) in an append-only rowid table."""
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=FULL")
    if key is None:
        raw.execute("CREATE TABLE raw (series INTEGER, ts INTEGER, num REAL)")
    elif key == "series, ts":
        raw.execute(
            "CREATE TABLE raw (series INTEGER, ts INTEGER, num REAL,"
            " PRIMARY KEY (series, ts)) WITHOUT ROWID"
        )
    else:
        raw.execute(
            f"CREATE TABLE raw (device_id INTEGER, {key.split(', ')[1]}, ts INTEGER,"
            " vtype INTEGER, num REAL, txt TEXT, PRIMARY KEY (device_id, key, ts)) WITHOUT ROWID"
        )
    marks = ",".join("?" * len(rows[0][0]))
    verb = "INSERT" if key is None else "INSERT OR IGNORE"
    t = time.perf_counter()
    for chunk in rows:
        raw.execute("BEGIN")
        raw.executemany(f"{verb} INTO raw VALUES ({marks})", chunk)
        raw.execute("COMMIT")
    us = (time.perf_counter() - t) / n * 1e6
    raw.close()
    return us


if __name__ == "__main__":
    main()
