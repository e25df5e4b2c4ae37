"""Connection to the configured engine, and migrations."""

from __future__ import annotations

import sqlite3
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

import sqlalchemy.exc
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, Table, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite

from smartpole.errors import StoreUnavailable
from smartpole.store.files import private_file

__all__ = ["Database", "put_rows", "store_unavailable", "upsert"]

# SQLite errors that pass when the disk has room again or the other process lets go of the file
TRANSIENT_SQLITE = {"SQLITE_FULL", "SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN"}
# libpq: bound the wait for a server that vanished without closing the connection (a cut
# network, a failover): keepalives on an idle connection, a send timeout on a busy one.
PG_CONNECT_ARGS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}


def upsert(engine: Engine) -> Any:
    """The engine's dialect ``insert``, which has ``on_conflict_do_update``: one statement that
    two writers of the same row can run at once (a delete-then-insert would collide)."""
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert


def put_rows(conn: Connection, table: Table, keys: list[str], rows: list[dict[str, Any]]) -> None:
    """Insert ``rows``, or overwrite the other columns of those whose ``keys`` exist already."""
    if not rows:
        return
    stmt = upsert(conn.engine)(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=keys,
        set_={c: stmt.excluded[c] for c in rows[0] if c not in keys},
    )
    conn.execute(stmt, rows)


def store_unavailable(err: BaseException) -> StoreUnavailable | None:
    """The :class:`StoreUnavailable` an engine error amounts to, or None when it is no outage.

    An outage passes by itself (the server comes back, space is freed, the lock is released),
    so what failed may be retried; any other error (a bug, a constraint) would fail again.
    """
    if isinstance(err, StoreUnavailable):
        return err
    cause = err.orig if isinstance(err, sqlalchemy.exc.DBAPIError) else err
    said = (str(cause).strip().splitlines() or [type(cause).__name__])[0]  # libpq: many lines
    if isinstance(cause, sqlite3.OperationalError):
        name = getattr(cause, "sqlite_errorname", "")
        if name in TRANSIENT_SQLITE or name.startswith("SQLITE_IOERR"):
            return StoreUnavailable(f"SQLite cannot write: {said} ({name})", reason=name)
        return None
    if (isinstance(err, sqlalchemy.exc.DBAPIError) and err.connection_invalidated) or (
        cause is not None and _is_psycopg_outage(cause)
    ):
        return StoreUnavailable(f"PostgreSQL unavailable: {said}", reason=said)
    return None


def _is_psycopg_outage(err: BaseException) -> bool:
    """psycopg's OperationalError (connection refused or lost, the server shutting down, a
    terminated backend), an InterfaceError (a connection already closed), a session ended for
    idling in a transaction."""
    psycopg = sys.modules.get("psycopg")  # not loaded: the error cannot be psycopg's
    if psycopg is None:
        return False
    return isinstance(
        err,
        psycopg.OperationalError
        | psycopg.InterfaceError
        | psycopg.errors.IdleInTransactionSessionTimeout,
    )


class Database:
    """One SQLAlchemy engine plus what smartpole needs around it."""

    def __init__(
        self, url: str, *, sqlite_synchronous: str = "FULL", sqlite_busy_timeout_ms: int = 30_000
    ) -> None:
        self.url = url
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        self.sqlite_synchronous = sqlite_synchronous
        self.sqlite_busy_timeout_ms = sqlite_busy_timeout_ms
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            path = make_url(url).database
            if path and path != ":memory:" and not path.startswith("file:"):
                # SQLite creates its -wal and -shm files with the database file's mode
                private_file(Path(path))
        if self.dialect == "postgresql":
            kwargs.update(
                pool_size=8, max_overflow=8, pool_pre_ping=True, connect_args=PG_CONNECT_ARGS
            )
        else:
            busy = sqlite_busy_timeout_ms
            kwargs.update(connect_args={"check_same_thread": False, "timeout": busy / 1000})
        self.engine: Engine = create_engine(url, **kwargs)
        if self.dialect == "sqlite":
            sync = sqlite_synchronous

            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={sync}")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute(f"PRAGMA busy_timeout={int(busy)}")
                cur.close()

    def _alembic(self) -> Config:
        cfg = Config()
        cfg.set_main_option("script_location", str(files("smartpole.store") / "migrations"))
        return cfg

    def upgrade(self, target: str = "head") -> str:
        """Apply every pending migration (up to ``target``); return the revision the database
        is at."""
        cfg = self._alembic()
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, target)
        return self.revision() or ""

    def revision(self) -> str | None:
        """The database's current migration revision (None before any)."""
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def knows(self, revision: str) -> bool:
        """Whether ``revision`` is one of the migrations this version of smartpole ships."""
        if not revision:
            return False
        try:
            found = ScriptDirectory.from_config(self._alembic()).get_revision(revision)
        except CommandError:  # alembic's answer for an id it has no script of
            return False
        return found is not None

    def head(self) -> str:
        """The newest migration this version of smartpole ships."""
        return ScriptDirectory.from_config(self._alembic()).get_current_head() or ""

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
