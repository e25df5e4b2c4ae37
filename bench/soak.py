"""Soak: ``smartpole serve`` under the fleet simulator for a long while; is memory flat?

A real ``smartpole serve`` (embedded store, the city's default rules) and ``smartpole sim``
(gateway mode, QoS 1, the simulator's default fault rates, so that the hub raises and clears
alarms) run as separate processes for ``--minutes``. Every ``--every`` seconds it scrapes the
server's ``/metrics`` with a city viewer key and prints its resident memory, open files, the
ingest, hub and anomaly queues, and readings stored so far. At the end: a verdict on memory
growth, judged after a warm-up (caches, SQLite's page cache and the anomaly baselines fill
during the first minutes), from the least-squares slope of RSS over time and the growth from the
first sample after warm-up to the last.

    python -m bench.soak                 # 30 minutes, 500 poles (make soak)
    python -m bench.soak --short         # about 30 s (CI)
    python -m bench.soak --minutes 10 --poles 1000 --every 30
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.fleet import EXE, free_port
from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.hub.rules.documents import default_rules
from smartpole.sim.fleet import FLEET_FILE, fleet_from_plan
from smartpole.sim.seed import city_principal, seed_district

MB = 1024 * 1024
# Flat: after warm-up, RSS grows by less than this (MB, or this fraction of the warm RSS).
FLAT_MB = 24.0
FLAT_FRACTION = 0.10


@dataclass(frozen=True, slots=True)
class Sample:
    """One scrape of the server's metrics."""

    t: float  # seconds since the simulator started
    rss_mb: float
    open_files: int
    pending: int  # readings queued for commit
    hub_queued: int
    anomaly_queued: int
    stored: int
    connections: int
    rejected: int


def seed(data: Path, poles: int) -> str:
    """Register the district and the default rules in-process; return a city viewer key."""
    p = Platform(Settings(data_dir=data))
    p.upgrade()
    seeded = seed_district(p.tenants, p.assets, poles)
    fleet_from_plan(seeded.plan, seeded.tokens, 1, "Futian").save(data / FLEET_FILE)
    operator = city_principal(p.tenants)
    for rule in default_rules():
        p.hub.rules.put(operator, rule)
    p.db.dispose()
    return str(seeded.keys["city"]["viewer"])


def scrape(api: httpx.Client, t: float) -> Sample:
    """Read one sample from ``/metrics``."""
    r = api.get("/metrics")
    r.raise_for_status()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            values[s.name] = values.get(s.name, 0.0) + s.value  # sums labelled series
    return Sample(
        t=t,
        rss_mb=values["process_resident_memory_bytes"] / MB,
        open_files=int(values["process_open_fds"]),
        pending=int(values["smartpole_pipeline_pending_readings"]),
        hub_queued=int(values["smartpole_hub_queued_batches"]),
        anomaly_queued=int(values["smartpole_anomaly_queued_batches"]),
        stored=int(values["smartpole_readings_stored_total"]),
        connections=int(values.get("smartpole_mqtt_connections", 0)),
        rejected=int(values.get("smartpole_messages_rejected_total", 0)),
    )


def slope(samples: list[Sample]) -> float:
    """Least-squares RSS growth in MB per hour."""
    n = len(samples)
    if n < 2:
        return 0.0
    mt = sum(s.t for s in samples) / n
    mr = sum(s.rss_mb for s in samples) / n
    var = sum((s.t - mt) ** 2 for s in samples)
    cov = sum((s.t - mt) * (s.rss_mb - mr) for s in samples)
    return cov / var * 3600 if var else 0.0


def verdict(samples: list[Sample], warmup_s: float) -> tuple[bool, str]:
    """Whether memory stayed flat after the warm-up, and the numbers that say so."""
    warm = [s for s in samples if s.t >= warmup_s] or samples[-1:]
    first, last = warm[0], warm[-1]
    growth = last.rss_mb - first.rss_mb
    limit = max(FLAT_MB, FLAT_FRACTION * first.rss_mb)
    fds = last.open_files - first.open_files
    flat = growth <= limit and fds <= 8
    text = (
        f"RSS {first.rss_mb:.0f} MB at {first.t / 60:.1f} min -> {last.rss_mb:.0f} MB at "
        f"{last.t / 60:.1f} min ({growth:+.1f} MB, limit {limit:.0f} MB; slope "
        f"{slope(warm):+.1f} MB/h); open files {first.open_files} -> {last.open_files}"
    )
    return flat, text


