"""Ingest survives the store going away: a PostgreSQL restart, a failover to a new server at the
same address, a cut network, terminated backends; SQLite's full disk and locked file.

While the store cannot commit, devices are held (no PUBACK, no disconnection), new MQTT sessions
are told "server busy", HTTP ingest answers 503 problem+json with Retry-After and ``/readyz``
503 with the reason; once it is back, what was held is committed and acknowledged, every
acknowledged reading is stored once and the hourly rollups count each once.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text

from fixtures_api import City, make_device, make_pole
from pg import PostgresCluster
from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.errors import StoreUnavailable
from smartpole.model.types import Reading
from smartpole.model.writes import WriteBatch
from smartpole.store import Database, open_series
from smartpole.transport.mqtt import codec

T0 = 1_764_000_000_000  # on a whole hour
HOUR = 3_600_000
DEADLINE_S = 30.0


async def until(check: Callable[[], Any], what: str) -> None:
    """Poll ``check`` (sync or async) until it is true, for at most DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.02)


# -- a TCP relay between smartpole and PostgreSQL, to cut ------------------------------------
class Relay:
    """Forwards a loopback port to the database; :meth:`cut` closes every connection and stops
    listening (the database is unreachable), :meth:`restore` listens again on the same port;
    :meth:`lose_next_commit_answer` lets the next COMMIT through and cuts the connection once
    the server has answered it, before the answer reaches smartpole (a commit whose outcome
    the writer cannot know). Threads, not the test's event loop: smartpole may block the loop
    on the database."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = 0
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._commit_armed = False
        self.lost_commits = 0
        self.restore()

    def restore(self) -> None:
        """Accept connections (again, on the same port)."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._spawn(self._accept, listener)

    def cut(self) -> None:
        """Close the listener and every relayed connection."""
        with self._lock:
            socks, self._socks = self._socks, []
            listener, self._listener = self._listener, None
        for s in [*socks, *([listener] if listener else [])]:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def lose_next_commit_answer(self) -> None:
        """Cut the connection that sends the next COMMIT, after the server answered it."""
        self._commit_armed = True

    def close(self) -> None:
        """Cut, and wait for the relay's threads."""
        self.cut()
        for t in self._threads:
            t.join(5)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            server = socket.create_connection(("127.0.0.1", self.target))
            with self._lock:
                self._socks += [client, server]
            committing = threading.Event()
            self._spawn(self._pump, client, server, committing, True)
            self._spawn(self._pump, server, client, committing, False)

    def _pump(
        self, src: socket.socket, dst: socket.socket, committing: threading.Event, up: bool
    ) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            if up and self._commit_armed and b"COMMIT\x00" in data:
                self._commit_armed = False
                committing.set()
            elif not up and committing.is_set():
                # the server's answer to COMMIT: it has committed; smartpole never hears it
                self.lost_commits += 1
                break
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


# -- a raw MQTT session: every packet it gets is visible -------------------------------------
class Session:
    """One device's MQTT connection on a raw socket (3.1.1 or 5)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, version: int
    ) -> None:
        self.reader, self.writer, self.version = reader, writer, version
        self.stream = codec.Reader()
        self.backlog: list[Any] = []

    @classmethod
    async def open(cls, port: int, token: str, version: int) -> tuple[Session, int]:
        """Connect; return the session and the CONNACK's code."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        session = cls(reader, writer, version)
        connect = codec.Connect(version, f"c-{uuid.uuid4().hex[:8]}", True, 60, token)
        writer.write(codec.encode(connect, version))
        connack = await session.next()
        assert isinstance(connack, codec.ConnAck)
        return session, connack.reason_code

    async def next(self) -> Any:
        """The next packet from the server (fails if the server closed the connection)."""
        while not self.backlog:
            data = await asyncio.wait_for(self.reader.read(4096), DEADLINE_S)
            assert data, "the server closed the connection"
            for kind, flags, body in self.stream.feed(data):
                self.backlog.append(codec.decode(kind, flags, body, self.version))
        return self.backlog.pop(0)

    def publish(self, packet_id: int, ts: int, value: float, pad: int = 0) -> None:
        """Send a ``power`` reading (and ``pad`` others) at QoS 1."""
        payload = orjson.dumps({"ts": ts, "values": values(value, pad)})
        packet = codec.Publish("v1/devices/me/telemetry", payload, 1, packet_id=packet_id)
        self.writer.write(codec.encode(packet, self.version))

    async def acked(self) -> tuple[int, int]:
        """The next packet, which must be a PUBACK: ``(packet id, reason code)``."""
        packet = await self.next()
        assert isinstance(packet, codec.PubAck), f"expected a PUBACK, got {packet!r}"
        return packet.packet_id, packet.reason_code

    async def close(self) -> None:
        """Disconnect cleanly."""
        self.writer.write(codec.encode(codec.Disconnect(), self.version))
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def own_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster of this module's own: its tests stop and start it."""
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


