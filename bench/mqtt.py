"""MQTT benchmark: messages and readings per second into the embedded store, memory per connection.

The platform runs as a real ``smartpole serve`` process; the load comes from separate
processes that send pre-encoded packets on raw sockets (so the generator is not the
bottleneck). Every number is printed beside Mosquitto's own throughput for the same load,
measured in the same run (Debian's mosquitto, no subscriber, nothing stored).

    python -m bench.mqtt            # full
    python -m bench.mqtt --short    # CI
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.model.types import Role
from smartpole.registry.access import Principal
from smartpole.transport.mqtt import codec

T0 = 1_764_000_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


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


# -- load generator (runs in worker processes) ------------------------------------------------
async def _session(port: int, token: str, packets: list[bytes], qos: int, out: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        codec.encode(codec.Connect(5, f"b{os.getpid()}-{id(packets)}", True, 60, token), 5)
    )
    head = await reader.readexactly(2)
    await reader.readexactly(head[1])
    sent: dict[int, float] = {}
    window = asyncio.Semaphore(50)  # stay under the server's receive maximum
    if qos == 0:
        writer.write(b"".join(packets))
        await writer.drain()
        writer.close()
        return

    async def read_acks() -> None:
        got = 0
        buf = codec.Reader()
        while got < len(packets):
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("server closed the session")
            for kind, _flags, body in buf.feed(data):
                if kind == codec.PacketType.PUBACK:
                    pid = int.from_bytes(body[:2], "big")
                    out.append(time.perf_counter() - sent.pop(pid))
                    window.release()
                    got += 1

    acks = asyncio.create_task(read_acks())
    for i, packet in enumerate(packets):
        await window.acquire()
        sent[i % 65535 + 1] = time.perf_counter()
        writer.write(packet)
        if i % 32 == 0:
            await writer.drain()
    await acks
    writer.close()


def _worker(
    port: int, tokens: list[str], packets_per: list[list[bytes]], qos: int, result: Any, start: Any
) -> None:
    raise_fd_limit()

    async def run() -> list[float]:
        lat: list[float] = []
        start.wait()
        await asyncio.gather(
            *(_session(port, t, ps, qos, lat) for t, ps in zip(tokens, packets_per, strict=True))
        )
        return lat

    result.put(asyncio.run(run()))


def publishes(n: int, qos: int, body_of: Any, topic: str, conn: int) -> list[bytes]:
    """``n`` PUBLISH packets of connection number ``conn``: ``body_of(i, conn)`` each."""
    return [
        codec.encode(
            codec.Publish(topic, body_of(i, conn), qos, packet_id=(i % 65535 + 1) if qos else None),
            5,
        )
        for i in range(n)
    ]


def load(
    port: int,
    tokens: list[str],
    per_conn: int,
    qos: int,
    body_of: Any,
    topic: str = "v1/devices/me/telemetry",
    procs: int = 2,
) -> tuple[float, list[float]]:
    """Wall time for every connection to send ``per_conn`` messages (QoS 1: all acknowledged)."""
    ctx = mp.get_context("spawn")
    result = ctx.Queue()
    start = ctx.Event()
    groups = [list(enumerate(tokens))[i::procs] for i in range(procs)]
    workers = []
    for members in groups:
        if not members:
            continue
        group = [token for _, token in members]
        packets = [publishes(per_conn, qos, body_of, topic, conn) for conn, _ in members]
        w = ctx.Process(target=_worker, args=(port, group, packets, qos, result, start))
        w.start()
        workers.append(w)
    time.sleep(1.0)  # let the workers connect... they wait on `start` after importing
    t = time.perf_counter()
    start.set()
    lat: list[float] = []
    for _ in workers:
        lat += result.get(timeout=600)
    wall = time.perf_counter() - t
    for w in workers:
        w.join()
    return wall, lat


# -- the systems under test -----------------------------------------------------------------
class Server:
    """A ``smartpole serve`` process on the embedded store."""

    def __init__(self, data_dir: Path) -> None:
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

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


class Mosquitto:
    """Debian's mosquitto on a free port, anonymous, no persistence: the broker's own ceiling."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        conf = tmp / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            "max_inflight_messages 0\nmax_queued_messages 0\n"
        )
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(0.5)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


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
    t = time.perf_counter()
    while server.committed() < expected and time.perf_counter() - t < timeout:
        time.sleep(0.01)
    return time.perf_counter() - t


