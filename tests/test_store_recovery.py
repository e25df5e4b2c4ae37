"""Latest state and rollups survive a crash between a batch's commit and their flush."""

from __future__ import annotations

import random

from sqlalchemy import text

from smartpole.model.types import Reading
from smartpole.model.writes import WriteBatch
from smartpole.store import Database, SeriesStore, open_series

BASE = 1_764_000_000_000
HOUR = 3_600_000


def crash(store: SeriesStore) -> None:
    """Lose the writer's memory without flushing, as a killed process would."""
    store.close(flush=False)


def table(db: Database, sql: str) -> list[tuple[object, ...]]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def fleet(seed: int, n: int = 3000) -> list[Reading]:
    rng = random.Random(seed)
    return [
        Reading(
            rng.randint(1, 20),
            rng.choice(["power", "dim"]),
            BASE + rng.randrange(5 * HOUR),
            round(rng.uniform(0, 100), 3),
        )
        for _ in range(n)
    ]


def expected_rollups(readings: list[Reading]) -> dict[tuple[object, ...], tuple[object, ...]]:
    seen: dict[tuple[int, str, int], Reading] = {}
    for r in readings:
        seen.setdefault((r.device_id, r.key, r.ts), r)
    groups: dict[tuple[object, ...], list[float]] = {}
    for r in seen.values():
        assert isinstance(r.value, float)
        groups.setdefault((r.device_id, r.key, r.ts - r.ts % HOUR), []).append(r.value)
    return {g: (len(v), round(sum(v), 6), min(v), max(v)) for g, v in groups.items()}


def rollups(db: Database) -> dict[tuple[object, ...], tuple[object, ...]]:
    return {
        (d, k, h): (c, round(s, 6), lo, hi)
        for d, k, h, c, s, lo, hi in table(
            db, "SELECT device_id, key, hour, cnt, sum, min, max FROM rollups"
        )
    }


def test_a_crash_before_the_flush_is_recovered_exactly(database: Database) -> None:
    readings = fleet(1)
    store = open_series(database, flush_ms=10**9, node="n1")
    for i in range(0, len(readings), 500):
        store.write(WriteBatch(readings=readings[i : i + 500]))
    crash(store)
    assert table(database, "SELECT COUNT(*) FROM latest") == [(0,)]
    assert table(database, "SELECT COUNT(*) FROM derived_pending") == [(6,)]

    restarted = open_series(database, flush_ms=10**9, node="n1")
    assert restarted.recover() == 6
    assert rollups(database) == expected_rollups(readings)
    newest = {}
    for r in readings:
        if r.ts > newest.get((r.device_id, r.key), (0, None))[0]:
            newest[(r.device_id, r.key)] = (r.ts, r.value)
    got = restarted.latest(list(range(1, 21)))
    assert {(d, k): v for d, keys in got.items() for k, v in keys.items()} == newest
    assert table(database, "SELECT COUNT(*) FROM derived_pending") == [(0,)]
    restarted.close()  # type: ignore[attr-defined]


def test_a_crash_after_some_flushes_is_recovered_exactly(database: Database) -> None:
    readings = fleet(2)
    store = open_series(database, flush_ms=10**9, node="n1")
    store.write(WriteBatch(readings=readings[:1000]))
    store.flush()
    store.write(WriteBatch(readings=readings[1000:2000] + readings[:50]))  # with duplicates
    store.write(WriteBatch(readings=readings[2000:]))
    crash(store)
    restarted = open_series(database, node="n1")
    restarted.recover()
    assert rollups(database) == expected_rollups(readings)
    restarted.close()  # type: ignore[attr-defined]


def test_recovery_leaves_other_nodes_marks_alone(database: Database) -> None:
    a = open_series(database, flush_ms=10**9, node="a")
    a.write(WriteBatch(readings=fleet(3, 200)))
    b = open_series(database, node="b")
    assert b.recover() == 0
    assert table(database, "SELECT node, COUNT(*) FROM derived_pending GROUP BY node") == [("a", 1)]
    a.close()  # type: ignore[attr-defined]
    b.close()  # type: ignore[attr-defined]


def test_close_flushes_what_was_gathered(database: Database) -> None:
    store = open_series(database, flush_ms=10**9)
    store.write(WriteBatch(readings=[Reading(1, "power", BASE, 5.0)]))
    store.close()  # type: ignore[attr-defined]
    assert table(database, "SELECT device_id, key, ts FROM latest") == [(1, "power", BASE)]
    assert table(database, "SELECT COUNT(*) FROM derived_pending") == [(0,)]