def migrated(cluster: PostgresCluster, port: int | None = None) -> str:
    """A new migrated database in ``cluster``; its URL (through ``port`` when given)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    cluster.create_database(name)
    url = Settings(db=cluster.url(name)).database_url
    db = Database(url)
    try:
        db.upgrade()
    finally:
        db.dispose()
    return url if port is None else url.replace(f":{cluster.port}/", f":{port}/")


@contextlib.asynccontextmanager
async def serving(url: str, data_dir: Path, **settings: Any) -> AsyncIterator[Platform]:
    """A started platform (MQTT on a free port) on the database at ``url``."""
    s = Settings(data_dir=data_dir, batch_age_ms=2, mqtt_port=0, db=url, **settings)
    p = Platform(s)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


@contextlib.asynccontextmanager
async def api(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """The platform's HTTP API, in-process."""
    from smartpole.api import create_app

    transport = httpx.ASGITransport(app=create_app(platform.api_services()))
    async with httpx.AsyncClient(transport=transport, base_url="http://smartpole.test") as c:
        yield c


def seed(platform: Platform) -> City:
    """The city operator and the lighting department, with keys."""
    from smartpole.model.types import Role

    out = City()
    for name, is_operator in (("city", True), ("lighting", False)):
        row = platform.tenants.create(name, name.title(), is_operator)
        out.ids[name] = row["id"]
        out.keys[(name, Role.ADMIN)] = platform.tenants.create_key(row["id"], Role.ADMIN)[1]
    return out


async def lamps(client: httpx.AsyncClient, city: City, n: int) -> list[dict[str, Any]]:
    """``n`` lamps of the lighting department on one pole."""
    pole = await make_pole(client, city, f"FT-SN-{uuid.uuid4().hex[:4]}")
    return [await make_device(client, city, "lighting", "lamp", pole, port=i + 1) for i in range(n)]


def values(power: float, pad: int) -> dict[str, float]:
    """A ``power`` reading and ``pad`` others: more than a page of the database."""
    return {"power": power} | {f"pad{i:03d}": power for i in range(pad)}


def post(client: httpx.AsyncClient, token: str, ts: int, value: float, pad: int = 0) -> Any:
    """HTTP ingest of a reading (and ``pad`` others)."""
    body = {"ts": ts, "values": values(value, pad)}
    return client.post(f"/api/v1/{token}/telemetry", json=body)


def count(client: httpx.AsyncClient, city: City, device_id: int) -> Any:
    """The hourly count of a device's power readings over two hours from T0."""
    params = {"keys": "power", "agg": "count", "interval": HOUR, "start": T0, "end": T0 + 2 * HOUR}
    return client.get(
        f"/api/devices/{device_id}/timeseries", params=params, headers=city.auth("lighting")
    )


def is_problem(r: httpx.Response, status: int) -> bool:
    return r.status_code == status and r.headers["content-type"] == "application/problem+json"


