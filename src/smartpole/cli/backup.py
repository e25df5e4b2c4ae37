"""``backup`` and ``restore``: the embedded store, online; PostgreSQL's own tools otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit, urlunsplit

import typer

from smartpole.cli.common import DataDir, Db, JsonOut, console, fail, print_json, settings
from smartpole.errors import InvalidInput, SmartpoleError

if TYPE_CHECKING:
    from smartpole.config import Settings

File = Annotated[Path, typer.Argument(help="The backup file.", show_default=False)]


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    netloc += f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=netloc))


def _postgres(s: Settings, file: Path, action: str) -> typer.Exit:
    """PostgreSQL is backed up with its own tools; say how."""
    url = _without_password(s.db or "")
    if action == "backup":
        how = f'pg_dump --format=custom --file={file} "{url}"'
    else:
        how = (
            f'createdb <new database> && pg_restore --no-owner --dbname="<new database URL>" '
            f"{file}\n  smartpole db status --db <new database URL>"
        )
    console.print(
        f"PostgreSQL: use its own tools (the password from ~/.pgpass or PGPASSWORD):\n  {how}\n"
        "See docs/operators.md#backups."
    )
    return typer.Exit(2)


def backup_command(
    file: File, data_dir: DataDir = None, db: Db = None, json: JsonOut = False
) -> None:
    """Copy the embedded store to FILE while the server runs (SQLite's online backup)."""
    from smartpole.store.backup import DB_FILE, backup

    s = settings(data_dir, db)
    if s.db:
        raise _postgres(s, file, "backup")
    try:
        info = backup(s.data_dir / DB_FILE, file)
    except SmartpoleError as err:
        raise fail(err) from err
    out = {
        "file": str(file),
        "revision": info.revision,
        "readings": info.readings,
        "bytes": info.bytes,
    }
    if json:
        print_json(out)
    else:
        console.print(
            f"backed up {info.readings} readings (schema {info.revision}, {info.bytes} bytes) "
            f"to {file}"
        )


def restore_command(
    file: File, data_dir: DataDir = None, db: Db = None, json: JsonOut = False
) -> None:
    """Replace the embedded store by FILE; refused while a server runs on the data directory."""
    from smartpole.app import Platform
    from smartpole.store import Database
    from smartpole.store.backup import DB_FILE, adopt_pending, inspect, restore, server_lock

    s = settings(data_dir, db)
    if s.db:
        raise _postgres(s, file, "restore")
    try:
        info = inspect(file)
        migrations = Database("sqlite://")  # in memory: only its migration scripts are asked
        known, head = migrations.knows(info.revision or ""), migrations.head()
        migrations.dispose()
        if not known:
            raise InvalidInput(
                f"{file} is at schema revision {info.revision}, which this smartpole does not "
                f"know (newest: {head}); restore it with the version that made it"
            )
        with server_lock(s.data_dir, exclusive=True):
            aside = restore(file, s.data_dir)
            adopted = adopt_pending(s.data_dir / DB_FILE, s.node_id)
            p = Platform(s)
            try:
                revision = p.upgrade()
                recovered = p.series.recover()  # latest and rollups the backup had not flushed
            finally:
                p.series.close()
                p.db.dispose()
    except SmartpoleError as err:
        raise fail(err) from err
    out = {
        "file": str(file),
        "readings": info.readings,
        "revision": revision,
        "from_revision": info.revision,
        "recovered_batches": recovered if adopted else 0,
        "replaced": str(aside) if aside else None,
    }
    if json:
        print_json(out)
        return
    console.print(f"restored {info.readings} readings from {file} (schema {revision})")
    if aside:
        console.print(f"the database it replaced is in {aside}; delete it when satisfied")


def register(app: typer.Typer) -> None:
    """Add these commands to the main app."""
    app.command("backup")(backup_command)
    app.command("restore")(restore_command)
