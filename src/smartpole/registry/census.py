"""Per-tenant counts for the metrics: devices each tenant owns and readings they sent.

Only the city operator may see these (they name every tenant); ``/metrics`` enforces that.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence

from sqlalchemy import Engine, case, func, select
from sqlalchemy.exc import SQLAlchemyError

from smartpole.metrics import Metrics
from smartpole.model.clock import now_ms
from smartpole.model.writes import WriteBatch
from smartpole.store.schema import devices, tenants

__all__ = ["Census"]

log = logging.getLogger(__name__)

CHUNK = 1000  # ids per IN (...): far below SQLite's parameter limit
OWNERS_TTL_S = 300.0  # a device moved to another tenant is counted for the new one after this


class Census:
    """Counts by tenant, read at scrape time (devices) or as batches commit (readings)."""

    def __init__(self, engine: Engine, metrics: Metrics, recent_ms: int) -> None:
        self.engine = engine
        self.metrics = metrics
        self.recent_ms = recent_ms
        self._owners: dict[int, str] = {}
        self._owners_at = time.monotonic()

    def devices(self) -> list[tuple[Sequence[str], float]]:
        """``((tenant, state), n)``: devices each tenant owns, ``all`` and ``reporting`` (an
        upload within the inactivity timeout)."""
        since = now_ms() - self.recent_ms
        reporting = func.sum(case((devices.c.last_seen >= since, 1), else_=0))
        q = (
            select(tenants.c.name, func.count(devices.c.id), reporting)
            .select_from(tenants.outerjoin(devices, devices.c.owner_id == tenants.c.id))
            .group_by(tenants.c.name)
        )
        out: list[tuple[Sequence[str], float]] = []
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(q).all()
        except SQLAlchemyError as err:
            # the other metrics matter most when the database is down: scrape without these
            log.warning("per-tenant device counts unavailable: %s", err)
            return out
        for name, total, recent in rows:
            out += [((name, "all"), float(total)), ((name, "reporting"), float(recent or 0))]
        return out

    async def on_batch(self, batch: WriteBatch) -> None:
        """A pipeline listener: count a committed batch's readings by the devices' owners."""
        per_device = Counter(r.device_id for r in batch.readings)
        if time.monotonic() - self._owners_at > OWNERS_TTL_S:
            self._owners, self._owners_at = {}, time.monotonic()
        unknown = [d for d in per_device if d not in self._owners]
        if unknown:
            self._owners.update(await asyncio.to_thread(self._owner_names, unknown))
        per_tenant: Counter[str] = Counter()
        owners = self._owners
        for device_id, n in per_device.items():
            tenant = owners.get(device_id)
            if tenant is not None:
                per_tenant[tenant] += n
        for tenant, n in per_tenant.items():  # a labelled child's look-up is not free
            self.metrics.tenant_readings.labels(tenant).inc(n)

    def _owner_names(self, device_ids: Sequence[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(device_ids), CHUNK):
                q = (
                    select(devices.c.id, tenants.c.name)
                    .join(tenants, tenants.c.id == devices.c.owner_id)
                    .where(devices.c.id.in_(device_ids[i : i + CHUNK]))
                )
                found.update({did: name for did, name in conn.execute(q)})
        return found
