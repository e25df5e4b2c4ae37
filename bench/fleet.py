"""Fleet benchmark: the largest simulated district one machine sustains, end to end.

A real ``smartpole serve`` (embedded store) and ``smartpole sim`` (gateway mode, QoS 1) run as
separate processes. For each step of a ramp of pole counts, at one report per device every
10 s and every 1 s, it records messages/s and readings/s acknowledged (PUBACK after commit),
end-to-end latency from the device timestamp to the reading being readable through the REST
API (p50/p99, sampled gateways), and the platform's CPU and peak RSS. The ramp stops at the
first step that falls behind.

    python -m bench.fleet            # full ramp (minutes)
    python -m bench.fleet --short    # under a minute (make bench-short)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import quantiles
from typing import Any

import httpx

from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.sim.fleet import FLEET_FILE, fleet_from_plan
from smartpole.sim.seed import seed_district

EXE = Path(sys.executable).parent / "smartpole"
TICK = os.sysconf("SC_CLK_TCK")
SAMPLED = 20  # gateways whose latest reading is polled for latency


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(data: Path, poles: int) -> tuple[str, int]:
    """Register the district in-process; write the fleet file; the viewer key and devices."""
    p = Platform(Settings(data_dir=data))
    p.upgrade()
    seeded = seed_district(p.tenants, p.assets, poles)
    fleet_from_plan(seeded.plan, seeded.tokens, 1, "Futian").save(data / FLEET_FILE)
    p.db.dispose()
    return seeded.keys["city"]["viewer"], seeded.devices


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def step(poles: int, interval: float, seconds: float) -> dict[str, Any]:
    """One run: seed, serve, simulate for ``seconds``, measure."""
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        data = Path(tmp)
        key, devices = seed(data, poles)
        http_port, mqtt_port = free_port(), free_port()
        serve = ["serve", "--data-dir", str(data), "--http-port", str(http_port)]
        server = subprocess.Popen(
            [str(EXE), *serve, "--mqtt-port", str(mqtt_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "SMARTPOLE_LOG_LEVEL": "WARNING"},
        )
        base = f"http://127.0.0.1:{http_port}"
        auth = {"Authorization": f"Bearer {key}"}
        sim: subprocess.Popen[bytes] | None = None
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            gateways = httpx.get(
                f"{base}/api/devices", params={"kind": "gateway", "limit": SAMPLED}, headers=auth
            ).json()["items"]
            run = ["sim", "--fleet", str(data / FLEET_FILE), "--poles", str(poles)]
            run += ["--mqtt-port", str(mqtt_port), "--interval", str(interval)]
            run += ["--duration", str(seconds), "--fault", "none", "--json"]
            sim = subprocess.Popen(
                [str(EXE), *run, "--connect-rate", "1000", "--progress-every", "3600"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            latencies, cpu0, t0, peak = [], cpu_seconds(server.pid), time.monotonic(), 0.0
            seen: dict[int, int] = {}
            timeouts, sim_cpu, launched = 0, 0.0, time.time() * 1000
            with httpx.Client(base_url=base, headers=auth, timeout=10) as api:
                while sim.poll() is None:
                    for g in gateways:
                        try:
                            r = api.get(f"/api/devices/{g['id']}/latest", params={"keys": "cpu"})
                        except httpx.TransportError:
                            timeouts += 1  # the API did not answer: the platform is saturated
                            continue
                        ts = r.json().get("cpu", {}).get("ts") if r.status_code == 200 else None
                        if ts and seen.get(g["id"]) != ts:
                            if ts > launched:  # not a reading from before this run
                                latencies.append(time.time() * 1000 - ts)
                            seen[g["id"]] = ts
                    peak = max(peak, rss_mb(server.pid))
                    with contextlib.suppress(OSError, IndexError):  # it may just have ended
                        sim_cpu = cpu_seconds(sim.pid)
                    time.sleep(0.05)
            elapsed = time.monotonic() - t0
            cpu = (cpu_seconds(server.pid) - cpu0) / elapsed * 100
            out, _ = sim.communicate()
            stats = json.loads(out)
        finally:
            if sim is not None and sim.poll() is None:
                sim.terminate()
                sim.wait(30)
            server.terminate()
            server.wait(30)
    cuts = quantiles(latencies, n=100) if len(latencies) > 2 else [-1.0] * 99  # -1: no sample
    # A pole sends two messages per report: its sub-devices' and the gateway's own readings.
    target = 2 * poles / interval
    return {
        "poles": poles,
        "devices": devices,
        "interval_s": interval,
        "target_msg_s": round(target, 1),
        "msg_s": stats["messages_per_s"],
        "readings_s": stats["readings_per_s"],
        "failed": stats["failed"],
        "ack_p50_ms": stats["ack_ms_p50"],
        "ack_p99_ms": stats["ack_ms_p99"],
        "e2e_p50_ms": round(cuts[49]),
        "e2e_p99_ms": round(cuts[98]),
        "cpu_pct": round(cpu),
        "rss_mb": round(peak),
        "sim_cpu_pct": round(sim_cpu / elapsed * 100),
        "api_timeouts": timeouts,
        "sustained": stats["failed"] == 0
        and stats["messages_per_s"] >= 0.9 * target
        and not timeouts,
    }


def main() -> None:
    """Run the ramps and print one row per step."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="quick run (under a minute)")
    args = parser.parse_args()
    if args.short:
        ramps = {10.0: [500], 1.0: [100]}
        seconds = {10.0: 12.0, 1.0: 6.0}
    else:
        ramps = {10.0: [1000, 2500, 5000, 10_000], 1.0: [250, 500, 1000, 2000, 4000]}
        seconds = {10.0: 60.0, 1.0: 40.0}
    head = f"{'poles':>6} {'devices':>7} {'every':>5} {'msg/s':>7} {'target':>7} "
    head += f"{'readings/s':>10} {'e2e p50':>8} {'e2e p99':>8} {'ack p99':>8} {'cpu%':>5} "
    print(head + f"{'RSS MB':>6} {'sim cpu%':>8}  sustained (API timeouts)", flush=True)
    for interval, ramp in ramps.items():
        for poles in ramp:
            r = step(poles, interval, seconds[interval])
            print(
                f"{r['poles']:>6} {r['devices']:>7} {r['interval_s']:>4g}s {r['msg_s']:>7} "
                f"{r['target_msg_s']:>7} {r['readings_s']:>10} {r['e2e_p50_ms']:>6}ms "
                f"{r['e2e_p99_ms']:>6}ms {r['ack_p99_ms']:>6}ms {r['cpu_pct']:>5} "
                f"{r['rss_mb']:>6} {r['sim_cpu_pct']:>8}  "
                f"{'yes' if r['sustained'] else 'NO'} ({r['api_timeouts']})",
                flush=True,
            )
            if not r["sustained"]:
                break


if __name__ == "__main__":
    main()
