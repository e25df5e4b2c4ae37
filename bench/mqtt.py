"""MQTT benchmark: messages and readings per second into the embedded store, memory per connection.

The platform runs as a real ``smartpole serve`` process; the load comes from separate
processes that send pre-encoded packets on raw sockets (so the generator is not the
bottleneck). Every number is printed beside Mosquitto's own throughput for the same load,
measured in the same run (Debian's mosquitto, no subscriber, nothing stored), and beside the
naive pipeline's (``bench/naive.py``: Mosquitto, one paho subscriber, SQLite), which is given
the same loads (``bench/mqtt_load.py``) in the same run and measured until it has stored them.

    python -m bench.mqtt            # full
    python -m bench.mqtt --short    # CI
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.mqtt_load import (
    GATEWAYS,
    SUB_DEVICES,
    Mosquitto,
    Scenario,
    find_mosquitto,
    free_port,
    load,
    pct,
    raise_fd_limit,
    scenarios,
    tree_rss_mib,
)
from bench.naive import NaivePipeline, NaiveRun
from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.model.types import Role
from smartpole.registry.access import Principal
from smartpole.transport.mqtt import codec


def seed(data_dir: Path, devices: int, gateways: int, gateway_subs: int) -> dict[str, Any]:
    """Lamps with tokens, and gateways, each with its sub-devices on its own pole."""
    p = Platform(Settings(data_dir=data_dir))
    p.upgrade()
    row = p.tenants.create("city", is_operator=True)
    who = Principal(row["id"], "city", Role.ADMIN, True)
    specs = [{"name": f"lamp-{i}", "kind": "lamp", "owner": "city"} for i in range(devices)]
    for g in range(gateways):
        pole = p.assets.create_pole(who, code=f"BENCH-{g}", lat=22.54, lon=114.05 + g / 1e4)
        specs.append({"name": f"gw-{g}", "kind": "gateway", "owner": "city", "pole_id": pole.id})
        specs += [
            {"name": f"sub-{g}-{i}", "kind": "meter", "owner": "city", "pole_id": pole.id}
            for i in range(gateway_subs)
        ]
    created = p.assets.create_devices(who, specs)
    p.db.dispose()
    tokens = {name: token for _, name, token in created}
    return {
        "lamps": [tokens[f"lamp-{i}"] for i in range(devices)],
        "gateways": [tokens[f"gw-{g}"] for g in range(gateways)],
    }


# -- the systems under test -----------------------------------------------------------------
class Server:
    """A ``smartpole serve`` process on the embedded store."""

    def __init__(self, data_dir: Path, workers: int = 1) -> None:
        self.http = free_port()
        self.mqtt = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTPOLE_")}
        env.update(
            SMARTPOLE_MQTT_RATE="10000000",
            SMARTPOLE_MQTT_MAX_INFLIGHT="65535",
            SMARTPOLE_LOG_LEVEL="WARNING",
            SMARTPOLE_QUEUE_READINGS="2000000",
        )
        exe = Path(sys.executable).parent / "smartpole"
        self.proc = subprocess.Popen(
            [
                str(exe),
                "serve",
                "--data-dir",
                str(data_dir),
                "--http-port",
                str(self.http),
                "--mqtt-port",
                str(self.mqtt),
                "--workers",
                str(workers),
            ],
            env=env,
            preexec_fn=raise_fd_limit,
        )
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{self.http}/healthz")
                break
            except httpx.HTTPError:
                time.sleep(0.1)

    def committed(self) -> int:
        return int(
            httpx.get(f"http://127.0.0.1:{self.http}/healthz").json()["pipeline"]["committed"]
        )

    def rss_mib(self, field: str = "VmRSS") -> float:
        """The server's resident memory, its worker processes counted."""
        return tree_rss_mib(self.proc.pid, field)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def wait_idle(server: Server, timeout: float = 120) -> None:
    """Until the rules and the anomaly detector have caught up with what was committed, so
    that one load's backlog does not slow the next (not part of any measured time)."""
    t = time.perf_counter()
    while time.perf_counter() - t < timeout:
        h = httpx.get(f"http://127.0.0.1:{server.http}/healthz").json()
        if not (h["pipeline"]["pending"] or h["hub"]["queued"] or h["anomaly"]["queued"]):
            return
        time.sleep(0.05)


