"""PostgreSQL restart drill: QoS 1 publishers keep sending while the database is stopped
(``pg_ctl stop -m fast``) and started again; what was acknowledged, lost, duplicated, and how
soon ingest resumed.

    python -m bench.outage                 # 20 devices, 5 s down
    python -m bench.outage --down 10 --devices 50

The platform runs in this process on a private cluster; each device is a raw MQTT session (half
3.1.1, half 5) with 10 messages in flight, one reading each.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import orjson
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pg import PostgresCluster
from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.sim.seed import city_principal
from smartpole.transport.mqtt import codec

T0 = 1_764_000_000_000
IN_FLIGHT = 10


class Publisher:
    """One device sending QoS 1 readings, reconnecting when dropped."""

    def __init__(self, port: int, token: str, version: int, device: int) -> None:
        self.port, self.token, self.version, self.device = port, token, version, device
        self.sent = 0
        self.acked: list[float] = []  # when each PUBACK came
        self.connects = 0
        self.refused = 0
        self.running = True

    async def run(self) -> None:
        while self.running:
            try:
                await self._session()
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                pass
            if self.running:
                await asyncio.sleep(0.2)  # a device's reconnect delay

    async def _session(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        stream = codec.Reader()
        cid = f"drill-{self.device}"
        writer.write(
            codec.encode(codec.Connect(self.version, cid, True, 60, self.token), self.version)
        )
        self.connects += 1
        inflight: dict[int, int] = {}
        next_id = 1
        try:
            connected = False
            while self.running or inflight:
                while connected and self.running and len(inflight) < IN_FLIGHT:
                    ts = T0 + self.sent
                    body = orjson.dumps({"ts": ts, "values": {"power": 1.0}})
                    pub = codec.Publish("v1/devices/me/telemetry", body, 1, packet_id=next_id)
                    writer.write(codec.encode(pub, self.version))
                    inflight[next_id] = ts
                    next_id = next_id % 65535 + 1
                    self.sent += 1
                data = await reader.read(4096)
                if not data:
                    return
                for kind, flags, raw in stream.feed(data):
                    packet = codec.decode(kind, flags, raw, self.version)
                    if isinstance(packet, codec.ConnAck):
                        if packet.reason_code:
                            self.refused += 1
                            return
                        connected = True
                    elif isinstance(packet, codec.PubAck) and packet.reason_code == 0:
                        inflight.pop(packet.packet_id, None)
                        self.acked.append(time.monotonic())
        finally:
            self.sent -= len(inflight)  # never acknowledged: a device would send them again
            writer.close()


async def drill(devices: int, down_s: float) -> None:
    cluster = PostgresCluster().start()
    tmp = tempfile.mkdtemp(prefix="smartpole-drill-")
    try:
        url = cluster.create_database("drill")
        settings = Settings(db=url, data_dir=Path(tmp), mqtt_port=0)
        p = Platform(settings)
        p.upgrade()
        who = city_principal(p.tenants)
        specs = [{"name": f"lamp-{i}", "kind": "lamp", "owner": "city"} for i in range(devices)]
        tokens = [t for _, _, t in p.assets.create_devices(who, specs)]
        await p.start()
        port = p.mqtt[0].mqtt_port
        pubs = [Publisher(port, t, 4 if i % 2 else 5, i) for i, t in enumerate(tokens)]
        tasks = [asyncio.create_task(x.run()) for x in pubs]
        await asyncio.sleep(3)
        down = time.monotonic()
        await asyncio.to_thread(cluster.halt)
        halted = time.monotonic()
        await asyncio.sleep(down_s)
        await asyncio.to_thread(cluster.resume)
        back = time.monotonic()
        await asyncio.sleep(3)
        for x in pubs:
            x.running = False
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        await asyncio.to_thread(p.series.flush)
        with p.db.engine.connect() as conn:
            stored = conn.execute(
                text("SELECT count(*) FROM readings WHERE key = 'power'")
            ).scalar()
            rolled = conn.execute(text("SELECT sum(cnt) FROM rollups WHERE key = 'power'")).scalar()
        await p.stop()
        acks = sorted(t for x in pubs for t in x.acked)
        during = sum(1 for t in acks if halted <= t < back)
        after = [t for t in acks if t >= back]
        print(
            f"devices {devices}, database down {back - down:.1f} s"
            f" (stop took {halted - down:.1f} s)"
        )
        print(
            f"acknowledged {len(acks)}: before {sum(1 for t in acks if t < down)},"
            f" while down {during}, after {len(after)}"
        )
        print(
            f"first PUBACK {after[0] - back:.2f} s after the database was back"
            if after
            else "no PUBACK after"
        )
        print(
            f"stored {stored}, in rollups {int(rolled or 0)},"
            f" sent and acknowledged {sum(x.sent for x in pubs)}"
        )
        print(
            f"connections {sum(x.connects for x in pubs)} for {devices} devices,"
            f" refused busy {sum(x.refused for x in pubs)}"
        )
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--down", type=float, default=5.0, help="seconds the database is down")
    args = parser.parse_args()
    asyncio.run(drill(args.devices, args.down))


if __name__ == "__main__":
    main()
