"""Several writers on one database (nodes behind a broker): rollups stay exact when any of them
crashes at any time, whoever settles a mark counts it once, and month partitions are made
without a race."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from smartpole.config import Settings
from smartpole.model.clock import now_ms
from smartpole.model.types import Reading
from smartpole.model.writes import WriteBatch
from smartpole.store import Database, SeriesStore, open_series
from smartpole.store.postgres import month_bounds

BASE = 1_764_000_000_000  # 2025-11-24
HOUR = 3_600_000
DEFERRED = 10**9  # flush_ms: derived state stays in memory until asked for
DEVICES, KEYS = 8, ("power", "dim")


def crash(store: SeriesStore) -> None:
    """Lose the writer's memory without flushing, as a killed process would."""
    store.close(flush=False)


def rows(db: Database, sql: str) -> list[tuple[object, ...]]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def rollups(db: Database) -> dict[tuple[object, ...], tuple[object, ...]]:
    """What ``agg=count|sum|min|max`` over whole hours answers from."""
    return {
        (d, k, h): (c, round(s, 6), lo, hi)
        for d, k, h, c, s, lo, hi in rows(
            db, "SELECT device_id, key, hour, cnt, sum, min, max FROM rollups"
        )
    }


def recounted(db: Database) -> dict[tuple[object, ...], tuple[object, ...]]:
    """The rollups as the readings table says they must be."""
    return {
        (d, k, h): (c, round(s, 6), lo, hi)
        for d, k, h, c, s, lo, hi in rows(
            db,
            "SELECT device_id, key, (ts / 3600000) * 3600000 AS h, COUNT(*), SUM(num),"
            " MIN(num), MAX(num) FROM readings WHERE vtype <= 1 GROUP BY device_id, key, h",
        )
    }


def batch(rng: random.Random, n: int, hours: int = 3) -> WriteBatch:
    """Readings of the same few devices and hours as every other node's."""
    return WriteBatch(
        readings=[
            Reading(
                rng.randint(1, DEVICES),
                rng.choice(KEYS),
                BASE + rng.randrange(hours * HOUR),
                round(rng.uniform(0, 100), 3),
            )
            for _ in range(n)
        ]
    )


def test_a_node_restarting_while_another_holds_unflushed_batches_keeps_rollups_exact(
    database: Database,
) -> None:
    rng = random.Random(1)
    a = open_series(database, flush_ms=DEFERRED, node="a")
    b = open_series(database, flush_ms=DEFERRED, node="b")
    for _ in range(3):
        a.write(batch(rng, 200))
        b.write(batch(rng, 200))
    crash(a)  # killed: its batches are committed, its rollups only in memory
    restarted = open_series(database, flush_ms=DEFERRED, node="a")
    assert restarted.recover() == 3
    b.write(batch(rng, 200))
    b.flush()  # b's batches were committed before a's recovery ran: counted once all the same
    assert rollups(database) == recounted(database)
    assert rows(database, "SELECT COUNT(*) FROM derived_pending") == [(0,)]
    restarted.close()
    b.close()


def test_adopting_a_running_nodes_marks_counts_each_batch_once(database: Database) -> None:
    rng = random.Random(2)
    a = open_series(database, flush_ms=DEFERRED, node="a")
    a.write(batch(rng, 300))
    a.write(batch(rng, 300))
    b = open_series(database, node="b")
    assert b.recover(node="a") == 2  # as `smartpole db recover --node a` does for a dead node
    a.write(batch(rng, 300))
    a.flush()  # a still holds the adopted batches' partials: they must not count again
    assert rollups(database) == recounted(database)
    a.close()
    b.close()


def test_a_batch_its_writer_lost_track_of_is_counted_by_its_next_flush(
    database: Database,
) -> None:
    # A commit whose answer was lost (connection cut during COMMIT) may have landed: the writer
    # never learns its mark, and must neither drop those readings from the rollups nor count
    # them twice when it retries the batch.
    rng = random.Random(3)
    first, second = batch(rng, 300), batch(rng, 300)
    store = open_series(database, flush_ms=DEFERRED, node="a")
    store.write(first)
    crash(store)  # the answer is lost; the process goes on with what it knows
    store = open_series(database, node="a")
    assert store.write(first).inserted == 0  # the retry: every reading is there already
    store.write(second)
    assert rollups(database) == recounted(database)
    assert rows(database, "SELECT COUNT(*) FROM derived_pending") == [(0,)]
    store.close()


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"seed-{s}") for s in (4, 5)])
def test_rollups_stay_exact_whichever_nodes_crash_whenever(database: Database, seed: int) -> None:
    rng = random.Random(seed)
    nodes = {name: open_series(database, flush_ms=DEFERRED, node=name) for name in "abc"}
    sent: list[WriteBatch] = []

    def write(name: str) -> None:
        b = batch(rng, rng.randint(1, 80))
        if sent and rng.random() < 0.2:  # a redelivery: the broker hands it to any node
            b.readings.extend(rng.choice(sent).readings[:10])
        sent.append(b)
        nodes[name].write(b)

    def restart(name: str) -> None:
        crash(nodes[name])
        nodes[name] = open_series(database, flush_ms=DEFERRED, node=name)
        nodes[name].recover()

    def adopt(name: str) -> None:
        nodes[name].recover(node=rng.choice([n for n in nodes if n != name]))

    actions: list[Callable[[str], None]] = [write] * 6 + [lambda n: nodes[n].flush(), restart]
    actions.append(adopt)
    for _ in range(60):
        rng.choice(actions)(rng.choice(sorted(nodes)))
    for store in nodes.values():
        store.close()
    assert rollups(database) == recounted(database)
    assert rows(database, "SELECT COUNT(*) FROM derived_pending") == [(0,)]


