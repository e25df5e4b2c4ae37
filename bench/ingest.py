"""Ingest benchmark: the store write path and HTTP ingest, on both engines.

Each engine's numbers are printed beside its raw ceiling measured in the same run: a plain
batched insert (SQLite ``executemany``, PostgreSQL ``COPY``) of the same rows into a table with
the same primary key, one transaction per batch. Raw and store alternate over three rounds, each
as fresh as the other (new tables; for the store a new SQLite file, or a new month's partition),
and the ratio is the median of the rounds' ratios. Also: latest state of 10,000 devices and a
24 h hourly aggregate over 1,000 devices.

    python -m bench.ingest            # full: 1,000,000 readings per engine
    python -m bench.ingest --short    # CI: 50,000 readings
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pg import PostgresCluster
from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.model.types import Reading
from smartpole.model.writes import WriteBatch
from smartpole.sim.seed import city_principal
from smartpole.store import Database, SeriesStore, open_series
from smartpole.store.values import encode_value

HOUR = 3_600_000
T0 = 1_764_000_000_000 - 1_764_000_000_000 % HOUR
KEYS = ("power", "voltage", "current", "dim", "energy")
ROUNDS = 3
RAW_SQLITE = (
    "CREATE TABLE raw (device_id INTEGER, key TEXT, ts INTEGER, vtype INTEGER, num REAL,"
    " txt TEXT, PRIMARY KEY (device_id, key, ts)) WITHOUT ROWID"
)
RAW_PG = (
    "CREATE TABLE raw (device_id integer, key text, ts bigint, vtype smallint,"
    " num double precision, txt text, PRIMARY KEY (device_id, key, ts))"
)


def workload(devices: int, total: int, step_ms: int = 10_000) -> Iterator[Reading]:
    """Readings as a fleet sends them: every device, every key, one tick after another."""
    rng = random.Random(7)
    n = 0
    tick = 0
    while True:
        ts = T0 + tick * step_ms
        for d in range(1, devices + 1):
            for k in KEYS:
                yield Reading(d, k, ts, round(rng.uniform(0, 200), 2))
                n += 1
                if n >= total:
                    return
        tick += 1


def batches(readings: list[Reading], size: int) -> list[list[Reading]]:
    return [readings[i : i + size] for i in range(0, len(readings), size)]


def timed(fn: Callable[[], Any], repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def raw_ceiling(db: Database, chunks: list[list[Reading]], name: str = "raw") -> float:
    """Seconds for the plain batched insert of every chunk (into a new table ``name``)."""
    raw = db.engine.raw_connection()
    conn: Any = raw.driver_connection
    try:
        if db.dialect == "sqlite":
            conn.execute(RAW_SQLITE.replace("raw (", f"{name} ("))
            conn.commit()
            t = time.perf_counter()
            for chunk in chunks:
                conn.execute("BEGIN")
                conn.executemany(
                    f"INSERT OR IGNORE INTO {name} VALUES (?,?,?,?,?,?)",
                    [(r.device_id, r.key, r.ts, *encode_value(r.value)) for r in chunk],
                )
                conn.execute("COMMIT")
            return time.perf_counter() - t
        with conn.cursor() as cur:
            cur.execute(RAW_PG.replace("raw (", f"{name} ("))
        conn.commit()
        return _copy_all(conn, name, chunks)
    finally:
        raw.close()


def _copy_all(conn: Any, table: str, chunks: list[list[Reading]]) -> float:
    """Seconds to COPY every chunk into ``table``, one transaction each."""
    t = time.perf_counter()
    for chunk in chunks:
        with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN") as copy:
            for r in chunk:
                copy.write_row((r.device_id, r.key, r.ts, *encode_value(r.value)))
        conn.commit()
    return time.perf_counter() - t


def raw_partitioned(db: Database, chunks: list[list[Reading]], name: str = "rawp") -> float:
    """PostgreSQL only: the same COPY into a table partitioned by month, as ``readings`` is."""
    raw = db.engine.raw_connection()
    conn: Any = raw.driver_connection
    try:
        lo = min(r.ts for c in chunks for r in c)
        hi = max(r.ts for c in chunks for r in c)
        with conn.cursor() as cur:
            cur.execute(RAW_PG.replace("raw (", f"{name} (") + " PARTITION BY RANGE (ts)")
            cur.execute(
                f"CREATE TABLE {name}_1 PARTITION OF {name} FOR VALUES FROM ({lo}) TO ({hi + 1})"
            )
        conn.commit()
        return _copy_all(conn, name, chunks)
    finally:
        raw.close()


def store_path(store: SeriesStore, chunks: list[list[Reading]]) -> float:
    t = time.perf_counter()
    for chunk in chunks:
        store.write(WriteBatch(readings=chunk))
    store.flush()  # the derived state is part of the cost
    return time.perf_counter() - t


def query_numbers(store: SeriesStore, short: bool) -> dict[str, float]:
    """Latest of 10,000 devices, and a 24 h hourly average over 1,000 devices (ms, best of 5)."""
    latest_ids = list(range(100_001, 110_001))
    now = T0 + 30 * 86_400_000
    rows = [Reading(d, k, now, 1.5) for d in latest_ids for k in ("power", "dim")]
    for chunk in batches(rows, 5000):
        store.write(WriteBatch(readings=chunk))
    # 1,000 devices, one power reading a minute for 24 h (1.44 M rows; 20 % of that if short).
    agg_ids = list(range(200_001, 201_001))
    step = 300_000 if short else 60_000
    start = T0 + 40 * 86_400_000
    rng = random.Random(3)
    buf: list[Reading] = []
    for ts in range(start, start + 86_400_000, step):
        buf.extend(Reading(d, "power", ts, rng.uniform(50, 60)) for d in agg_ids)
        if len(buf) >= 20_000:
            store.write(WriteBatch(readings=buf))
            buf = []
    if buf:
        store.write(WriteBatch(readings=buf))
    latest_ms = 1000 * timed(lambda: store.latest(latest_ids), 5)
    agg = lambda: store.aggregate(agg_ids, ["power"], start, start + 86_400_000, HOUR, "avg")  # noqa: E731
    agg_ms = 1000 * timed(agg, 5)
    fleet = lambda: store.aggregate(  # noqa: E731
        agg_ids, ["power"], start, start + 86_400_000, HOUR, "avg", per_device=False
    )
    return {
        "latest_10k_ms": latest_ms,
        "agg_24h_1k_ms": agg_ms,
        "agg_fleet_ms": 1000 * timed(fleet, 5),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _http_load(base: str, tokens: list[str], requests: int, per_request: int) -> list[float]:
    """Post pre-encoded requests over 32 keep-alive connections; return each latency (s).

    Raw HTTP/1.1 on asyncio streams, so that the load generator is not the bottleneck.
    """
    host, port = base.removeprefix("http://").split(":")
    bodies = []
    for i in range(requests):
        ts = T0 + i * 1000
        body = orjson.dumps(
            [
                {"ts": ts + j, "values": {"power": j % 200, "dim": j % 100}}
                for j in range(per_request // 2)
            ]
        )
        head = (
            f"POST /api/v1/{tokens[i % len(tokens)]}/telemetry HTTP/1.1\r\n"
            f"Host: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        bodies.append(head + body)
    latencies: list[float] = []
    it = iter(bodies)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for request in it:
                t = time.perf_counter()
                writer.write(request)
                status = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t)
                if b" 200 " not in status:
                    raise RuntimeError(f"ingest failed: {status!r}")
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(32)))
    return latencies


def _lamp_tokens(db_url: str | None, data_dir: str, n: int = 50) -> list[str]:
    """Register ``n`` lamps in the server's store before it starts; return their tokens."""
    settings = Settings(db=db_url, data_dir=Path(data_dir))
    p = Platform(settings)
    p.upgrade()
    who = city_principal(p.tenants)
    specs = [{"name": f"bench-lamp-{i}", "kind": "lamp", "owner": "city"} for i in range(n)]
    tokens = [t for _, _, t in p.assets.create_devices(who, specs)]
    p.db.dispose()
    return tokens


