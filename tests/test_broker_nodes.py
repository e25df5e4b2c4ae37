"""Scale-out: several ``smartpole serve --broker`` processes behind one Mosquitto, one database.

The nodes share the devices' uplink through a shared subscription; every reading must be
stored exactly once, each node must have taken a share, and a node killed mid-stream must lose
nothing the broker handed it (its persistent session keeps what it did not acknowledge).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from mosquitto import Mosquitto, free_port
from pg import PostgresCluster
from smartpole.config import Settings
from smartpole.model.types import DeviceKind, Role
from smartpole.registry.access import Tenants
from smartpole.registry.assets import Assets
from smartpole.sim.seed import city_principal
from smartpole.store import Database
from smartpole.store.schema import readings, rollups
from smartpole.transport.mqtt.client import MqttClient

pytestmark = pytest.mark.postgres

SERVICE_PASSWORD = "nodes-secret"
DEVICES = 20
MESSAGES = 50  # per device
T0 = 1_750_000_000_000
SMARTPOLE = shutil.which("smartpole", path=str(Path(sys.executable).parent)) or "smartpole"


@dataclass
class Fleet:
    """The seeded database: its URL, an API key of the city operator, the devices' tokens."""

    url: str
    db: Database
    key: str
    tokens: dict[str, str]


@pytest.fixture
def fleet(pg_cluster: PostgresCluster) -> Iterator[Fleet]:
    """A migrated PostgreSQL database with a city operator and ``DEVICES`` lamps."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = pg_cluster.create_database(name)
    db = Database(Settings(db=url).database_url)
    try:
        db.upgrade()
        tenants = Tenants(db.engine)
        city = tenants.create("city", "City", True)
        _, key = tenants.create_key(city["id"], Role.VIEWER)
        assets, who = Assets(db.engine), city_principal(tenants)
        tokens = {}
        for i in range(DEVICES):
            _, tokens[f"lamp-{i:03d}"] = assets.create_device(
                who, DeviceKind.LAMP, name=f"lamp-{i:03d}"
            )
        yield Fleet(url, db, key, tokens)
    finally:
        db.dispose()
        pg_cluster.drop_database(name)


def env(**extra: str) -> dict[str, str]:
    """The environment of a smartpole command: no outside SMARTPOLE_* settings, ours added."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SMARTPOLE_")}
    return {**clean, "SMARTPOLE_BROKER_PASSWORD": SERVICE_PASSWORD, **extra}