async def ride_out(
    platform: Platform,
    client: httpx.AsyncClient,
    city: City,
    go_down: Callable[[], None],
    come_back: Callable[[], None],
) -> None:
    """Ingest over MQTT 5, MQTT 3.1.1 and HTTP before, during and after an outage, and check
    what devices, operators and the store see."""
    v5, v311, web = await lamps(client, city, 3)
    port = platform.mqtt[0].mqtt_port
    s5, rc5 = await Session.open(port, v5["token"], 5)
    s3, rc3 = await Session.open(port, v311["token"], 4)
    try:
        assert (rc5, rc3) == (0, 0)
        for s in (s5, s3):
            s.publish(1, T0, 1.0)
            assert await s.acked() == (1, 0)
        assert (await post(client, web["token"], T0, 1.0)).status_code == 200

        go_down()
        for s in (s5, s3):  # held: no PUBACK until committed, and no disconnection
            s.publish(2, T0 + 1, 2.0, pad=200)
        await until(lambda: platform.pipeline.outage is not None, "the writer notices")
        ready = await client.get("/readyz")
        assert is_problem(ready, 503), ready.text
        assert ready.json()["reason"]
        assert (await client.get("/livez")).status_code == 200
        health = await client.get("/healthz")
        assert health.status_code == 503
        assert health.json()["status"] == "unavailable"
        refused = await post(client, web["token"], T0 + 1, 2.0, pad=200)
        assert is_problem(refused, 503), refused.text
        assert int(refused.headers["retry-after"]) >= 1
        read = await count(client, city, v5["id"])  # served if the store can read, else a 503
        assert read.status_code == 200 or is_problem(read, 503), read.text
        for version, busy in ((5, 0x89), (4, 0x03)):  # server busy / server unavailable
            late, rc = await Session.open(port, v5["token"], version)
            assert rc == busy
            late.writer.close()
        assert not s5.backlog
        assert not s3.backlog

        come_back()
        for s in (s5, s3):
            assert await s.acked() == (2, 0)  # on the same connection
            s.publish(3, T0 + 2, 3.0)
            assert await s.acked() == (3, 0)
        await until(lambda: _ok(client, "/readyz"), "/readyz answers 200")
        assert (await post(client, web["token"], T0 + 2, 3.0)).status_code == 200
        for lamp, n in ((v5, 3), (v311, 3), (web, 2)):
            r = await count(client, city, lamp["id"])
            assert r.status_code == 200, r.text
            assert r.json() == {"power": [{"ts": T0, "value": n}]}
    finally:
        for s in (s5, s3):
            await s.close()


async def _ok(client: httpx.AsyncClient, path: str) -> bool:
    return (await client.get(path)).status_code == 200


# -- PostgreSQL ------------------------------------------------------------------------------
WRITERS = [pytest.param(False, id="in-process"), pytest.param(True, id="writer-process")]


@pytest.mark.postgres
@pytest.mark.parametrize("writer_process", WRITERS)
async def test_ingest_rides_out_a_postgres_restart(
    own_cluster: PostgresCluster, tmp_path: Path, writer_process: bool
) -> None:
    url = migrated(own_cluster)
    async with (
        serving(url, tmp_path, store_writer_process=writer_process) as platform,
        api(platform) as client,
    ):
        city = seed(platform)
        await ride_out(platform, client, city, own_cluster.halt, own_cluster.resume)
        assert platform.pipeline.outage is None


@pytest.mark.postgres
async def test_ingest_rides_out_a_cut_network(own_cluster: PostgresCluster, tmp_path: Path) -> None:
    relay = Relay(own_cluster.port)
    try:
        url = migrated(own_cluster, relay.port)
        async with serving(url, tmp_path) as platform, api(platform) as client:
            await ride_out(platform, client, seed(platform), relay.cut, relay.restore)
    finally:
        relay.close()


@pytest.mark.postgres
async def test_ingest_rides_out_a_failover_to_a_new_server(tmp_path: Path) -> None:
    primary = PostgresCluster().start()
    standby: list[PostgresCluster] = []
    try:
        async with serving(migrated(primary), tmp_path) as platform, api(platform) as client:
            await ride_out(
                platform,
                client,
                seed(platform),
                primary.halt,
                lambda: standby.append(_promote(primary)),
            )
    finally:
        for cluster in (*standby, primary):
            cluster.stop()