def http_numbers(db_url: str | None, env: dict[str, str], requests: int) -> dict[str, float]:
    """Readings/s through a real ``smartpole serve`` process, 32 concurrent clients."""
    port = _free_port()
    exe = Path(sys.executable).parent / "smartpole"
    with tempfile.TemporaryDirectory() as tmp:
        tokens = _lamp_tokens(db_url, tmp)
        cmd = [str(exe), "serve", "--http-port", str(port), "--mqtt-port", "-1", "--data-dir", tmp]
        if db_url:
            cmd += ["--db", db_url]
        server = subprocess.Popen(cmd, env={**env, "SMARTPOLE_LOG_LEVEL": "WARNING"})
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            per_request = 100
            t = time.perf_counter()
            lat = asyncio.run(_http_load(base, tokens, requests, per_request))
            wall = time.perf_counter() - t
        finally:
            server.terminate()
            server.wait(10)
    lat.sort()
    return {
        "http_readings_per_s": requests * per_request / wall,
        "http_requests_per_s": requests / wall,
        "http_p50_ms": 1000 * statistics.median(lat),
        "http_p99_ms": 1000 * lat[max(0, int(len(lat) * 0.99) - 1)],
    }


def run_engine(name: str, db: Database, total: int, batch: int, short: bool) -> dict[str, float]:
    db.upgrade()
    store = open_series(db, flush_ms=Settings.model_fields["derived_flush_ms"].default)
    readings = list(workload(1000, total))
    # Rounds of raw, store (and partitioned raw), each into new tables or a new time range: this
    # shared machine's speed drifts by a third within a minute, so one pair of runs can show
    # either side ahead. The ratio is the median of the rounds' ratios.
    raws: list[float] = []
    stores: list[float] = []
    parts: list[float] = []
    for r in range(ROUNDS):
        shift = r * 100 * 86_400_000  # a new month: fresh partitions, like the raw tables
        chunks = batches(
            [Reading(x.device_id, x.key, x.ts + shift, x.value) for x in readings], batch
        )
        raws.append(raw_ceiling(db, chunks, f"raw{r}"))
        if db.dialect == "sqlite" and r:
            # no partitions in SQLite: a new file is what is as fresh as the raw table
            fresh = Database(db.url.replace(".db", f"-{r}.db"))
            fresh.upgrade()
            other = open_series(fresh, flush_ms=store.flush_ms)
            stores.append(store_path(other, chunks))
            other.close()  # type: ignore[attr-defined]
            fresh.dispose()
        else:
            stores.append(store_path(store, chunks))
        if db.dialect == "postgresql":
            parts.append(raw_partitioned(db, chunks, f"rawp{r}"))
    out = {
        "raw_rows_per_s": total / statistics.median(raws),
        "store_rows_per_s": total / statistics.median(stores),
        "store_vs_raw": statistics.median(s / w for s, w in zip(stores, raws, strict=True)),
    }
    if parts:
        out["rawp_rows_per_s"] = total / statistics.median(parts)
        out["store_vs_rawp"] = statistics.median(s / w for s, w in zip(stores, parts, strict=True))
    out.update(query_numbers(store, short))
    store.close()  # type: ignore[attr-defined]
    return out