@pytest.mark.parametrize(
    "engine",
    [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)],
)
def test_the_upgrade_settles_marks_a_crash_left_before_it(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if engine == "sqlite":
        url = f"sqlite:///{tmp_path}/old.db"
    else:
        cluster = request.getfixturevalue("pg_cluster")
        name = f"t_{uuid.uuid4().hex[:16]}"
        url = Settings(db=cluster.create_database(name)).database_url
        request.addfinalizer(lambda: cluster.drop_database(name))
    db = Database(url)
    try:
        db.upgrade("0007")
        with db.engine.begin() as conn:
            if engine == "postgres":
                conn.execute(
                    text(
                        "CREATE TABLE readings_202511 PARTITION OF readings"
                        f" FOR VALUES FROM ({BASE - 30 * 86_400_000}) TO ({BASE + 30 * 86_400_000})"
                    )
                )
            # a node of the old version wrote two hours, flushed one, and was killed
            conn.execute(
                text(
                    "INSERT INTO readings (device_id, key, ts, vtype, num) VALUES"
                    f" (1, 'power', {BASE}, 0, 4), (1, 'power', {BASE + HOUR}, 0, 6),"
                    f" (1, 'power', {BASE + HOUR + 1}, 0, 8)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO rollups (device_id, key, hour, cnt, sum, min, max)"
                    f" VALUES (1, 'power', {BASE - BASE % HOUR}, 1, 4, 4, 4)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO derived_pending (node, min_ts, max_ts)"
                    f" VALUES ('old', {BASE + HOUR}, {BASE + HOUR + 1})"
                )
            )
        db.upgrade()
        assert rollups(db) == recounted(db)
        assert rows(db, "SELECT ts, num FROM latest") == [(BASE + HOUR + 1, 8.0)]
        assert rows(db, "SELECT COUNT(*) FROM derived_pending") == [(0,)]
    finally:
        db.dispose()


NEXT_MONTH = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a month no batch has reached yet


def wait_for(what: Callable[[], bool], seconds: float = 20.0) -> None:
    """Poll ``what`` until it holds, or fail after ``seconds``."""
    done = threading.Event()
    for _ in range(int(seconds / 0.02)):
        if what():
            return
        done.wait(0.02)
    raise AssertionError("timed out")


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_two_nodes_reaching_a_new_month_at_once_both_commit(database: Database) -> None:
    a = open_series(database, node="a")
    b = open_series(database, node="b")
    errors: list[BaseException] = []

    def first_batch_of_the_month(store: SeriesStore, device_id: int) -> None:
        try:
            store.write(WriteBatch(readings=[Reading(device_id, "power", NEXT_MONTH, 1.0)]))
        except BaseException as err:
            errors.append(err)

    # Hold the readings table so that both nodes reach the partition DDL before either runs
    # it: the widest the race can be, made certain instead of left to the scheduler.
    with database.engine.connect() as holder:
        holder.execute(text("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE"))
        threads = [
            threading.Thread(target=first_batch_of_the_month, args=(store, i))
            for i, store in enumerate((a, b), start=1)
        ]
        for t in threads:
            t.start()
        waiting = text(
            "SELECT COUNT(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )

        def both_wait() -> bool:
            # the activity view is a snapshot per transaction: take a fresh one each time
            holder.execute(text("SELECT pg_stat_clear_snapshot()"))
            return holder.execute(waiting).scalar_one() == 2

        try:
            wait_for(both_wait)
        finally:
            holder.rollback()
    for t in threads:
        t.join(30)
    assert errors == []
    assert rows(database, "SELECT device_id FROM readings ORDER BY 1") == [(1,), (2,)]
    a.close()
    b.close()


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_a_starting_node_creates_this_and_next_months_partitions(database: Database) -> None:
    store = open_series(database, node="a")
    store.recover()
    with database.engine.connect() as conn:
        names = set(
            conn.execute(
                text("SELECT relname FROM pg_class WHERE relname LIKE 'readings\\_%'")
            ).scalars()
        )
    store.close()

    this, _, hi = month_bounds(now_ms())
    assert {this, month_bounds(hi)[0]} <= names