def _promote(primary: PostgresCluster) -> PostgresCluster:
    # the primary is down already: failover() halts it again, so bring it up for a moment
    primary.resume()
    return primary.failover()


KILL = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE datname = %s AND pid <> pg_backend_pid()"
)


@pytest.mark.postgres
@pytest.mark.parametrize("kill", ["pg_terminate_backend", "idle_session_timeout"])
async def test_killed_connections_are_replaced(
    own_cluster: PostgresCluster, tmp_path: Path, kill: str
) -> None:
    url = migrated(own_cluster)
    name = url.rsplit("/", 1)[1]
    if kill == "idle_session_timeout":  # the server ends every session idle for a second
        # (not shorter: a busy machine can take that long between the pool's ping and the
        # query it lets through, and a session ended in between fails that one query)
        own_cluster.execute(f"ALTER DATABASE {name} SET idle_session_timeout = '1s'")
    async with serving(url, tmp_path) as platform, api(platform) as client:
        city = seed(platform)
        (lamp,) = await lamps(client, city, 1)
        session, _ = await Session.open(platform.mqtt[0].mqtt_port, lamp["token"], 5)
        session.publish(1, T0, 1.0)
        assert await session.acked() == (1, 0)
        if kill == "pg_terminate_backend":  # the writer's and the readers' connections
            assert own_cluster.execute(KILL, name)
        else:
            writer = platform.series._conn.driver_connection.info.backend_pid  # type: ignore[attr-defined]
            alive = "SELECT 1 FROM pg_stat_activity WHERE pid = %s"
            await until(lambda: not own_cluster.execute(alive, writer), "the writer's is ended")
        read = await count(client, city, lamp["id"])  # flushes on the writer's connection
        assert read.status_code == 200, read.text
        assert (await post(client, lamp["token"], T0 + 1, 2.0)).status_code == 200
        session.publish(2, T0 + 2, 3.0)
        assert await session.acked() == (2, 0)
        r = await count(client, city, lamp["id"])
        assert r.status_code == 200, r.text
        assert r.json() == {"power": [{"ts": T0, "value": 3}]}
        assert await _ok(client, "/readyz")
        await session.close()


@pytest.mark.postgres
@pytest.mark.parametrize(
    "lost",
    [
        pytest.param("batch", id="batch"),
        pytest.param("batch-alone", id="batch-nothing-else-pending"),
        pytest.param("flush", id="flush"),
    ],
)
def test_a_commit_whose_answer_is_lost_counts_once(own_cluster: PostgresCluster, lost: str) -> None:
    """The connection breaks after the server committed, before smartpole heard it: retrying
    must neither lose the batch's rollups nor add them twice."""
    relay = Relay(own_cluster.port)
    db = Database(migrated(own_cluster, relay.port))
    store = open_series(db, flush_ms=10**9)
    try:
        first = [Reading(1, "power", T0 + i, float(i)) for i in range(100)]
        store.write(WriteBatch(readings=first))  # creates the month's partition
        second = WriteBatch(readings=[Reading(1, "power", T0 + 100 + i, 1.0) for i in range(50)])
        if lost == "batch-alone":
            store.flush()  # the lost batch's mark is the only one: a flush must still find it
        if lost.startswith("batch"):
            relay.lose_next_commit_answer()
            with pytest.raises(StoreUnavailable):
                store.write(second)
            store.write(second)  # the pipeline retries the same batch
        else:
            store.write(second)
            relay.lose_next_commit_answer()
            store.flush()  # tries again on a new connection: finds the lost COMMIT landed
        store.flush()
        assert relay.lost_commits == 1
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT count(*) FROM readings")).scalar()
            rolled = conn.execute(text("SELECT sum(cnt) FROM rollups")).scalar()
            marks = conn.execute(text("SELECT count(*) FROM derived_pending")).scalar()
        assert (rows, rolled, marks) == (150, 150, 0)
        assert store.latest([1])[1]["power"] == (T0 + 149, 1)
    finally:
        store.close()  # type: ignore[attr-defined]
        db.dispose()
        relay.close()


