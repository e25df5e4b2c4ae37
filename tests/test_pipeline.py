"""The ingest pipeline on a real store: what is acknowledged is committed, and submissions made
together share one commit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from helpers import add_device
from smartpole.errors import Overloaded, StoreUnavailable
from smartpole.ingest.pipeline import Pipeline
from smartpole.model.types import Reading
from smartpole.model.writes import WriteBatch, WriteResult
from smartpole.store import Database, SeriesStore

T0 = 1_764_000_000_000


def batch(device_id: int, first: int, n: int = 1) -> WriteBatch:
    return WriteBatch(
        readings=[Reading(device_id, "power", T0 + first + i, first + i) for i in range(n)],
        seen={device_id: T0},
    )


def stored(series: SeriesStore, device_id: int) -> list[int]:
    series.flush()
    got = series.history(device_id, ["power"], T0, T0 + 10_000, limit=10_000)
    return [v for _, v in got.get("power", [])]  # type: ignore[misc]


async def test_submissions_of_one_turn_share_one_commit(
    database: Database, series: SeriesStore
) -> None:
    dev = add_device(database)
    seen: list[WriteBatch] = []

    async def listener(b: WriteBatch) -> None:
        seen.append(b)

    pipe = Pipeline(series, batch_size=1000, batch_age_ms=1, listeners=[listener])
    await pipe.start()
    try:
        futures = [pipe.enqueue(batch(dev, i)) for i in range(50)]  # one turn of the loop
        assert len({id(f) for f in futures}) == 1
        await asyncio.gather(*futures)
        assert pipe.batches == 1
        assert pipe.committed == 50
        assert [len(b) for b in seen] == [50]
        # a later turn is a new submission; the first batch was not changed by the second
        first = batch(dev, 100, 3)
        fut = pipe.enqueue(first)
        await asyncio.sleep(0)
        second = pipe.enqueue(batch(dev, 200, 2))
        assert fut is not second
        await asyncio.gather(fut, second)
        assert len(first) == 3
        assert stored(series, dev) == [*range(50), 100, 101, 102, 200, 201]
    finally:
        await pipe.stop()


async def test_a_full_turn_is_queued_at_the_batch_size(
    database: Database, series: SeriesStore
) -> None:
    dev = add_device(database)
    pipe = Pipeline(series, batch_size=10, batch_age_ms=1)
    await pipe.start()
    try:
        futures = [pipe.enqueue(batch(dev, i * 4, 4)) for i in range(6)]  # 24 readings
        # 4 + 4 + 4 reach 10: the first three share a future, the next three another
        assert futures[0] is futures[2]
        assert futures[3] is not futures[2]
        assert futures[3] is futures[5]
        await asyncio.gather(*futures)
        assert stored(series, dev) == list(range(24))
    finally:
        await pipe.stop()


async def test_overload_refuses_only_what_does_not_fit(
    database: Database, series: SeriesStore
) -> None:
    dev = add_device(database)
    pipe = Pipeline(series, batch_size=100, batch_age_ms=1, capacity=10)
    await pipe.start()
    try:
        accepted = [pipe.enqueue(batch(dev, 0, 6))]
        with pytest.raises(Overloaded):
            pipe.enqueue(batch(dev, 6, 6))
        accepted.append(pipe.enqueue(batch(dev, 12, 4)))
        await asyncio.gather(*accepted)
        assert stored(series, dev) == [0, 1, 2, 3, 4, 5, 12, 13, 14, 15]
        assert pipe.pending == 0
    finally:
        await pipe.stop()


async def test_stop_writes_what_was_submitted(database: Database, series: SeriesStore) -> None:
    dev = add_device(database)
    pipe = Pipeline(series, batch_size=100, batch_age_ms=1)
    await pipe.start()
    fut = pipe.enqueue(batch(dev, 0, 5))
    await pipe.stop()  # in the same turn: the open submission is written, not dropped
    assert fut.done()
    assert fut.result().inserted == 5
    assert stored(series, dev) == [0, 1, 2, 3, 4]


async def test_a_failed_commit_fails_every_submission_that_shared_it(
    database: Database, series: SeriesStore
) -> None:
    pipe = Pipeline(series, batch_size=100, batch_age_ms=1)
    await pipe.start()
    try:
        dev = add_device(database)
        good = pipe.enqueue(batch(dev, 0, 2))
        # a value the store cannot encode (no payload parser would let one through)
        unstorable = WriteBatch(readings=[Reading(dev, "blob", T0, {1, 2})])  # type: ignore[arg-type]
        bad = pipe.enqueue(unstorable)
        assert good is bad
        with pytest.raises(TypeError):
            await good
        assert stored(series, dev) == []
        assert pipe.pending == 0
        ok = pipe.enqueue(batch(dev, 5, 1))  # the pipeline goes on
        await ok
        assert stored(series, dev) == [5]
    finally:
        await pipe.stop()


class Outage:
    """The real store behind a switch: while ``down`` is set, every write raises
    StoreUnavailable before reaching it (a database restart, seen from the pipeline)."""

    def __init__(self, series: SeriesStore) -> None:
        self.series = series
        self.down = True
        self.attempts = 0
        self.refusal: Exception | None = None  # once up: what the database answers instead

    def write(self, b: WriteBatch) -> WriteResult:
        self.attempts += 1
        if self.down:
            raise StoreUnavailable("PostgreSQL unavailable: the connection is lost")
        if self.refusal is not None:
            raise self.refusal
        return self.series.write(b)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.series, name)


async def wait_for(check: Callable[[], bool]) -> None:
    for _ in range(2000):  # 20 s at most
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def test_a_batch_the_store_cannot_commit_is_held_until_it_can(
    database: Database, series: SeriesStore
) -> None:
    dev = add_device(database)
    store = Outage(series)
    pipe = Pipeline(store, batch_size=100, batch_age_ms=1)  # type: ignore[arg-type]
    await pipe.start()
    try:
        held = pipe.enqueue(batch(dev, 0, 3))
        await wait_for(lambda: store.attempts >= 3)  # retried, not failed
        assert not held.done()
        assert pipe.outage is not None
        with pytest.raises(StoreUnavailable):  # HTTP is told to come back later
            await pipe.submit(batch(dev, 10, 1))
        also_held = pipe.enqueue(batch(dev, 20, 1))  # MQTT waits with the rest
        store.down = False
        assert (await held).inserted == 3
        await also_held
        assert pipe.outage is None
        assert stored(series, dev) == [0, 1, 2, 20]
    finally:
        await pipe.stop()


async def test_stop_in_an_outage_fails_what_is_held(
    database: Database, series: SeriesStore
) -> None:
    dev = add_device(database)
    store = Outage(series)
    pipe = Pipeline(store, batch_size=100, batch_age_ms=1)  # type: ignore[arg-type]
    await pipe.start()
    held = pipe.enqueue(batch(dev, 0, 3))
    await wait_for(lambda: pipe.outage is not None)
    await pipe.stop()  # does not wait for the database for ever
    with pytest.raises(StoreUnavailable):
        held.result()  # never acknowledged: the device sends it again
    assert stored(series, dev) == []


async def test_an_outage_ends_when_the_store_answers_even_with_an_error(
    database: Database, series: SeriesStore
) -> None:
    """A held batch that then fails for another reason (a constraint, a read-only standby)
    fails alone: the node takes traffic again instead of answering 503 for ever."""
    dev = add_device(database)
    store = Outage(series)
    pipe = Pipeline(store, batch_size=100, batch_age_ms=1)  # type: ignore[arg-type]
    await pipe.start()
    try:
        held = pipe.enqueue(batch(dev, 0, 1))
        await wait_for(lambda: pipe.outage is not None)
        store.refusal = RuntimeError("cannot execute INSERT in a read-only transaction")
        store.down = False
        with pytest.raises(RuntimeError, match="read-only"):
            await held
        assert pipe.outage is None
        store.refusal = None
        assert (await pipe.submit(batch(dev, 0, 2))).inserted == 2  # HTTP is served again
    finally:
        await pipe.stop()