def wait_committed(server: Server, expected: int, timeout: float = 120) -> float:
    """The moment (``time.perf_counter()``) the server had committed ``expected`` readings."""
    t = time.perf_counter()
    while server.committed() < expected and time.perf_counter() - t < timeout:
        time.sleep(0.01)
    return time.perf_counter()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--short", action="store_true")
    ap.add_argument(
        "--workers", type=int, default=1, help="smartpole serve --workers N (1: one process)"
    )
    args = ap.parse_args()
    raise_fd_limit()  # the idle connections, here and in the server it spawns
    idle = 500 if args.short else 10_000
    mosquitto = find_mosquitto()

    print(
        f"smartpole MQTT benchmark ({'short' if args.short else 'full'}): MQTT 5, embedded store,"
        f" smartpole serve --workers {args.workers} (memory: its worker processes counted)"
    )
    rows: list[tuple[Scenario, float, float, str, NaiveRun | None, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tokens = seed(Path(tmp) / "data", max(100, idle), GATEWAYS, SUB_DEVICES)
        server = Server(Path(tmp) / "data", args.workers)
        broker = Mosquitto(Path(tmp), mosquitto) if mosquitto else None
        naive = NaivePipeline(Path(tmp) / "naive", mosquitto) if mosquitto else None
        try:
            committed = 0
            for scenario in scenarios(args.short):
                conns = scenario.connections
                wait_idle(server)
                sent = load(
                    server.mqtt,
                    tokens["gateways" if scenario.gateway else "lamps"][:conns],
                    scenario.per_connection,
                    scenario.qos,
                    scenario.body_of,
                    topic=scenario.topic,
                    procs=min(2, conns),
                )
                committed += scenario.readings
                wall, lat = sent.wall, sent.latencies
                if scenario.qos == 0:  # until stored, counted from the start of the load
                    wall = wait_committed(server, committed) - sent.started
                mine = scenario.messages / wall
                peak = server.rss_mib("VmHWM")
                theirs = float("nan")
                if broker is not None and not scenario.gateway:
                    bwall = load(
                        broker.port,
                        ["x"] * conns,
                        scenario.per_connection,
                        scenario.qos,
                        scenario.body_of,
                        procs=min(2, conns),
                    ).wall
                    theirs = scenario.messages / bwall
                extra = f"p50 {pct(lat, 0.5):.1f} ms, p99 {pct(lat, 0.99):.1f} ms" if lat else ""
                if scenario.gateway:
                    extra = f"{mine * scenario.readings_per_message:,.0f} readings/s; {extra}"
                run = naive.drive(scenario) if naive is not None else None
                naive_peak = naive.peak_rss_mib() if naive is not None else float("nan")
                rows.append((scenario, mine, theirs, extra, run, peak, naive_peak))
            # idle connections: memory per connection
            before = server.rss_mib()
            # (one device each: a second connection with the same token would take the first over)
            holders = [socket.create_connection(("127.0.0.1", server.mqtt)) for _ in range(idle)]
            for s, token in zip(holders, tokens["lamps"], strict=False):
                s.sendall(codec.encode(codec.Connect(5, "", True, 600, token), 5))
            # CONNACK: 0x20, length, flags, reason code 0 = accepted
            accepted = sum(s.recv(64)[:4:3] == b"\x20\x00" for s in holders)
            time.sleep(1)
            after = server.rss_mib()
            for s in holders:
                s.setblocking(False)
            still = 0
            for s in holders:
                try:
                    still += s.recv(64) != b""  # anything sent now would be a DISCONNECT
                except BlockingIOError:
                    still += 1
            for s in holders:
                s.close()
        finally:
            server.stop()
            if broker is not None:
                broker.stop()
            if naive is not None:
                naive.close()
    print(f"{'load':42} {'smartpole msg/s':>16} {'mosquitto msg/s':>16} {'ratio':>6}")
    for scenario, mine, theirs, extra, *_ in rows:
        ratio = mine / theirs if theirs == theirs else float("nan")
        print(f"{scenario.label:42} {mine:16,.0f} {theirs:16,.0f} {ratio:6.2f}  {extra}")
    print(
        f"{idle:,} idle connections ({accepted:,} accepted, {still:,} still open): "
        f"RSS {before:.0f} -> {after:.0f} MiB, "
        f"{1024 * (after - before) / idle:.1f} KiB per connection"
    )
    print(
        "\nagainst the naive pipeline (bench/naive.py: Mosquitto -> paho at QoS 0 -> json.loads "
        "-> SQLite executemany),\nthe same loads, each until all its readings are stored; "
        "ratio = smartpole / naive readings/s"
    )
    print(
        f"{'load':42} {'smartpole rd/s':>14} {'naive rd/s':>11} {'ratio':>6} "
        f"{'naive msg/s':>11} {'naive lost':>10}  peak RSS smartpole, naive"
    )
    for scenario, mine, _, _, run, peak, naive_peak in rows:
        readings = mine * scenario.readings_per_message
        if run is None:
            print(f"{scenario.label:42} {readings:14,.0f}  (no mosquitto: no naive pipeline)")
            continue
        print(
            f"{scenario.label:42} {readings:14,.0f} {run.readings_per_s:11,.0f} "
            f"{readings / run.readings_per_s:6.2f} {run.messages_per_s:11,.0f} {run.lost:10,}  "
            f"{peak:.0f} MiB, {naive_peak:.0f} MiB"
        )


if __name__ == "__main__":
    main()
