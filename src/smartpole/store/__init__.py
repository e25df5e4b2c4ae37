"""Storage: one interface, two engines (embedded SQLite, PostgreSQL)."""

from __future__ import annotations

from smartpole.store.database import Database, now_ms
from smartpole.store.series import (
    Quarantined,
    SeriesStore,
    TimeSeries,
    WriteBatch,
    WriteResult,
)

__all__ = [
    "Database",
    "Quarantined",
    "SeriesStore",
    "TimeSeries",
    "WriteBatch",
    "WriteResult",
    "now_ms",
    "open_series",
]


def open_series(
    db: Database, default_retention_days: int = 0, *, flush_ms: int = 0, node: str = "local"
) -> SeriesStore:
    """The time-series store for the database's engine (see :class:`SeriesStore`)."""
    if db.dialect == "sqlite":
        from smartpole.store.sqlite import SqliteSeries

        return SqliteSeries(db, default_retention_days, flush_ms=flush_ms, node=node)
    from smartpole.store.postgres import PostgresSeries

    return PostgresSeries(db, default_retention_days, flush_ms=flush_ms, node=node)
