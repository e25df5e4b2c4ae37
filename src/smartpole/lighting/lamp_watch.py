"""The lamp diagnostics on the pipeline: committed readings in, lamp alarms and work orders out.

:class:`LampWatch` is a pipeline listener (wired in ``smartpole.app`` like the anomaly detector):
it only enqueues each committed batch; its own task groups the readings into reports (one lamp,
one moment), runs :class:`~smartpole.lighting.diagnostics.LampDiagnostics` in a worker thread
and raises or clears each diagnosis's alarm through the hub's alarm API, opening a work order
for the diagnoses that need a crew (``lamp_failure``, ``control_gear_failure``).

:class:`RegistryLampFacts` answers ``lamp_facts(tenant, device)`` from the registry: the lamp's
owner and pole, the pole's position, road and district, and the rating attributes
and its ratings as :mod:`smartpole.lighting.lamps` reads them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from smartpole.hub.actions import WorkOrderOpener
from smartpole.hub.alarms.store import ACTIVE, Alarms
from smartpole.hub.alarms.tables import alarms as alarm_rows
from smartpole.lighting.diagnostics import (
    DIAGNOSES,
    LATCHED,
    SEVERITY,
    WORK_ORDER,
    Diagnosis,
    DiagnosisEvent,
    LampDiagnostics,
    LampFacts,
)
from smartpole.lighting.lamps import Ratings, read_ratings
from smartpole.model.types import DeviceKind, Reading, Value
from smartpole.model.writes import WriteBatch
from smartpole.store.schema import devices, poles

__all__ = ["LampFactsSource", "LampWatch", "RegistryLampFacts"]

log = logging.getLogger(__name__)
LAMP_KEYS = frozenset({"on", "dim", "power"})
WARM_CHUNK = 500  # devices looked up in one query


class LampFactsSource(Protocol):
    """``lamp_facts(tenant, device)`` (:data:`LampFactsLookup`) that can also be told which
    devices a batch is about, to look them up together."""

    def __call__(self, tenant: int | None, device: int) -> LampFacts | None: ...

    def warm(self, device_ids: Iterable[int]) -> None:
        """Look up at once the devices not known or known too long ago."""


class RegistryLampFacts:
    """``lamp_facts(tenant, device)`` from the registry, each answer kept ``ttl_s`` seconds;
    ratings as :mod:`smartpole.lighting.lamps` reads them, times in the owner's zone.
    :meth:`warm` looks up the devices of a batch in a few queries rather than two each.

    A lamp on no pole has no position: it is placed at (``lat``, ``lon``), the city's centre.
    """

    def __init__(
        self,
        engine: Engine,
        zone: Callable[[int], ZoneInfo],
        *,
        lat: float = 0.0,
        lon: float = 0.0,
        ttl_s: float = 300.0,
    ) -> None:
        self.engine = engine
        self.zone = zone  # a tenant's time zone (registry.access.Tenants.zone)
        self.lat, self.lon = lat, lon
        self.ttl_s = ttl_s
        self._cache: dict[int, tuple[float, LampFacts | None]] = {}

    def __call__(self, tenant: int | None, device: int) -> LampFacts | None:
        """The lamp's facts; None for a device of another kind or tenant, or unknown."""
        hit = self._cache.get(device)
        if hit is None or time.monotonic() - hit[0] > self.ttl_s:
            self._load([device])
            hit = self._cache[device]
        facts = hit[1]
        if facts is None or (tenant is not None and facts.tenant_id != tenant):
            return None
        return facts

    def warm(self, device_ids: Iterable[int]) -> None:
        """Look up the devices not known or known longer than ``ttl_s``."""
        now, cache, ttl = time.monotonic(), self._cache, self.ttl_s
        stale = [d for d in device_ids if (hit := cache.get(d)) is None or now - hit[0] > ttl]
        for i in range(0, len(stale), WARM_CHUNK):
            self._load(stale[i : i + WARM_CHUNK])

    def _load(self, device_ids: list[int]) -> None:
        """Look devices up (two queries for all) into the cache; a device that is no lamp, or
        is gone, is cached as None."""
        wanted = devices.c.id.in_(device_ids)
        q = (
            select(
                devices.c.id,
                devices.c.kind,
                devices.c.owner_id,
                devices.c.pole_id,
                poles.c.lat,
                poles.c.lon,
                poles.c.road,
                poles.c.district,
            )
            .select_from(devices.outerjoin(poles, poles.c.id == devices.c.pole_id))
            .where(wanted, devices.c.kind == DeviceKind.LAMP.value)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
            rated = read_ratings(conn, select(devices.c.id).where(wanted)) if rows else {}
        now = time.monotonic()
        zones: dict[int, str] = {}
        for device in device_ids:
            self._cache[device] = (now, None)
        for row in rows:
            ratings = rated.get(row.id, Ratings())
            if row.owner_id not in zones:
                zones[row.owner_id] = str(self.zone(row.owner_id))
            self._cache[row.id] = (
                now,
                LampFacts(
                    device_id=row.id,
                    tenant_id=row.owner_id,
                    pole_id=row.pole_id,
                    lat=row.lat if row.lat is not None else self.lat,
                    lon=row.lon if row.lon is not None else self.lon,
                    tz=zones[row.owner_id],
                    rated_w=ratings.rated_power,
                    min_w=ratings.min_power,
                    rated_life_h=ratings.rated_life,
                    road=row.road or "",
                    district=row.district or "",
                ),
            )


class LampWatch:
    """Lamp diagnostics fed by the pipeline; alarms raised from its own task.

    ``queue_batches`` bounds the batches waiting; when the task falls behind, new batches are
    dropped (counted in ``dropped``) rather than slowing ingest.
    """

    def __init__(
        self,
        alarms: Alarms | None,
        lamp_facts: LampFactsSource,
        diagnostics: LampDiagnostics | None = None,
        *,
        work_orders: WorkOrderOpener | None = None,
        queue_batches: int = 1000,
        commanded: Callable[[int, int], float | None] | None = None,
    ) -> None:
        self.alarms = alarms
        self.lamp_facts = lamp_facts
        # (device, ts) -> the level its lighting plan gives it (the lighting runtime), or None
        self.commanded = commanded
        self.diagnostics = diagnostics or LampDiagnostics()
        self.work_orders = work_orders
        self.dropped = 0
        self.raised = 0
        self._queue: asyncio.Queue[list[Reading] | None] = asyncio.Queue(queue_batches)
        self._task: asyncio.Task[None] | None = None
        self._resumed: set[int] = set()

    async def on_batch(self, batch: WriteBatch) -> None:
        """Pipeline listener: hand the batch's lamp readings to the task and return at once."""
        if self._task is None:
            return
        readings = [r for r in batch.readings if r.key in LAMP_KEYS]
        if not readings:
            return
        try:
            self._queue.put_nowait(readings)
        except asyncio.QueueFull:
            self.dropped += 1

    async def start(self) -> None:
        """Start diagnosing."""
        self._task = asyncio.create_task(self._run(), name="lamp-diagnostics")

    async def stop(self) -> None:
        """Diagnose what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None

    async def drain(self) -> None:
        """Wait until every batch queued so far is diagnosed and its alarms raised."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            readings = await self._queue.get()
            try:
                if readings is None:
                    return
                events = await asyncio.to_thread(self.process, readings)
                for event, facts in events:
                    try:
                        await self._tell(event, facts)
                    except Exception:
                        log.exception("lamp %s: %s alarm failed", event.device_id, event.diagnosis)
                        self.diagnostics.retry(event)
            except Exception:
                log.exception("lamp diagnostics of a batch failed")
            finally:
                self._queue.task_done()

    def process(self, readings: Sequence[Reading]) -> list[tuple[DiagnosisEvent, LampFacts]]:
        """Diagnose a batch (blocking): each lamp's reports in time order."""
        # meters and sensors share the lamps' keys: the facts say which devices are lamps
        self.lamp_facts.warm({r.device_id for r in readings})
        lamps: dict[int, LampFacts | None] = {}
        reports: dict[tuple[int, int], dict[str, Value]] = {}
        for r in readings:
            device_id = r.device_id
            if device_id not in lamps:
                lamps[device_id] = self.lamp_facts(None, device_id)
            if lamps[device_id] is not None:
                reports.setdefault((device_id, r.ts), {})[r.key] = r.value
        self._resume({device_id for device_id, _ in reports} - self._resumed)
        out: list[tuple[DiagnosisEvent, LampFacts]] = []
        for (device_id, ts), values in sorted(reports.items()):
            facts = lamps[device_id]
            if facts is None:  # (not reached: only lamps have reports)
                continue
            level = None if self.commanded is None else self.commanded(device_id, ts)
            out.extend((e, facts) for e in self.diagnostics.observe(facts, ts, values, level))
        return out

    def _resume(self, device_ids: set[int]) -> None:
        """Lamps seen for the first time since start: take their active diagnosis alarms
        (raised before a restart) as raised, so that they clear when the fault is gone."""
        if not device_ids or self.alarms is None:
            return
        self._resumed |= device_ids
        q = select(alarm_rows.c.originator_id, alarm_rows.c.type).where(
            alarm_rows.c.originator_type == "device",
            alarm_rows.c.originator_id.in_(sorted(device_ids)),
            alarm_rows.c.type.in_([d.value for d in DIAGNOSES]),
            alarm_rows.c.status.in_(ACTIVE),
        )
        with self.alarms.engine.connect() as conn:
            for device_id, kind in conn.execute(q):
                self.diagnostics.resume(device_id, [Diagnosis(kind)])

    async def _tell(self, event: DiagnosisEvent, facts: LampFacts) -> None:
        """Raise or clear the lamp's alarm of the diagnosis; open its work order if new."""
        if self.alarms is None:
            return
        details: dict[str, Any] = {"since": event.since, **event.details}
        if event.change == "cleared":
            await self.alarms.clear(
                originator_type="device",
                originator_id=event.device_id,
                type=event.diagnosis.value,
                details=details,
                ts=event.ts,
            )
            return
        self.raised += 1
        alarm = await self.alarms.raise_alarm(
            tenant_id=facts.tenant_id,
            originator_type="device",
            originator_id=event.device_id,
            type=event.diagnosis.value,
            severity=SEVERITY[event.diagnosis],
            details=details,
            ts=event.ts,
            pole_id=facts.pole_id,
            latch=event.diagnosis in LATCHED,
        )
        note = WORK_ORDER.get(event.diagnosis)
        if note is not None and alarm.count == 1 and self.work_orders is not None:
            await self.work_orders.open_for_alarm(alarm, None, note)

    def stats(self) -> dict[str, Any]:
        """What the diagnostics hold and have done."""
        return {
            "lamps": len(self.diagnostics.lamps),
            "raised": self.raised,
            "dropped_batches": self.dropped,
            "queued": self._queue.qsize(),
        }