def pct(lat: list[float], p: float) -> float:
    lat = sorted(lat)
    return 1000 * lat[min(len(lat) - 1, int(len(lat) * p))] if lat else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--short", action="store_true")
    args = ap.parse_args()
    raise_fd_limit()  # the idle connections, here and in the server it spawns
    n = 20_000 if args.short else 200_000
    idle = 1000 if args.short else 10_000

    def singles(phase: int) -> Any:
        """Single readings of a load; each load its own time range (no duplicates of the last:
        a duplicate makes the store recount the hour, which is not what is measured here)."""
        start = T0 + phase * 1_000_000_000
        return lambda i, _: b'{"ts": %d, "values": {"power": %d}}' % (start + i, i % 500)

    print(f"smartpole MQTT benchmark ({'short' if args.short else 'full'}): MQTT 5, embedded store")
    rows: list[tuple[str, float, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tokens = seed(Path(tmp) / "data", max(100, idle), 10, 100)
        server = Server(Path(tmp) / "data")
        broker = Mosquitto(Path(tmp)) if shutil.which("mosquitto") else None
        try:
            base = 0
            for phase, (label, conns, qos) in enumerate(
                (
                    ("1 connection, QoS 0", 1, 0),
                    ("1 connection, QoS 1", 1, 1),
                    ("100 connections, QoS 1", 100, 1),
                )
            ):
                per = n // conns
                single = singles(phase)
                wait_idle(server)
                wall, lat = load(server.mqtt, tokens["lamps"][:conns], per, qos, single)
                base += per * conns
                if qos == 0:
                    wall += wait_committed(server, base)
                mine = per * conns / wall
                theirs = float("nan")
                if broker is not None:
                    bwall, _ = load(broker.port, ["x"] * conns, per, qos, single)
                    theirs = per * conns / bwall
                extra = f"p50 {pct(lat, 0.5):.1f} ms, p99 {pct(lat, 0.99):.1f} ms" if lat else ""
                rows.append((label, mine, theirs, extra))
            # gateway batches: 100 sub-devices x 2 keys in every message; one gateway (bound by
            # the round trip of its in-flight window), then many, as a city has
            t_at = str(T0).encode()

            def gw_body(i: int, conn: int) -> bytes:
                return bodies[conn].replace(t_at, str(gw_start + i).encode())

            for gws in (1, len(tokens["gateways"])):
                gw_start = T0 + (10 + gws) * 1_000_000_000  # no duplicates of earlier loads
                bodies = [
                    orjson.dumps(
                        {
                            f"sub-{g}-{d}": [{"ts": T0, "values": {"power": 1, "voltage": 230}}]
                            for d in range(100)
                        }
                    )
                    for g in range(gws)
                ]
                gw_msgs = max(200, n // 100 // gws)
                wait_idle(server)
                wall, lat = load(
                    server.mqtt,
                    tokens["gateways"][:gws],
                    gw_msgs,
                    1,
                    gw_body,
                    topic="v1/gateway/telemetry",
                    procs=min(2, gws),
                )
                readings = gws * gw_msgs * 200 / wall
                rows.append(
                    (
                        f"{gws} gateway{'s' if gws > 1 else ''}, batches of 200 readings, QoS 1",
                        gws * gw_msgs / wall,
                        float("nan"),
                        f"{readings:,.0f} readings/s; p50 {pct(lat, 0.5):.1f} ms, "
                        f"p99 {pct(lat, 0.99):.1f} ms",
                    )
                )
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
    print(f"{'load':42} {'smartpole msg/s':>16} {'mosquitto msg/s':>16} {'ratio':>6}")
    for label, mine, theirs, extra in rows:
        ratio = mine / theirs if theirs == theirs else float("nan")
        print(f"{label:42} {mine:16,.0f} {theirs:16,.0f} {ratio:6.2f}  {extra}")
    print(
        f"{idle:,} idle connections ({accepted:,} accepted, {still:,} still open): "
        f"RSS {before:.0f} -> {after:.0f} MiB, "
        f"{1024 * (after - before) / idle:.1f} KiB per connection"
    )


if __name__ == "__main__":
    main()
