"""The anomaly detector on the pipeline: committed readings scored, ``anomaly`` alarms raised.

The detector (``detector.py``: seasonal baselines per series, pure logic) runs in a thread of
the platform, or with ``anomaly_worker = true`` in a process of its own
(``anomaly_worker.py``), so that scoring uses another core than ingest. Either way the
pipeline listener only enqueues the committed batch and alarms are raised from the service's
own task, never from the pipeline's writer.

The baselines are saved to ``hub_snapshots`` every few minutes and at stop, and loaded at
start, so a restart does not relearn from zero.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from smartpole.child import Child, ChildStatus
from smartpole.hub.alarms.store import Alarms
from smartpole.hub.analytics.anomaly_worker import Dump, Scores, Scoring, Seed, anomaly_worker
from smartpole.hub.analytics.detector import SERIES_BYTES, AnomalyEvent, Detector, score
from smartpole.hub.analytics.tables import hub_snapshots
from smartpole.model.clock import now_ms
from smartpole.model.columns import Columns
from smartpole.model.lifecycle import Severity
from smartpole.model.types import DeviceKind, Reading
from smartpole.model.writes import WriteBatch
from smartpole.store.schema import devices

__all__ = ["AnomalyService"]

log = logging.getLogger(__name__)
WORKER_BATCHES = 16  # queued batches sent to the worker in one message at most

_Device = tuple[DeviceKind, int, int | None]  # kind, owner tenant, pole


class AnomalyService:
    """The detector on the pipeline: enqueue committed batches, score them, raise alarms.

    ``queue_batches`` bounds the batches waiting to be scored; when the detector falls behind,
    new batches are dropped (and counted in ``dropped``) rather than slowing ingest.
    """

    def __init__(
        self,
        engine: Engine,
        alarms: Alarms | None,
        detector: Detector | None = None,
        *,
        node: str = "local",
        queue_batches: int = 1000,
        worker: bool = False,
        on_worker_restart: Callable[[], None] = lambda: None,
    ) -> None:
        self.engine = engine
        self.alarms = alarms
        self.detector = detector or Detector()
        self.snapshot_name = f"anomaly:{node}"[:128]
        self.dropped = 0
        self.raised = 0
        self._queue: asyncio.Queue[list[Reading] | None] = asyncio.Queue(queue_batches)
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()  # one thread at a time in the detector
        self._devices: dict[int, _Device] = {}
        self._anomalous: dict[int, dict[str, AnomalyEvent]] = {}
        # with a worker: the baselines last saved or loaded (a new worker starts from them)
        # and the detector's size as of its last answer
        self._baseline: bytes | None = None
        self._sizes = (0, 0, 0)  # series, scored, evicted
        self._worker: Child | None = None
        if worker:
            self._worker = anomaly_worker(self._seed, on_worker_restart)

    @property
    def queued(self) -> int:
        """Committed batches waiting to be scored."""
        return self._queue.qsize()

    async def on_batch(self, batch: WriteBatch) -> None:
        """Pipeline listener: hand the batch to the detector's task and return at once."""
        if self._task is None or not batch.readings:
            return
        try:
            self._queue.put_nowait(batch.readings)
        except asyncio.QueueFull:
            self.dropped += 1

    async def start(self) -> None:
        """Load the last snapshot and start scoring."""
        loaded = await asyncio.to_thread(self.restore)
        if loaded:
            log.info("anomaly baselines restored for %d series", loaded)
        if self._worker is not None:
            await self._worker.start()
        self._task = asyncio.create_task(self._run(), name="anomaly-detector")

    async def stop(self) -> None:
        """Score what is queued, stop, and save the baselines."""
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None
        await self._save()
        if self._worker is not None:
            await self._worker.stop()

    async def drain(self) -> None:
        """Wait until every batch queued so far is scored and its alarms raised."""
        await self._queue.join()

    async def _run(self) -> None:
        queue = self._queue
        while True:
            batches = [await queue.get()]
            if self._worker is not None:  # what queued while the worker was busy goes at once
                while len(batches) < WORKER_BATCHES and not queue.empty():
                    batches.append(queue.get_nowait())
            stop = batches[-1] is None
            readings = [b for b in batches if b is not None]
            try:
                if readings:
                    await self._score(readings)
            except Exception:
                log.exception("anomaly detection of a batch failed")
            finally:
                for _ in batches:
                    queue.task_done()
            if stop:
                return

    async def _score(self, batches: list[list[Reading]]) -> None:
        """Score committed batches here or in the worker; raise and clear alarms."""
        if self._worker is None:
            for readings in batches:
                for event, device in await asyncio.to_thread(self.process, readings):
                    await self._tell(event, device)
            return
        ids = {r.device_id for rs in batches for r in rs}
        fresh, known = await asyncio.to_thread(self._known, ids)
        columns = Columns()
        for readings in batches:
            columns.add(readings)
        reply = await self._worker.call(Scoring({i: known[i][0] for i in fresh}, columns))
        assert isinstance(reply, Scores)
        self._sizes = (reply.series, reply.scored, reply.evicted)
        for event in reply.events:
            await self._tell(event, known[event.device_id])

    def process(self, readings: Sequence[Reading]) -> list[tuple[AnomalyEvent, _Device]]:
        """Score and learn a batch in this process (blocking); return the series that changed
        state, each with its device's (kind, owner, pole), looked up now: the cache may be
        emptied by a snapshot before the alarm is raised."""
        with self._lock:
            ids = {r.device_id for r in readings}
            self._lookup(ids - self._devices.keys())
            devs = self._devices
            kinds = {i: devs[i][0] for i in ids if i in devs}
            return [(e, devs[e.device_id]) for e in score(self.detector, kinds, readings)]

    def _known(self, ids: set[int]) -> tuple[set[int], dict[int, _Device]]:
        """The devices among ``ids`` looked up now (the worker was not told their kind) and
        every one of them that exists."""
        with self._lock:
            fresh = self._lookup(ids - self._devices.keys())
            devs = self._devices
            return fresh, {i: devs[i] for i in ids if i in devs}

    def _seed(self) -> Seed:
        """What a (new) worker starts from: the settings, the baselines last saved or loaded,
        the kinds of the devices known."""
        with self._lock:
            kinds = {i: d[0] for i, d in self._devices.items()}
        return Seed(self.detector, self._baseline, kinds)

    def _lookup(self, device_ids: set[int]) -> set[int]:
        """Look devices up into the cache (the caller holds the lock); return those found."""
        if not device_ids:
            return set()
        found: set[int] = set()
        q = select(devices.c.id, devices.c.kind, devices.c.owner_id, devices.c.pole_id).where(
            devices.c.id.in_(sorted(device_ids))
        )
        with self.engine.connect() as conn:
            for device_id, kind, owner, pole in conn.execute(q):
                self._devices[device_id] = (DeviceKind(kind), owner, pole)
                found.add(device_id)
        return found

    async def _tell(self, event: AnomalyEvent, dev: _Device) -> None:
        """Raise or clear the device's ``anomaly`` alarm for a series that changed state."""
        keys = self._anomalous.setdefault(event.device_id, {})
        if event.change == "raised":
            keys[event.key] = event
        else:
            keys.pop(event.key, None)
        if self.alarms is None:
            return
        if event.change == "raised":
            self.raised += 1
            await self.alarms.raise_alarm(
                tenant_id=dev[1],
                originator_type="device",
                originator_id=event.device_id,
                type="anomaly",
                severity=Severity.MINOR,
                details={
                    "key": event.key,
                    "value": event.value,
                    "expected": round(event.expected, 3),
                    "score": round(event.score, 2),
                    "keys": sorted(keys),
                },
                ts=event.ts,
                pole_id=dev[2],
            )
        elif not keys:
            del self._anomalous[event.device_id]
            await self.alarms.clear(
                originator_type="device",
                originator_id=event.device_id,
                type="anomaly",
                details={
                    "key": event.key,
                    "value": event.value,
                    "expected": round(event.expected, 3),
                    "score": round(event.score, 2),
                    "keys": [],
                },
                ts=event.ts,
            )

    # -- snapshot ---------------------------------------------------------------------------
    async def snapshot(self) -> None:
        """Save the baselines (the platform runs this every ``anomaly_snapshot_s``)."""
        if self._task is not None:  # nothing learned before start: keep the stored snapshot
            await self._save()

    async def _save(self) -> None:
        if self._worker is None:
            await asyncio.to_thread(self.save)
            return
        data = await self._worker.call(Dump())
        assert isinstance(data, bytes)
        await asyncio.to_thread(self._write, data)
        self._baseline = data

    def save(self) -> int:
        """Write this process's baselines to ``hub_snapshots``; return the bytes written."""
        with self._lock:
            data = self.detector.dump()
        return self._write(data)

    def _write(self, data: bytes) -> int:
        with self._lock:
            # Device owners and kinds may change: look them up afresh after a snapshot.
            self._devices.clear()
        with self.engine.begin() as conn:
            conn.execute(delete(hub_snapshots).where(hub_snapshots.c.name == self.snapshot_name))
            conn.execute(
                insert(hub_snapshots).values(name=self.snapshot_name, data=data, updated=now_ms())
            )
        return len(data)

    def restore(self) -> int:
        """Load the baselines of the last snapshot, if any; return the series loaded (with a
        worker, the worker loads them as it starts)."""
        q = select(hub_snapshots.c.data).where(hub_snapshots.c.name == self.snapshot_name)
        with self.engine.connect() as conn:
            data = conn.execute(q).scalar()
        if data is None:
            return 0
        detector = self.detector
        with self._lock:
            try:
                n = detector.load(bytes(data))
            except (ValueError, zlib.error, struct.error) as err:
                log.warning("anomaly snapshot unreadable (%s); learning from zero", err)
                return 0
            for device_id, key in detector.flagged():
                self._anomalous.setdefault(device_id, {})[key] = AnomalyEvent(
                    "raised", device_id, key, 0, 0.0, 0.0, 0.0
                )
            if self._worker is not None:
                # read here only to check it and to know which series are anomalous: the
                # worker keeps the baselines
                detector.series.clear()
                self._baseline = bytes(data)
                self._sizes = (n, 0, 0)
            return n

    def worker_status(self) -> ChildStatus | None:
        """The detector's worker process (``None``: it scores in this process)."""
        return None if self._worker is None else self._worker.status()

    def stats(self) -> dict[str, Any]:
        """What the detector holds and has done, for the API and the logs."""
        d = self.detector
        series, scored, evicted = (
            (len(d), d.scored, d.evicted) if self._worker is None else self._sizes
        )
        return {
            "series": series,
            "max_series": d.max_series,
            "bytes_per_series": SERIES_BYTES,
            "scored": scored,
            "evicted": evicted,
            "raised": self.raised,
            "dropped_batches": self.dropped,
            "anomalous_devices": len(self._anomalous),
            "threshold": d.threshold,
            "day_weight": d.day_weight,
            "consecutive": d.consecutive,
        }
