"""``smartpole backup`` and ``restore``: online, during real ingest, counts compared after.

The backup runs in a thread (its own SQLite connection, as the command in another process
would) while a platform keeps ingesting over its HTTP device API, whose derived state (latest
values, rollups) is held in memory at backup time, so the restore has to recompute it from the
backup's marks. Commands run in-process (typer's runner): an interpreter start costs seconds on
a loaded machine, and the CLI's tests already run the console script itself.
"""

from __future__ import annotations

import asyncio
import sqlite3
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from smartpole.api import create_app
from smartpole.app import Platform
from smartpole.cli import app as cli_app
from smartpole.config import Settings
from smartpole.model.clock import now_ms
from smartpole.model.types import DeviceKind
from smartpole.sim.seed import city_principal

HOUR = 3_600_000


@dataclass(frozen=True)
class Ran:
    """What an in-process command did."""

    returncode: int
    stdout: str
    stderr: str


def command(*args: str) -> Ran:
    """Run a ``smartpole`` command in this process (every option given, none from outside)."""
    result = CliRunner(env={"COLUMNS": "200"}).invoke(cli_app, list(args))
    return Ran(result.exit_code, result.stdout, result.stderr)


def counts(db: Path) -> tuple[set[int], dict[int, int], dict[int, int], int | None]:
    """What a database holds of the test device's ``power``: reading timestamps, readings per
    hour, rollup counts per hour, and the latest value's timestamp."""
    conn = sqlite3.connect(db)
    try:
        stamps = {ts for (ts,) in conn.execute("SELECT ts FROM readings WHERE key = 'power'")}
        rollups = dict(conn.execute("SELECT hour, cnt FROM rollups WHERE key = 'power'"))
        latest = conn.execute("SELECT ts FROM latest WHERE key = 'power'").fetchone()
    finally:
        conn.close()
    per_hour: dict[int, int] = {}
    for ts in stamps:
        per_hour[ts - ts % HOUR] = per_hour.get(ts - ts % HOUR, 0) + 1
    return stamps, per_hour, rollups, latest[0] if latest else None


def migrated(data_dir: Path) -> None:
    """An empty store at the current schema in ``data_dir``."""
    platform = Platform(Settings(data_dir=data_dir, mqtt_port=-1))
    platform.upgrade()
    platform.db.dispose()


class Live:
    """A platform serving its HTTP device API in-process, and one device's token."""

    def __init__(self, platform: Platform, client: httpx.AsyncClient, token: str) -> None:
        self.platform, self.client, self.token = platform, client, token
        self.acked: set[int] = set()

    async def upload(self, stamps: list[int]) -> None:
        """Post readings and remember them once acknowledged (after the commit)."""
        body = [{"ts": ts, "values": {"power": float(ts % 97)}} for ts in stamps]
        r = await self.client.post(f"/api/v1/{self.token}/telemetry", json=body)
        assert r.status_code == 200, r.text
        self.acked.update(stamps)


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    """A running embedded platform whose latest values and rollups wait in memory (a flush a
    minute), under a node name of its own."""
    settings = Settings(
        data_dir=tmp_path / "live", mqtt_port=-1, derived_flush_ms=60_000, node_id="live-node"
    )
    platform = Platform(settings)
    platform.upgrade()
    await platform.start()
    owner = city_principal(platform.tenants)
    _, token = platform.assets.create_device(owner, name="meter-1", kind=DeviceKind.METER)
    app = create_app(platform.api_services())
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://sp.test") as client:
            yield Live(platform, client, token)
    finally:
        await platform.stop()


async def test_backup_during_ingest_restores_what_was_acknowledged(
    live: Live, tmp_path: Path
) -> None:
    start = now_ms() - 5 * HOUR  # readings over several hours: several rollup rows
    await live.upload([start + i * 1000 for i in range(500)])
    stop = asyncio.Event()

    async def ingest() -> None:
        ts = start + 10_000_000
        while not stop.is_set():
            await live.upload([ts + i * 1000 for i in range(50)])
            ts += 50_000

    writer = asyncio.create_task(ingest())
    try:
        await live.upload([start + 20_000_000])  # ingest is running
        before = set(live.acked)
        backup_file = tmp_path / "backups" / "smartpole-backup.db"
        backup_file.parent.mkdir()
        made = await asyncio.to_thread(
            command, "backup", str(backup_file), "--data-dir", str(tmp_path / "live")
        )
        after = set(live.acked)
    finally:
        stop.set()
        await writer
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(backup_file.stat().st_mode) == 0o600

    fresh = tmp_path / "fresh"
    restored = command("restore", str(backup_file), "--data-dir", str(fresh))
    assert restored.returncode == 0, restored.stderr
    db = fresh / "smartpole.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    stamps, per_hour, rollups, latest = counts(db)
    assert before <= stamps <= after  # every reading acknowledged before the backup, no phantom
    assert rollups == per_hour  # exact, although none had been flushed when the backup ran
    assert latest == max(stamps)


async def test_restore_refuses_while_a_server_runs(live: Live, tmp_path: Path) -> None:
    backup_file = tmp_path / "b.db"
    assert command("backup", str(backup_file), "--data-dir", str(tmp_path / "live")).returncode == 0
    refused = command("restore", str(backup_file), "--data-dir", str(tmp_path / "live"))
    assert refused.returncode == 1
    assert "server is running" in refused.stderr
    await live.upload([now_ms()])  # the server carried on


def test_restore_refuses_a_backup_from_a_newer_schema(tmp_path: Path) -> None:
    data = tmp_path / "data"
    migrated(data)
    backup_file = tmp_path / "b.db"
    assert command("backup", str(backup_file), "--data-dir", str(data)).returncode == 0
    with sqlite3.connect(backup_file) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    refused = command("restore", str(backup_file), "--data-dir", str(tmp_path / "other"))
    assert refused.returncode == 1
    assert "9999" in refused.stderr
    assert not (tmp_path / "other" / "smartpole.db").exists()


def test_restore_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    refused = command("restore", str(junk), "--data-dir", str(tmp_path / "data"))
    assert refused.returncode == 1
    assert "not an SQLite database" in refused.stderr or "damaged" in refused.stderr


def test_backup_never_overwrites_a_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    migrated(data)
    taken = tmp_path / "taken.db"
    taken.write_bytes(b"keep me")
    refused = command("backup", str(taken), "--data-dir", str(data))
    assert refused.returncode == 1
    assert taken.read_bytes() == b"keep me"


def test_postgresql_backup_points_to_pg_dump_without_the_password(tmp_path: Path) -> None:
    url = "postgresql://smartpole:s3cret@db.example:5432/smartpole"
    told = command("backup", str(tmp_path / "x.dump"), "--db", url)
    assert told.returncode == 2
    assert "pg_dump --format=custom" in told.stderr
    assert "smartpole@db.example:5432/smartpole" in told.stderr
    assert "s3cret" not in told.stderr + told.stdout
