"""The MQTT loads of ``bench/mqtt.py`` and ``bench/naive.py``: payloads, load generator, Mosquitto.

One definition of each load (:func:`scenarios`), sent by one raw-socket load generator
(:func:`load`), so that smartpole, Mosquitto alone and the naive pipeline are measured on the
same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import resource
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from smartpole.transport.mqtt import codec

T0 = 1_764_000_000_000
DEVICE_TOPIC = "v1/devices/me/telemetry"
GATEWAY_TOPIC = "v1/gateway/telemetry"
GATEWAYS = 10  # gateways seeded, each with SUB_DEVICES meters
SUB_DEVICES = 100

Body = Callable[[int, int], bytes]
"""The body of message ``i`` of connection number ``conn``."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_fd_limit() -> None:
    """As many open files as the hard limit allows (thousands of connections)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory now (``VmRSS``) or at its peak (``VmHWM``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    """The processes a process started (its workers), from ``/proc``."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def tree_rss_mib(pid: int, field: str = "VmRSS") -> float:
    """:func:`rss_mib` of a process and of the processes it started, summed."""
    total = rss_mib(pid, field)
    for child in children(pid):
        with contextlib.suppress(OSError):
            total += rss_mib(child, field)
    return total


def pct(lat: list[float], p: float) -> float:
    """The ``p`` quantile of latencies in seconds, in milliseconds."""
    lat = sorted(lat)
    return 1000 * lat[min(len(lat) - 1, int(len(lat) * p))] if lat else float("nan")


# -- the loads ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    """One load: ``connections`` devices or gateways sending ``per_connection`` messages each."""

    label: str
    connections: int
    per_connection: int
    qos: int
    readings_per_message: int
    body_of: Body
    gateway: bool = False

    @property
    def messages(self) -> int:
        """Messages sent in all."""
        return self.connections * self.per_connection

    @property
    def readings(self) -> int:
        """Readings sent in all."""
        return self.messages * self.readings_per_message

    @property
    def topic(self) -> str:
        """The ThingsBoard topic (the device is known by its token)."""
        return GATEWAY_TOPIC if self.gateway else DEVICE_TOPIC


def scenarios(short: bool) -> list[Scenario]:
    """The loads, in the order they run; each has its own time range (no duplicates of an
    earlier load: a duplicate makes smartpole's store recount the hour, not what is measured)."""
    n = 10_000 if short else 200_000

    def singles(phase: int) -> Body:
        start = T0 + phase * 1_000_000_000
        return lambda i, _: b'{"ts": %d, "values": {"power": %d}}' % (start + i, i % 500)

    loads = [
        Scenario(label, conns, n // conns, qos, 1, singles(phase))
        for phase, (label, conns, qos) in enumerate(
            (
                ("1 connection, QoS 0", 1, 0),
                ("1 connection, QoS 1", 1, 1),
                ("100 connections, QoS 1", 100, 1),
            )
        )
    ]
    # gateway batches: SUB_DEVICES sub-devices x 2 keys in every message; one gateway (bound
    # by the round trip of its in-flight window), then many, as a city has
    for gws in (1, GATEWAYS):
        label = f"{gws} gateway{'s' if gws > 1 else ''}, batches of 200 readings, QoS 1"
        per = max(100 if short else 200, n // 100 // gws)
        loads.append(Scenario(label, gws, per, 1, 2 * SUB_DEVICES, gateway_body(gws), True))
    return loads


def gateway_body(gws: int) -> Body:
    """Reports of gateway ``conn`` for its sub-devices ``sub-{conn}-{d}``, each message an
    instant of its own (after the singles' time ranges)."""
    start = T0 + (10 + gws) * 1_000_000_000
    at = str(T0).encode()
    bodies = [
        orjson.dumps(
            {
                f"sub-{g}-{d}": [{"ts": T0, "values": {"power": 1, "voltage": 230}}]
                for d in range(SUB_DEVICES)
            }
        )
        for g in range(gws)
    ]
    return lambda i, conn: bodies[conn].replace(at, str(start + i).encode())


@dataclass(frozen=True)
class Sent:
    """A load sent: when it started (``time.perf_counter()``, the same clock in every process
    of the machine), how long until all was sent (QoS 1: acknowledged), the QoS 1 round trips."""

    started: float
    wall: float
    latencies: list[float]


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


def publishes(n: int, qos: int, body_of: Body, topic: str, conn: int) -> list[bytes]:
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
    body_of: Body,
    topic: str | Callable[[int], str] = DEVICE_TOPIC,
    procs: int = 2,
) -> Sent:
    """Every connection sends ``per_conn`` messages (QoS 1: until all are acknowledged).

    ``topic`` is one topic for all, or the topic of connection number ``conn``."""
    ctx = mp.get_context("spawn")
    result = ctx.Queue()
    start = ctx.Event()
    groups = [list(enumerate(tokens))[i::procs] for i in range(procs)]
    workers = []
    for members in groups:
        if not members:
            continue
        group = [token for _, token in members]
        packets = [
            publishes(per_conn, qos, body_of, topic(conn) if callable(topic) else topic, conn)
            for conn, _ in members
        ]
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
    return Sent(t, wall, lat)


# -- Mosquitto --------------------------------------------------------------------------------
def find_mosquitto() -> str | None:
    """Debian's mosquitto (in /usr/sbin, often not on a user's PATH), or None."""
    found = shutil.which("mosquitto")
    if found is None and os.access("/usr/sbin/mosquitto", os.X_OK):
        found = "/usr/sbin/mosquitto"
    return found


class Mosquitto:
    """Debian's mosquitto on a free port, anonymous, no persistence, no queue limit (nothing
    dropped for a slow subscriber)."""

    def __init__(self, tmp: Path, exe: str = "mosquitto") -> None:
        self.port = free_port()
        conf = tmp / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            "max_inflight_messages 0\nmax_queued_messages 0\n"
        )
        self.proc = subprocess.Popen(
            [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the broker."""
        self.proc.terminate()
        self.proc.wait(10)
