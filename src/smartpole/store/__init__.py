"""Storage: one interface, two engines (embedded SQLite, PostgreSQL)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smartpole.store.database import Database
from smartpole.store.engines import engine_series
from smartpole.store.files import private_dir
from smartpole.store.series import SeriesStore, TimeSeries
from smartpole.store.writer import WriterProcess, WriterSeed

__all__ = [
    "Database",
    "SeriesStore",
    "TimeSeries",
    "open_database",
    "open_series",
]

if TYPE_CHECKING:
    from smartpole.config import Settings


def open_database(settings: Settings) -> Database:
    """The configured database: PostgreSQL, or the embedded one in the (private) data dir."""
    if not settings.db:
        private_dir(settings.data_dir)
    return Database(
        settings.database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
    )


def open_series(
    db: Database,
    default_retention_days: int = 0,
    *,
    flush_ms: int = 0,
    node: str = "local",
    writer_process: bool = False,
) -> SeriesStore:
    """The time-series store for the database's engine (see :class:`SeriesStore`); with
    ``writer_process``, its writes are committed by a process of their own (``writer.py``)."""
    writer = None
    if writer_process:
        seed = WriterSeed(
            db.url,
            node,
            flush_ms=flush_ms,
            retention_days=default_retention_days,
            sqlite_synchronous=db.sqlite_synchronous,
            sqlite_busy_timeout_ms=db.sqlite_busy_timeout_ms,
        )
        writer = WriterProcess(seed)
    return engine_series(db, default_retention_days, flush_ms=flush_ms, node=node, writer=writer)