@pytest.fixture
def broker(tmp_path: Path, fleet: Fleet) -> Iterator[Mosquitto]:
    """Mosquitto with the password and ACL files the CLI writes from the registry."""
    root = tmp_path / "mosquitto"
    root.mkdir()
    passwd, acl = root / "passwd", root / "acl"
    done = subprocess.run(
        [SMARTPOLE, "broker", "mosquitto", "--passwd", str(passwd), "--acl", str(acl), "--json"],
        env=env(SMARTPOLE_DB=fleet.url),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    assert report["devices"] == DEVICES
    assert report["skipped"] == []
    m = Mosquitto(root, passwd, acl).start()
    try:
        yield m
    finally:
        m.stop()


class Node:
    """One ``smartpole serve --broker`` process."""

    def __init__(
        self, name: str, fleet: Fleet, broker: Mosquitto, tmp: Path, **settings: str
    ) -> None:
        self.name = name
        self.settings = settings  # extra SMARTPOLE_* variables
        self.fleet = fleet
        self.broker = broker
        self.http = free_port()
        self.log = tmp / f"{name}.log"
        self.data = tmp / name
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Node:
        """Start the process and wait until it is connected to the broker."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [SMARTPOLE, "serve", "--http-port", str(self.http), "--broker", self.broker.url],
                env=env(
                    SMARTPOLE_DB=self.fleet.url,
                    SMARTPOLE_NODE_ID=self.name,
                    SMARTPOLE_DATA_DIR=str(self.data),
                    **self.settings,
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"{self.name} exited:\n{self.tail()}"
            try:
                if self.status()["ready"]:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} did not connect to the broker:\n{self.tail()}")

    def status(self) -> dict[str, Any]:
        """The node's ``GET /api/broker/status``."""
        r = httpx.get(
            f"http://127.0.0.1:{self.http}/api/broker/status",
            headers={"Authorization": f"Bearer {self.fleet.key}"},
            timeout=5,
        )
        r.raise_for_status()
        return dict(r.json())

    def kill(self) -> None:
        """Kill the process at once: no DISCONNECT, nothing flushed."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """Stop the process the way an operator does (SIGTERM)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def tail(self, lines: int = 40) -> str:
        """The end of the node's log."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture
def nodes(fleet: Fleet, broker: Mosquitto, tmp_path: Path) -> Iterator[list[Node]]:
    """Two nodes, ``node-a`` and ``node-b``, on the same database and broker."""
    started = [Node(name, fleet, broker, tmp_path) for name in ("node-a", "node-b")]
    try:
        for node in started:
            node.start()
        yield started
    finally:
        for node in started:
            node.stop()


async def publish(broker: Mosquitto, fleet: Fleet, first: int, count: int) -> None:
    """Every device publishes readings ``first`` to ``first + count - 1`` (QoS 1, own ts)."""

    async def one(name: str, token: str) -> None:
        mqtt = MqttClient("127.0.0.1", broker.port, username=name, password=token)
        await mqtt.connect()
        topic = f"sp/v1/{name}/telemetry"
        await asyncio.gather(
            *(
                mqtt.publish(topic, orjson.dumps({"ts": T0 + i, "values": {"power": i}}), qos=1)
                for i in range(first, first + count)
            )
        )
        await mqtt.close()

    await asyncio.gather(*(one(name, token) for name, token in fleet.tokens.items()))


def stored(fleet: Fleet) -> tuple[int, int]:
    """Readings in the store, and readings counted in the hourly rollups."""
    with fleet.db.engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(readings)).scalar_one()
        counted = conn.execute(select(func.coalesce(func.sum(rollups.c.cnt), 0))).scalar_one()
    return int(n), int(counted)


async def until_stored(fleet: Fleet, expected: int, within: float = 60.0) -> None:
    """Wait until ``expected`` readings are stored and counted in the rollups."""
    deadline = time.monotonic() + within
    while stored(fleet) != (expected, expected):
        assert time.monotonic() < deadline, f"stored {stored(fleet)}, expected {expected}"
        await asyncio.sleep(0.2)


async def test_two_nodes_store_every_message_exactly_once_and_share_the_load(
    fleet: Fleet, broker: Mosquitto, nodes: list[Node]
) -> None:
    await publish(broker, fleet, 0, MESSAGES)
    await until_stored(fleet, DEVICES * MESSAGES)
    await asyncio.sleep(1.5)  # nothing more arrives: no message was stored twice
    assert stored(fleet) == (DEVICES * MESSAGES, DEVICES * MESSAGES)
    shares = [node.status()["stored"] for node in nodes]
    assert all(share > 0 for share in shares), shares
    # A node whose session dropped under load gets its unacknowledged messages again and
    # commits them again (the store keeps one of each, checked above): at least every message.
    assert sum(shares) >= DEVICES * MESSAGES, shares


async def test_a_node_killed_mid_stream_loses_nothing(
    fleet: Fleet, broker: Mosquitto, nodes: list[Node]
) -> None:
    a, b = nodes
    first = asyncio.ensure_future(publish(broker, fleet, 0, MESSAGES))
    await asyncio.sleep(0.3)
    a.kill()  # whatever it had not acknowledged stays in its session at the broker
    await first
    await publish(broker, fleet, MESSAGES, MESSAGES)  # part of it queued for the absent node
    a.start()  # same node id, same client id: the session resumes
    await until_stored(fleet, DEVICES * 2 * MESSAGES)
    assert "resumed session" in a.tail(200)
    assert a.status()["messages"] > 0  # its backlog: unacknowledged and queued while away
    assert b.status()["stored"] > 0


async def test_rollups_stay_exact_when_a_node_restarts_while_the_other_holds_unflushed_batches(
    fleet: Fleet, broker: Mosquitto, tmp_path: Path
) -> None:
    # Neither node writes its rollups until it stops: the killed node's restart happens while
    # the other holds every batch it committed, the case a recount from the readings got wrong.
    deferred = {"SMARTPOLE_DERIVED_FLUSH_MS": "600000"}
    a, b = (Node(name, fleet, broker, tmp_path, **deferred) for name in ("node-a", "node-b"))
    try:
        a.start()
        b.start()
        await publish(broker, fleet, 0, MESSAGES)
        deadline = time.monotonic() + 60
        while stored(fleet)[0] < DEVICES * MESSAGES:
            assert time.monotonic() < deadline, f"stored {stored(fleet)}"
            await asyncio.sleep(0.2)
        assert b.status()["stored"] > 0
        a.kill()
        a.start()  # settles what it had committed, and only that
        b.stop()  # writes what it held
        assert stored(fleet) == (DEVICES * MESSAGES, DEVICES * MESSAGES)
    finally:
        a.stop()
        b.stop()