def run(poles: int, interval: float, minutes: float, every: float, warmup_s: float) -> bool:
    """Seed, serve, simulate for ``minutes``, print a sample every ``every`` s; True if flat."""
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        data = Path(tmp)
        key = seed(data, poles)
        http_port, mqtt_port = free_port(), free_port()
        serve = ["serve", "--data-dir", str(data), "--http-port", str(http_port)]
        server = subprocess.Popen(
            [str(EXE), *serve, "--mqtt-port", str(mqtt_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "SMARTPOLE_LOG_LEVEL": "WARNING"},
        )
        sim: subprocess.Popen[bytes] | None = None
        samples: list[Sample] = []
        base = f"http://127.0.0.1:{http_port}"
        try:
            with httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30
            ) as api:
                for _ in range(600):
                    try:
                        if api.get("/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.1)
                run = ["sim", "--fleet", str(data / FLEET_FILE), "--poles", str(poles)]
                run += ["--mqtt-port", str(mqtt_port), "--interval", str(interval)]
                run += ["--duration", str(minutes * 60), "--json"]
                sim = subprocess.Popen(
                    [str(EXE), *run, "--connect-rate", "500", "--progress-every", "3600"],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
                t0 = time.monotonic()
                print(
                    f"{'min':>5} {'RSS MB':>7} {'files':>5} {'pending':>7} {'hub q':>5} "
                    f"{'anom q':>6} {'stored':>10} {'conns':>5} {'rejected':>8}",
                    flush=True,
                )
                next_at = 0.0
                while sim.poll() is None:
                    now = time.monotonic() - t0
                    if now >= next_at:
                        s = scrape(api, now)
                        samples.append(s)
                        print(
                            f"{s.t / 60:>5.1f} {s.rss_mb:>7.1f} {s.open_files:>5} {s.pending:>7} "
                            f"{s.hub_queued:>5} {s.anomaly_queued:>6} {s.stored:>10} "
                            f"{s.connections:>5} {s.rejected:>8}",
                            flush=True,
                        )
                        next_at += every
                    time.sleep(min(1.0, max(0.0, next_at - (time.monotonic() - t0))))
            out, _ = sim.communicate()
            stats = json.loads(out)
        finally:
            if sim is not None and sim.poll() is None:
                sim.terminate()
                sim.wait(30)
            server.terminate()
            server.wait(60)
    flat, text = verdict(samples, warmup_s)
    print(
        f"simulator: {stats['messages_per_s']} msg/s, {stats['readings_per_s']} readings/s, "
        f"{stats['failed']} failed; ack p99 {stats['ack_ms_p99']} ms"
    )
    print(f"memory: {'FLAT' if flat else 'GROWING'}: {text}", flush=True)
    return flat and stats["failed"] == 0


def main() -> None:
    """Parse the options and soak."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long (default 30)")
    parser.add_argument("--poles", type=int, default=500, help="poles simulated (default 500)")
    parser.add_argument("--interval", type=float, default=10.0, help="s between a pole's reports")
    parser.add_argument("--every", type=float, default=60.0, help="s between samples (60)")
    parser.add_argument("--warmup", type=float, help="s ignored by the verdict (default: 1/5)")
    parser.add_argument("--short", action="store_true", help="30 s, a sample every 5 s")
    parser.add_argument("--strict", action="store_true", help="exit 1 unless memory stays flat")
    args = parser.parse_args()
    if args.short:
        args.minutes, args.every = 0.5, 5.0
    warmup = args.warmup if args.warmup is not None else args.minutes * 60 / 5
    ok = run(args.poles, args.interval, args.minutes, args.every, warmup)
    if args.strict and not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
