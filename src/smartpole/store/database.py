"""Connection to the configured engine, migrations, and clock."""

from __future__ import annotations

import time
from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, Table, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite

from smartpole.store.files import private_file

__all__ = ["Database", "now_ms", "put_rows", "upsert"]


def now_ms() -> int:
    """Wall-clock time in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


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


class Database:
    """One SQLAlchemy engine plus what smartpole needs around it."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL") -> None:
        self.url = url
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            path = make_url(url).database
            if path and path != ":memory:" and not path.startswith("file:"):
                # SQLite creates its -wal and -shm files with the database file's mode
                private_file(Path(path))
        if self.dialect == "postgresql":
            kwargs.update(pool_size=8, max_overflow=8, pool_pre_ping=True)
        else:
            kwargs.update(connect_args={"check_same_thread": False, "timeout": 30})
        self.engine: Engine = create_engine(url, **kwargs)
        if self.dialect == "sqlite":
            sync = sqlite_synchronous

            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={sync}")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA busy_timeout=30000")
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
