"""The composition root: builds every part from one Settings object and wires them."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from smartpole.config import Settings
from smartpole.ingest.pipeline import Pipeline
from smartpole.registry.access import Tenants
from smartpole.registry.assets import Assets
from smartpole.store import Database, SeriesStore, open_series

__all__ = ["Platform"]

log = logging.getLogger(__name__)


class Platform:
    """Everything a running smartpole holds; ``start``/``stop`` manage its tasks."""

    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        self.settings = settings
        if db is None:
            if not settings.db:
                settings.data_dir.mkdir(parents=True, exist_ok=True)
            db = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
        self.db = db
        self.series: SeriesStore = open_series(
            self.db,
            settings.retention_days,
            flush_ms=settings.derived_flush_ms,
            node=settings.node_id,
        )
        self.tenants = Tenants(self.db.engine)
        self.assets = Assets(self.db.engine)
        self.pipeline = Pipeline(
            self.series,
            batch_size=settings.batch_size,
            batch_age_ms=settings.batch_age_ms,
            capacity=settings.queue_readings,
        )
        self._tasks: list[asyncio.Task[None]] = []

    def upgrade(self) -> str:
        """Bring the schema to this version's head."""
        return self.db.upgrade()

    async def start(self) -> None:
        """Start the pipeline and the background tasks."""
        await asyncio.to_thread(self.series.recover)
        await self.pipeline.start()
        self._tasks.append(asyncio.create_task(self._retention(), name="retention"))
        if self.settings.derived_flush_ms:
            self._tasks.append(asyncio.create_task(self._flusher(), name="derived-flush"))

    async def stop(self) -> None:
        """Drain the pipeline, stop the tasks, close connections."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.pipeline.stop()
        close = getattr(self.series, "close", None)
        if close is not None:
            close()
        self.db.dispose()

    async def _flusher(self) -> None:
        """Write gathered latest state and rollups even when no batch or read comes."""
        while True:
            await asyncio.sleep(self.settings.derived_flush_ms / 1000)
            try:
                await asyncio.to_thread(self.series.flush)
            except Exception:
                log.exception("flushing latest state and rollups failed")

    async def _retention(self) -> None:
        while True:
            try:
                deleted = await asyncio.to_thread(self.series.purge)
                if deleted:
                    log.info("retention deleted %d expired readings", deleted)
            except Exception:
                log.exception("retention pass failed")
            await asyncio.sleep(self.settings.retention_interval_s)
