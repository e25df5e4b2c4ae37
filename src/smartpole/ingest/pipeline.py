"""The ingest pipeline: a bounded queue, batches by size or age, one commit per batch.

A caller's ``submit`` returns only after its readings are committed, so transports acknowledge
(HTTP 2xx, MQTT PUBACK) only what is durable.

When the store cannot commit (the database is down or unreachable, the disk full, the file
locked: ``StoreUnavailable``), the writer keeps the batch in flight and retries it with a bounded
backoff until it commits: nothing is acknowledged before, and nothing acknowledged is lost. Its
callers stay held (MQTT devices get no PUBACK, but stay connected); ``submit`` refuses new work
at once while it lasts (HTTP answers 503), and ``outage`` says why, for readiness.

Submissions made in one turn of the event loop (every PUBLISH of one socket read, the messages of
many connections that became readable together) share one queue entry and one future: the writer
commits them in one transaction anyway, and a future per message cost more than its readings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from smartpole.errors import Overloaded, StoreUnavailable
from smartpole.metrics import Metrics
from smartpole.model.writes import WriteBatch, WriteResult
from smartpole.store.series import TimeSeries

__all__ = ["Pipeline"]

log = logging.getLogger(__name__)
Listener = Callable[[WriteBatch], Awaitable[None]]
# Backoff between attempts at a batch the store could not commit: quick for a blip, and once a
# second at most, so that ingest resumes within a second of the database's return.
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 1.0


def _retrieve(fut: asyncio.Future[WriteResult]) -> None:
    """Mark a failure as seen: whoever enqueued may not await it (MQTT QoS 0)."""
    if not fut.cancelled():
        fut.exception()


class _Shared:
    """A submission that others may join: the first batch as given, copied on the first join."""

    __slots__ = ("_batch", "_own")

    def __init__(self, batch: WriteBatch) -> None:
        self._batch = batch
        self._own = False

    def extend(self, other: WriteBatch) -> None:
        if not self._own:
            first, self._batch, self._own = self._batch, WriteBatch(), True
            self._batch.extend(first)
        self._batch.extend(other)

    def __len__(self) -> int:
        return len(self._batch)

    def batch(self) -> WriteBatch:
        return self._batch


class Pipeline:
    """Batches submissions into the store and tells listeners what was committed.

    The listeners (the hub, anomaly detection, the census) are called in order with every
    committed batch, by the writer task: a slow one holds the next commit back.
    """

    def __init__(
        self,
        store: TimeSeries,
        batch_size: int = 2000,
        batch_age_ms: int = 10,
        capacity: int = 200_000,
        metrics: Metrics | None = None,
        listeners: Iterable[Listener] = (),
    ) -> None:
        self.store = store
        self.metrics = metrics if metrics is not None else Metrics()
        self.batch_size = batch_size
        self.batch_age = batch_age_ms / 1000
        self.capacity = capacity
        self.pending = 0
        self.listeners: tuple[Listener, ...] = tuple(listeners)
        self.committed = 0
        self.batches = 0
        self._queue: asyncio.Queue[tuple[WriteBatch, asyncio.Future[WriteResult]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.outage: StoreUnavailable | None = None  # why the store cannot commit, while so
        # the submissions of this turn of the event loop, queued together at its end
        self._open: tuple[_Shared, asyncio.Future[WriteResult]] | None = None

    async def start(self) -> None:
        """Start the writer task."""
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="ingest-writer")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._task is None:
            return
        self._close()
        self._stopping = True  # in an outage, fail what is held instead of waiting for ever
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def submit(self, batch: WriteBatch) -> WriteResult:
        """Queue a batch and wait for its commit; raise Overloaded when the queue is full and
        StoreUnavailable while the store cannot commit (a caller that can hold its device
        until the store is back uses :meth:`enqueue`)."""
        if self.outage is not None:
            raise StoreUnavailable(
                f"the store cannot commit now ({self.outage.detail}); retry later",
                reason=self.outage.detail,
            )
        return await asyncio.shield(self.enqueue(batch))

    async def drain(self) -> None:
        """Wait until every batch submitted so far is committed (or failed) and the listeners
        have seen it."""
        self._close()
        await self._queue.join()  # a batch is marked done after its listeners ran

    def enqueue(self, batch: WriteBatch) -> asyncio.Future[WriteResult]:
        """Queue a batch; the future resolves at its commit. Raise Overloaded when full.

        Transports that acknowledge in order (MQTT PUBACK) chain on the future instead of
        awaiting it, so that one connection can have many batches in flight.
        """
        if self._task is None:
            raise RuntimeError("pipeline not started")
        size = len(batch)
        if self.pending + size > self.capacity:
            raise Overloaded(
                f"ingest queue full ({self.pending} readings pending); retry later",
                pending=self.pending,
            )
        self.pending += size
        self.metrics.readings_received.inc(size)
        if self._open is not None:
            merged, fut = self._open
            merged.extend(batch)
            if len(merged) >= self.batch_size:
                self._close()
            return fut
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        fut.add_done_callback(_retrieve)
        # the batch is the caller's: copy it only when a second submission joins it
        self._open = (_Shared(batch), fut)
        loop.call_soon(self._close)
        return fut

    def _close(self) -> None:
        """Queue the submissions gathered in this turn of the event loop."""
        if self._open is not None:
            merged, fut = self._open
            self._open = None
            self._queue.put_nowait((merged.batch(), fut))

    @property
    def load(self) -> float:
        """How full the queue is, from 0 to 1 (transports pause reading near 1)."""
        return self.pending / self.capacity

    async def _collect(self) -> list[tuple[WriteBatch, asyncio.Future[WriteResult]]]:
        first = await self._queue.get()
        items = [first]
        size = len(first[0])
        deadline = asyncio.get_running_loop().time() + self.batch_age
        while size < self.batch_size:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            items.append(item)
            size += len(item[0])
        return items

    async def _run(self) -> None:
        while True:
            items = await self._collect()
            if len(items) == 1:
                merged = items[0][0]
            else:
                merged = WriteBatch()
                for batch, _ in items:
                    merged.extend(batch)
            started = time.perf_counter()
            try:
                result = await self._commit(merged)
            except Exception as err:
                self.metrics.commit_failures.inc()
                log.exception("batch of %d readings failed to commit", len(merged))
                for _, fut in items:
                    if not fut.done():
                        fut.set_exception(err)
            else:
                self._count(result, time.perf_counter() - started)
                self.committed += result.inserted
                self.batches += 1
                for _, fut in items:
                    if not fut.done():
                        fut.set_result(result)
                for listener in self.listeners:
                    try:
                        await listener(merged)
                    except Exception:
                        log.exception("pipeline listener %r failed", listener)
            finally:
                self.pending -= sum(len(b) for b, _ in items)
                for _ in items:
                    self._queue.task_done()

    async def _commit(self, batch: WriteBatch) -> WriteResult:
        """Write a batch; while the store is unavailable, retry it with a bounded backoff."""
        delay = RETRY_FIRST_S
        while True:
            try:
                result = await asyncio.to_thread(self.store.write, batch)
            except StoreUnavailable as err:
                if self._stopping:
                    raise
                self.metrics.commit_retries.inc()
                if self.outage is None:
                    log.error(
                        "the store cannot commit: %s; holding %d readings, retrying",
                        err.detail,
                        self.pending,
                    )
                self.outage = err
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            except Exception:
                # the store answers again, if only with an error: no longer an outage
                self.outage = None
                raise
            if self.outage is not None:
                log.warning("the store commits again; %d readings held were written", len(batch))
                self.outage = None
            return result

    def _count(self, result: WriteResult, seconds: float) -> None:
        m = self.metrics
        m.commits.observe(seconds)
        m.readings_stored.inc(result.inserted)
        m.readings_duplicate.inc(result.duplicates)
        m.readings_quarantined.inc(result.quarantined)
