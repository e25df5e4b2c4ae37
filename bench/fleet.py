"""Fleet benchmark: the largest simulated district one machine sustains, end to end.

A real ``smartpole serve`` (embedded store) and ``smartpole sim`` (gateway mode, QoS 1) run as
separate processes. For each step of a ramp of pole counts, at one report per device every
10 s and every 1 s, it records messages/s and readings/s acknowledged (PUBACK after commit),
end-to-end latency from the device timestamp to the committed reading reaching a console that
watches the pole (``/api/live``, one socket per sampled gateway's pole), and the platform's
CPU and peak RSS (its worker processes counted). Latency is given for the steady state
(p50/p99, from the second report round on) and, apart, the worst of the first round, when every
pole connects at once (a restart's reconnect storm). The ramp stops at the first step that
falls behind.

    python -m bench.fleet               # full ramp (minutes)
    python -m bench.fleet --short       # under a minute (make bench-short)
    python -m bench.fleet --workers 2   # serve --workers 2: rules and detector in processes
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
import threading
import time
from pathlib import Path
from statistics import quantiles
from typing import Any

import httpx
import orjson
from websockets.sync.client import connect as ws_connect

from bench.mqtt_load import children, tree_rss_mib
from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.sim.fleet import FLEET_FILE, fleet_from_plan
from smartpole.sim.seed import seed_district

EXE = Path(sys.executable).parent / "smartpole"
TICK = os.sysconf("SC_CLK_TCK")
SAMPLED = 20  # gateways whose readings are followed for latency


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base: str) -> None:
    """Wait (at most 30 s) until a starting server answers ``/healthz`` with 200."""
    for _ in range(300):
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)


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


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and of the worker processes it started."""
    total = cpu_seconds(pid)
    for child in children(pid):
        with contextlib.suppress(OSError, IndexError):
            total += cpu_seconds(child)
    return total


class Probe:
    """Consoles following the poles of sampled gateways over ``/api/live``: each committed
    reading of a gateway that arrives is one latency sample, ``(device ts, ms after it)``."""

    def __init__(self, ws_url: str, key: str, gateways: list[dict[str, Any]]) -> None:
        self.samples: list[tuple[int, float]] = []
        self.failures = 0
        self._stop = threading.Event()
        self._since = time.time() * 1000
        self._threads = [
            threading.Thread(target=self._follow, args=(ws_url, key, g), daemon=True)
            for g in gateways
        ]

    def __enter__(self) -> Probe:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)

    def _follow(self, url: str, key: str, gateway: dict[str, Any]) -> None:
        seen: set[int] = set()
        try:
            with ws_connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
                ws.send(orjson.dumps({"op": "pole", "id": gateway["pole_id"]}).decode())
                while not self._stop.is_set():
                    try:
                        message = orjson.loads(ws.recv(timeout=0.5))
                    except TimeoutError:
                        continue
                    if message.get("type") != "latest" or message["device"] != gateway["id"]:
                        continue
                    arrived = time.time() * 1000
                    for point in message["values"].values():
                        ts = point["ts"]
                        if ts > self._since and ts not in seen:  # not from before this run
                            seen.add(ts)
                            self.samples.append((ts, arrived - ts))
        except Exception:  # a socket the platform dropped or refused: the API failed
            self.failures += 1