# -- SQLite ----------------------------------------------------------------------------------
@contextlib.contextmanager
def writer_connection(platform: Platform) -> Iterator[sqlite3.Connection]:
    """The SQLite writer's own connection (``max_page_count`` is per connection), between two
    of its transactions."""
    series = platform.series
    with series._write_lock:  # type: ignore[attr-defined]
        yield series._connection()  # type: ignore[attr-defined]


def fill_the_disk(platform: Platform) -> None:
    """Cap the file at its size and fill what room is left: the disk is full."""
    with writer_connection(platform) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS ballast (x BLOB)")
        conn.commit()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        for _ in range(10_000):
            try:
                conn.execute("INSERT INTO ballast VALUES (zeroblob(2000))")
                conn.commit()
            except sqlite3.OperationalError as err:
                conn.rollback()
                full = err.sqlite_errorname
                break
        else:
            full = "never"
    assert full == "SQLITE_FULL"


def free_space(platform: Platform) -> None:
    """Room again (the operator freed space)."""
    with writer_connection(platform) as conn:
        conn.execute("PRAGMA max_page_count = 1073741823")


def sqlite_file(tmp_path: Path) -> Path:
    """A migrated SQLite database file."""
    path = tmp_path / "smartpole.db"
    db = Database(f"sqlite:///{path}")
    try:
        db.upgrade()
    finally:
        db.dispose()
    return path


async def test_sqlite_rides_out_a_full_disk(tmp_path: Path) -> None:
    url = f"sqlite:///{sqlite_file(tmp_path)}"
    async with serving(url, tmp_path) as platform, api(platform) as client:
        full, room = (lambda: fill_the_disk(platform)), (lambda: free_space(platform))
        await ride_out(platform, client, seed(platform), full, room)


HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


class Locker:
    """Another process that holds the database file's write lock until released."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.proc: subprocess.Popen[bytes] | None = None

    def lock(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(self.path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == b"locked\n"

    def release(self) -> None:
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"\n")
        self.proc.stdin.flush()
        assert self.proc.wait(30) == 0

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(30)
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    pipe.close()


@pytest.mark.parametrize("writer_process", WRITERS)
async def test_sqlite_rides_out_a_file_locked_by_another_process(
    tmp_path: Path, writer_process: bool
) -> None:
    path = sqlite_file(tmp_path)
    locker = Locker(path)
    settings = {"sqlite_busy_timeout_ms": 100, "store_writer_process": writer_process}
    try:
        async with serving(f"sqlite:///{path}", tmp_path, **settings) as platform:
            async with api(platform) as client:
                await ride_out(platform, client, seed(platform), locker.lock, locker.release)
    finally:
        locker.close()


async def test_ngsi_ld_writes_answer_503_while_the_file_is_locked_and_lose_nothing(
    tmp_path: Path,
) -> None:
    path = sqlite_file(tmp_path)
    locker = Locker(path)
    try:
        async with serving(f"sqlite:///{path}", tmp_path, sqlite_busy_timeout_ms=100) as platform:
            async with api(platform) as client:
                auth = seed(platform).auth("city")
                cars = [
                    {"id": f"urn:ngsi-ld:Car:{n}", "type": "Car", "speed": n} for n in range(50)
                ]
                locker.lock()
                r = await client.post(
                    "/ngsi-ld/v1/entityOperations/upsert", json=cars, headers=auth
                )
                assert r.status_code == 503, r.text  # the store's outage, not a 500
                assert r.headers["retry-after"]
                locker.release()
                r = await client.get("/ngsi-ld/v1/entities", params={"type": "Car"}, headers=auth)
                assert r.json() == []  # nothing half-written
                r = await client.post(
                    "/ngsi-ld/v1/entityOperations/upsert", json=cars, headers=auth
                )
                assert r.status_code == 201, r.text
                r = await client.get(
                    "/ngsi-ld/v1/entities", params={"type": "Car", "count": "true"}, headers=auth
                )
                assert r.headers["NGSILD-Results-Count"] == "50"
    finally:
        locker.close()
