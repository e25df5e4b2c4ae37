"""NGSI-LD benchmark: batch upserts, a geo-query, a temporal lastN and notifications through a
receiver that is down for a while, against a real ``smartpole serve`` (embedded store).

* **upsert**: ``POST /entityOperations/upsert`` of N entities in batches of 1,000 (two clients
  at once), beside the floor of the same entities' JSON written straight into SQLite in the
  same sitting (no parsing, no @context, no index, no history: what no broker can beat).
* **near**: ``type=…&georel=near;maxDistance==500`` over those N entities, p50 and p99 of
  repeated queries at random points.
* **lastN**: ``/temporal/entities?type=…&lastN=100`` over 1,000 entities with 100 instances
  each (written by 100 batch updates first).
* **notifications**: one subscription; changes at a steady rate by batch updates, each carrying
  its sequence number and time; the receiver is down (port closed) for a stretch in the middle.
  Printed: changes sent, delivered, missing, delivered twice, delay p50/p99/max.

    python -m bench.ngsi_ld           # 100,000 entities; 1,000 changes/s for 40 s, 10 s down
    python -m bench.ngsi_ld --short   # 10,000 entities; 1,000 changes/s for 8 s, 3 s down
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import quantiles
from typing import Any

import httpx
import orjson
import uvicorn

from bench.fleet import EXE, free_port, wait_ready
from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.model.types import Role

BATCH = 1000
TYPE = "AirQualityObserved"
ORION_UPDATES_S = 700  # Orion's published rate on 4 cores (the reference, not measured)


def entity(n: int, rng: random.Random) -> dict[str, Any]:
    """An air-quality observation somewhere in a 10 km square."""
    return {
        "id": f"urn:ngsi-ld:{TYPE}:bench-{n}",
        "type": TYPE,
        "pm25": {"type": "Property", "value": rng.randint(5, 150), "unitCode": "GQ"},
        "no2": {"type": "Property", "value": rng.randint(5, 90), "unitCode": "GQ"},
        "location": {
            "type": "GeoProperty",
            "value": {
                "type": "Point",
                "coordinates": [114.0 + rng.random() * 0.1, 22.5 + rng.random() * 0.1],
            },
        },
    }


def seed_key(data: Path) -> str:
    """A city operator tenant and an operator key, written before the server starts."""
    p = Platform(Settings(data_dir=data))
    p.upgrade()
    tenant = p.tenants.create("city", "City", is_operator=True)
    key = p.tenants.create_key(tenant["id"], Role.OPERATOR)[1]
    p.db.dispose()
    return key


def percentiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (0.0, 0.0)
    cuts = quantiles(values, n=100)
    return cuts[49], cuts[98]


def upserts(base: str, auth: dict[str, str], n: int) -> float:
    """Entities/s of batch upserts of ``n`` entities (two clients)."""
    rng = random.Random(1)
    batches = [
        orjson.dumps([entity(i, rng) for i in range(start, min(n, start + BATCH))])
        for start in range(0, n, BATCH)
    ]
    headers = {**auth, "Content-Type": "application/json"}

    def send(chunk: list[bytes]) -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            for body in chunk:
                r = client.post(
                    "/ngsi-ld/v1/entityOperations/upsert", content=body, headers=headers
                )
                assert r.status_code in (201, 204), r.text

    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(send, [batches[0::2], batches[1::2]]))
    return n / (time.perf_counter() - t0)


def naive_floor(n: int) -> float:
    """Entities/s of the same JSON written straight into SQLite (a floor, not a broker)."""
    rng = random.Random(1)
    rows = [(f"urn:ngsi-ld:{TYPE}:bench-{i}", orjson.dumps(entity(i, rng))) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "naive.db")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE e (id TEXT PRIMARY KEY, body BLOB) WITHOUT ROWID")
        t0 = time.perf_counter()
        for start in range(0, n, BATCH):
            db.executemany("INSERT OR REPLACE INTO e VALUES (?, ?)", rows[start : start + BATCH])
            db.commit()
        elapsed = time.perf_counter() - t0
        db.close()
    return n / elapsed


def near_queries(base: str, auth: dict[str, str], runs: int) -> tuple[float, float, float]:
    """p50, p99 (ms) of near queries and the mean number of entities found."""
    rng = random.Random(2)
    times, found = [], []
    with httpx.Client(base_url=base, timeout=60, headers=auth) as client:
        for _ in range(runs):
            lon, lat = 114.0 + rng.random() * 0.1, 22.5 + rng.random() * 0.1
            params = {
                "type": TYPE,
                "georel": "near;maxDistance==500",
                "geometry": "Point",
                "coordinates": f"[{lon},{lat}]",
                "limit": 1000,
            }
            t0 = time.perf_counter()
            r = client.get("/ngsi-ld/v1/entities", params=params)
            times.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200, r.text
            found.append(len(r.json()))
    p50, p99 = percentiles(times)
    return p50, p99, sum(found) / len(found)


def last_n(base: str, auth: dict[str, str]) -> tuple[float, float, int]:
    """p50, p99 (ms) of lastN=100 over 1,000 entities with 100 instances each."""
    kind = "Counter"
    headers = {**auth, "Content-Type": "application/json"}
    with httpx.Client(base_url=base, timeout=120, headers=headers) as client:
        first = [{"id": f"urn:ngsi-ld:{kind}:{i}", "type": kind, "n": 0} for i in range(1000)]
        assert client.post(
            "/ngsi-ld/v1/entityOperations/upsert", content=orjson.dumps(first)
        ).is_success
        for step in range(1, 100):
            body = [{"id": f"urn:ngsi-ld:{kind}:{i}", "n": step} for i in range(1000)]
            r = client.post("/ngsi-ld/v1/entityOperations/update", content=orjson.dumps(body))
            assert r.status_code == 204, r.text
        times, instances = [], 0
        params = {"type": kind, "lastN": 100, "limit": 1000}
        for _ in range(5):
            t0 = time.perf_counter()
            r = client.get("/ngsi-ld/v1/temporal/entities", params=params)
            times.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200, r.text
            instances = sum(len(e["n"]) for e in r.json())
    p50, p99 = percentiles(times)
    return p50, p99, instances


class Receiver:
    """The notification receiver, in a thread of its own; ``down``/``up`` close and reopen it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.seen: list[tuple[int, float]] = []  # (sequence number, delay ms)
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        now = time.time() * 1000
        for e in orjson.loads(body)["data"]:
            self.seen.append((e["seq"], now - e["at"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def up(self) -> None:
        config = uvicorn.Config(
            self._app, port=self.port, log_level="error", lifespan="off", interface="asgi3"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        while not self._server.started:
            time.sleep(0.01)

    def down(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join()


def notifications(
    base: str, auth: dict[str, str], rate: int, seconds: int, outage: tuple[int, int]
) -> dict[str, Any]:
    """Changes at ``rate``/s for ``seconds``, the receiver down from ``outage[0]`` to
    ``outage[1]`` seconds in."""
    receiver = Receiver()
    receiver.up()
    headers = {**auth, "Content-Type": "application/json"}
    entities = 100
    with httpx.Client(base_url=base, timeout=60, headers=headers) as client:
        first = [
            {"id": f"urn:ngsi-ld:Sensor:{i}", "type": "Sensor", "seq": -1, "at": 0}
            for i in range(entities)
        ]
        assert client.post(
            "/ngsi-ld/v1/entityOperations/upsert", content=orjson.dumps(first)
        ).is_success
        sub = {
            "type": "Subscription",
            "entities": [{"type": "Sensor"}],
            "watchedAttributes": ["seq"],
            "notification": {
                "endpoint": {"uri": f"http://127.0.0.1:{receiver.port}/n"},
                "format": "keyValues",
                "attributes": ["seq", "at"],
            },
        }
        assert (
            client.post("/ngsi-ld/v1/subscriptions", content=orjson.dumps(sub)).status_code == 201
        )
        seq = 0
        ticks = 10  # batches per second
        per_tick = rate // ticks
        t0 = time.monotonic()
        went_down = came_up = False
        for tick in range(seconds * ticks):
            elapsed = time.monotonic() - t0
            if not went_down and elapsed >= outage[0]:
                receiver.down()
                went_down = True
            if went_down and not came_up and elapsed >= outage[1]:
                receiver.up()
                came_up = True
            now = time.time() * 1000
            body = []
            for _ in range(per_tick):
                body.append({"id": f"urn:ngsi-ld:Sensor:{seq % entities}", "seq": seq, "at": now})
                seq += 1
            r = client.post("/ngsi-ld/v1/entityOperations/update", content=orjson.dumps(body))
            assert r.status_code == 204, r.text
            pause = t0 + (tick + 1) / ticks - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        sending_s = time.monotonic() - t0
        if not came_up:
            receiver.up()
        deadline = time.monotonic() + 60
        while len({s for s, _ in receiver.seen}) < seq and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # anything sent twice would come now
    receiver.down()
    got = [s for s, _ in receiver.seen]
    delays = [d for _, d in receiver.seen]
    p50, p99 = percentiles(delays)
    return {
        "sent": seq,
        "rate": seq / sending_s,
        "delivered": len(set(got)),
        "missing": seq - len(set(got)),
        "twice": len(got) - len(set(got)),
        "p50": p50,
        "p99": p99,
        "max": max(delays, default=0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="quick run (CI)")
    args = parser.parse_args()
    n = 10_000 if args.short else 100_000
    seconds, outage = (8, (3, 6)) if args.short else (40, (15, 25))
    print(f"smartpole NGSI-LD benchmark: {n:,} entities, smartpole serve on the embedded store")
    with tempfile.TemporaryDirectory(prefix="bench-ngsi-") as tmp:
        data = Path(tmp)
        key = seed_key(data)
        port = free_port()
        server = subprocess.Popen(
            [
                str(EXE),
                "serve",
                "--data-dir",
                str(data),
                "--http-port",
                str(port),
                "--mqtt-port",
                "-1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "SMARTPOLE_LOG_LEVEL": "WARNING"},
        )
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {key}"}
        try:
            wait_ready(base)
            rate = upserts(base, auth, n)
            floor = naive_floor(n)
            print(
                f"upsert      {rate:>10,.0f} entities/s  (target >= 20,000; naive SQLite floor "
                f"{floor:,.0f}/s, {rate / floor:.2f}x; Orion's published ~{ORION_UPDATES_S}/s)"
            )
            p50, p99, found = near_queries(base, auth, 50)
            print(
                f"near        p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  over {n:,} entities, "
                f"{found:.0f} found on average (target <= 50 ms)"
            )
            p50, p99, instances = last_n(base, auth)
            print(
                f"lastN=100   p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  over 1,000 entities, "
                f"{instances:,} instances (target <= 200 ms)"
            )
            r = notifications(base, auth, 1000, seconds, outage)
            print(
                f"notify      {r['sent']:,} changes at {r['rate']:,.0f}/s, receiver down "
                f"{outage[1] - outage[0]} s: delivered {r['delivered']:,}, missing {r['missing']}, "
                f"twice {r['twice']}; delay p50 {r['p50']:,.0f} ms, p99 {r['p99']:,.0f} ms, "
                f"max {r['max']:,.0f} ms"
            )
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
