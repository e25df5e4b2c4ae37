"""Map benchmark: what ``GET /api/map/poles`` costs at city size, beside GeoJSON features.

Seeds poles through the registry's import (CSV; one transaction), their devices straight into
the registry's table (a gateway and a lamp on every pole, a camera of the police on every
fifth, an air sensor of the environment bureau on every tenth; 2 % never heard from) and
1 % of the poles with an active alarm, on the embedded store. Then, in process (the app over
ASGI, so the times are the server's own):

- the bytes of ``/api/map/poles`` for the city operator, raw and gzipped, and its time p50/p95
  over 20 requests; the time of a revalidation that answers 304;
- the same for the police (a tenant that sees a fifth of the poles);
- the baseline: the same poles as GeoJSON features from ``/api/poles/export``;
- the time to build the pole-state index from the store and its memory (tracemalloc).

    python -m bench.map            # full: 100,000 poles
    python -m bench.map --short    # CI: 10,000 poles (< 30 s)
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import random
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

from smartpole.api import create_app
from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.hub.alarms.tables import alarm_tenants, alarms
from smartpole.hub.poles import PoleStates
from smartpole.model.clock import now_ms
from smartpole.model.types import Role
from smartpole.registry.inventory import import_poles
from smartpole.sim.seed import city_principal
from smartpole.store.schema import devices

DISTRICTS = [f"D{i:02d}" for i in range(20)]
ROADS_PER_DISTRICT = 25
REQUESTS = 20


def seed(p: Platform, n_poles: int) -> dict[str, int]:
    """Poles through the registry's import, devices and alarms straight into their tables."""
    city = city_principal(p.tenants)
    ids = {"city": city.tenant_id}
    for name in ("lighting", "police", "environment"):
        ids[name] = p.tenants.create(name)["id"]
    rng = random.Random(14)
    lines = ["code,lat,lon,district,road"]
    for i in range(n_poles):
        district = i % len(DISTRICTS)
        road = (i // len(DISTRICTS)) % ROADS_PER_DISTRICT
        lat = 22.45 + 0.01 * (district // 5) + rng.random() * 0.01
        lon = 113.90 + 0.01 * (district % 5) + rng.random() * 0.01
        lines.append(f"P{i:06d},{lat:.7f},{lon:.7f},{DISTRICTS[district]},R{road:02d}")
    report = import_poles(p.assets, city, "\n".join(lines) + "\n", "csv")
    assert report.applied, report.rejected[:3]
    now = now_ms()
    rows: list[dict[str, Any]] = []
    for i in range(n_poles):
        pole = i + 1
        mounted = [(1, "gateway", "city"), (2, "lamp", "lighting")]
        if i % 5 == 0:
            mounted.append((3, "camera", "police"))
        if i % 10 == 0:
            mounted.append((4, "air", "environment"))
        for port, kind, owner in mounted:
            rows.append(
                {
                    "name": f"{kind}-{i}",
                    "kind": kind,
                    "owner_id": ids[owner],
                    "pole_id": pole,
                    "port": port,
                    "token_hash": f"h-{kind}-{i}",
                    "token_hint": "x",
                    "last_seen": None if rng.random() < 0.02 else now,
                    "created": now,
                }
            )
    raised = [
        {
            "tenant_id": ids["lighting"],
            "originator_type": "pole",
            "originator_id": pole,
            "type": "pole_tilt",
            "severity": rng.choice(["critical", "major", "minor", "warning"]),
            "status": "active_unack",
            "details": "{}",
            "pole_id": pole,
            "first_ts": now,
            "last_ts": now,
            "count": 1,
        }
        for pole in range(1, n_poles + 1, 100)
    ]
    with p.db.engine.begin() as conn:
        for start in range(0, len(rows), 20_000):
            conn.execute(insert(devices), rows[start : start + 20_000])
        conn.execute(insert(alarms), raised)
        conn.execute(
            insert(alarm_tenants),
            [{"alarm_id": i + 1, "tenant_id": ids["lighting"]} for i in range(len(raised))],
        )
    return ids


def _ms(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms"


async def timed_get(
    client: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> tuple[list[float], httpx.Response]:
    times, r = [], None
    for _ in range(REQUESTS):
        t = time.perf_counter()
        r = await client.get(path, headers=headers)
        times.append(time.perf_counter() - t)
        assert r.status_code == 200, r.text[:200]
    assert r is not None
    return times, r


async def run(n_poles: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p = Platform(Settings(data_dir=Path(tmp), mqtt_port=-1, metrics_port=-1))
        p.upgrade()
        t = time.perf_counter()
        ids = seed(p, n_poles)
        print(f"seeded {n_poles:,} poles in {time.perf_counter() - t:.1f} s")
        await p.start()
        try:
            await measure(p, ids, n_poles)
        finally:
            await p.stop()


async def measure(p: Platform, ids: dict[str, int], n_poles: int) -> None:
    tracemalloc.start()
    index = PoleStates(p.db.engine, is_online=p.is_online)
    before = tracemalloc.get_traced_memory()[0]
    t = time.perf_counter()
    await index.start()
    built = time.perf_counter() - t
    memory = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    print(
        f"pole-state index: built in {built:.2f} s, {memory / 1e6:.1f} MB "
        f"({index.held():,} entries; {index.offline:,} devices offline)"
    )
    keys = {
        name: p.tenants.create_key(tenant_id, Role.VIEWER)[1] for name, tenant_id in ids.items()
    }
    app = create_app(p.api_services())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for tenant in ("city", "police"):
            auth = {"Authorization": f"Bearer {keys[tenant]}"}
            raw = await client.get(
                "/api/map/poles", headers={**auth, "Accept-Encoding": "identity"}
            )
            count = len(raw.json()["poles"]["id"])
            times, r = await timed_get(
                client, "/api/map/poles", {**auth, "Accept-Encoding": "gzip"}
            )
            zipped = int(r.headers["content-length"])
            t = time.perf_counter()
            again = await client.get(
                "/api/map/poles", headers={**auth, "If-None-Match": r.headers["etag"]}
            )
            revalidated = time.perf_counter() - t
            assert again.status_code == 304
            print(
                f"/api/map/poles as {tenant:<7} {count:>7,} poles: {len(raw.content):>11,} B raw, "
                f"{zipped:>9,} B gzip ({zipped / count:.1f} B a pole); {_ms(times)}; "
                f"304 in {revalidated * 1000:.0f} ms"
            )
        auth = {"Authorization": f"Bearer {keys['city']}"}
        times, r = await timed_get(client, "/api/poles/export?format=geojson", auth)
        body = r.content
        features = len(r.json()["features"])
        print(
            f"baseline GeoJSON  {features:>7,} features: {len(body):>11,} B raw, "
            f"{len(gzip.compress(body, 6)):>9,} B gzip; {_ms(times)}"
        )
    assert features == n_poles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="10,000 poles (CI)")
    parser.add_argument("--poles", type=int, default=None, help="how many poles")
    args = parser.parse_args()
    n = args.poles or (10_000 if args.short else 100_000)
    asyncio.run(run(n))


if __name__ == "__main__":
    main()
