"""Which :class:`~smartpole.store.series.SeriesStore` serves a database's engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smartpole.store.database import Database

if TYPE_CHECKING:
    from smartpole.store.series import SeriesStore

__all__ = ["engine_series"]


def engine_series(db: Database, default_retention_days: int = 0, **kwargs: Any) -> SeriesStore:
    """The time-series store of ``db``'s engine (``kwargs``: :class:`SeriesStore`'s)."""
    if db.dialect == "sqlite":
        from smartpole.store.sqlite import SqliteSeries

        return SqliteSeries(db, default_retention_days, **kwargs)
    from smartpole.store.postgres import PostgresSeries

    return PostgresSeries(db, default_retention_days, **kwargs)