def step(poles: int, interval: float, seconds: float, workers: int = 1) -> dict[str, Any]:
    """One run: seed, serve, simulate for ``seconds``, measure."""
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        data = Path(tmp)
        key, devices = seed(data, poles)
        http_port, mqtt_port = free_port(), free_port()
        serve = ["serve", "--data-dir", str(data), "--http-port", str(http_port)]
        serve += ["--workers", str(workers)]
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
            wait_ready(base)
            gateways = httpx.get(
                f"{base}/api/devices", params={"kind": "gateway", "limit": SAMPLED}, headers=auth
            ).json()["items"]
            run = ["sim", "--fleet", str(data / FLEET_FILE), "--poles", str(poles)]
            run += ["--mqtt-port", str(mqtt_port), "--interval", str(interval)]
            run += ["--duration", str(seconds), "--fault", "none", "--json"]
            ws_url = f"ws://127.0.0.1:{http_port}/api/live"
            with Probe(ws_url, key, gateways) as probe:
                launched = time.time() * 1000
                sim = subprocess.Popen(
                    [str(EXE), *run, "--connect-rate", "1000", "--progress-every", "3600"],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
                cpu0, t0, peak, sim_cpu = tree_cpu_seconds(server.pid), time.monotonic(), 0.0, 0.0
                while sim.poll() is None:
                    peak = max(peak, tree_rss_mib(server.pid))
                    with contextlib.suppress(OSError, IndexError):  # it may just have ended
                        sim_cpu = cpu_seconds(sim.pid)
                    time.sleep(0.1)
            elapsed = time.monotonic() - t0
            cpu = (tree_cpu_seconds(server.pid) - cpu0) / elapsed * 100
            out, _ = sim.communicate()
            stats = json.loads(out)
        finally:
            if sim is not None and sim.poll() is None:
                sim.terminate()
                sim.wait(30)
            server.terminate()
            server.wait(30)
    # the first round: every pole connects and reports within one interval (a reconnect storm)
    first_round = min((ts for ts, _ in probe.samples), default=launched) + interval * 1000
    steady = [ms for ts, ms in probe.samples if ts >= first_round]
    storm = [ms for ts, ms in probe.samples if ts < first_round]
    cuts = quantiles(steady, n=100) if len(steady) > 2 else [-1.0] * 99  # -1: no sample
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
        "e2e_samples": len(steady),
        "first_round_max_ms": round(max(storm, default=-1)),
        "cpu_pct": round(cpu),
        "rss_mb": round(peak),
        "sim_cpu_pct": round(sim_cpu / elapsed * 100),
        "probe_failures": probe.failures,
        "sustained": stats["failed"] == 0
        and stats["messages_per_s"] >= 0.9 * target
        and not probe.failures,
    }


def main() -> None:
    """Run the ramps and print one row per step."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="quick run (under a minute)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="smartpole serve --workers (2: rules and anomaly detector in processes of their own)",
    )
    args = parser.parse_args()
    if args.short:
        ramps = {10.0: [500], 1.0: [100]}
        seconds = {10.0: 10.0, 1.0: 5.0}
    else:
        ramps = {10.0: [1000, 2500, 5000, 10_000], 1.0: [250, 500, 1000, 2000, 4000]}
        seconds = {10.0: 60.0, 1.0: 40.0}
    head = f"{'poles':>6} {'devices':>7} {'every':>5} {'msg/s':>7} {'target':>7} "
    head += f"{'readings/s':>10} {'e2e p50':>8} {'e2e p99':>8} {'1st max':>8} {'ack p99':>8} "
    print(head + f"{'cpu%':>5} {'RSS MB':>6} {'sim cpu%':>8}  sustained", flush=True)
    for interval, ramp in ramps.items():
        for poles in ramp:
            r = step(poles, interval, seconds[interval], args.workers)
            print(
                f"{r['poles']:>6} {r['devices']:>7} {r['interval_s']:>4g}s {r['msg_s']:>7} "
                f"{r['target_msg_s']:>7} {r['readings_s']:>10} {r['e2e_p50_ms']:>6}ms "
                f"{r['e2e_p99_ms']:>6}ms {r['first_round_max_ms']:>6}ms {r['ack_p99_ms']:>6}ms "
                f"{r['cpu_pct']:>5} {r['rss_mb']:>6} {r['sim_cpu_pct']:>8}  "
                f"{'yes' if r['sustained'] else 'NO'}"
                + (f" ({r['probe_failures']} probe sockets failed)" if r["probe_failures"] else ""),
                flush=True,
            )
            if not r["sustained"]:
                break


if __name__ == "__main__":
    main()