def report(name: str, n: dict[str, float]) -> None:
    print(f"\n== {name}")
    print(f"  raw ceiling (plain batched insert): {n['raw_rows_per_s']:>12,.0f} readings/s")
    print(
        f"  store write path:                   {n['store_rows_per_s']:>12,.0f} readings/s"
        f"   = {n['store_vs_raw']:.2f}x the raw time (target <= 1.5x)"
    )
    if "rawp_rows_per_s" in n:
        print(
            f"  raw COPY into a partitioned table:  {n['rawp_rows_per_s']:>12,.0f} readings/s"
            f"   (store = {n['store_vs_rawp']:.2f}x its time)"
        )
    if "http_readings_per_s" in n:
        print(
            f"  HTTP ingest (32 clients, 100/req):  {n['http_readings_per_s']:>12,.0f} readings/s"
            f"   ({n['http_requests_per_s']:,.0f} req/s, p50 {n['http_p50_ms']:.1f} ms,"
            f" p99 {n['http_p99_ms']:.1f} ms; {n['http_readings_per_s'] / n['raw_rows_per_s']:.2f}"
            " of raw)"
        )
    print(f"  latest of 10,000 devices:           {n['latest_10k_ms']:>9.1f} ms (target < 50)")
    print(
        f"  24 h hourly avg, 1,000 devices:     {n['agg_24h_1k_ms']:>9.1f} ms (target < 200),"
        f" fleet-wide {n['agg_fleet_ms']:.1f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--short", action="store_true", help="small run for CI")
    ap.add_argument("--readings", type=int, default=None)
    ap.add_argument("--batch", type=int, default=20_000, help="the pipeline default")
    ap.add_argument("--engines", default="sqlite,postgres")
    args = ap.parse_args()
    total = args.readings or (50_000 if args.short else 1_000_000)
    requests = 200 if args.short else 2000
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTPOLE_")}
    print(
        f"smartpole ingest benchmark: {total:,} readings, batches of {args.batch}, "
        f"1,000 devices x {len(KEYS)} keys"
    )
    engines = args.engines.split(",")
    if "sqlite" in engines:
        with tempfile.TemporaryDirectory() as tmp:
            n = run_engine(
                "sqlite", Database(f"sqlite:///{tmp}/bench.db"), total, args.batch, args.short
            )
        n.update(http_numbers(None, env, requests))
        report("embedded (SQLite, WAL, synchronous=FULL)", n)
    if "postgres" in engines:
        cluster = PostgresCluster(durable=True).start()
        try:
            url = cluster.create_database("bench")
            n = run_engine(
                "postgres", Database(Settings(db=url).database_url), total, args.batch, args.short
            )
            n.update(http_numbers(cluster.create_database("bench_http"), env, requests))
            report("PostgreSQL 15 (fsync on, COPY, monthly partitions)", n)
        finally:
            cluster.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nbenchmark process peak RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
