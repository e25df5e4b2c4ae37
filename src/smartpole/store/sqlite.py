"""The embedded engine's write path: one sqlite3 connection, one transaction per batch."""

from __future__ import annotations

import logging
import operator
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from smartpole.model.writes import WriteBatch
from smartpole.store.database import Database
from smartpole.store.derived import Journal
from smartpole.store.series import SeriesStore
from smartpole.store.values import quarantine_rows

log = logging.getLogger(__name__)

__all__ = ["SqliteSeries"]

SERIES_ORDER = operator.itemgetter(0, 1, 2)  # device_id, key, ts
INSERT_READING = (
    "INSERT OR IGNORE INTO readings (device_id, key, ts, vtype, num, txt) VALUES (?,?,?,?,?,?)"
)
UPSERT_LATEST = (
    "INSERT INTO latest (device_id, key, ts, vtype, num, txt) VALUES (?,?,?,?,?,?)"
    " ON CONFLICT (device_id, key) DO UPDATE SET ts = excluded.ts, vtype = excluded.vtype,"
    " num = excluded.num, txt = excluded.txt WHERE excluded.ts > latest.ts"
)
ADD_ROLLUP = (
    "INSERT INTO rollups (device_id, key, hour, cnt, sum, min, max) VALUES (?,?,?,?,?,?,?)"
    " ON CONFLICT (device_id, key, hour) DO UPDATE SET cnt = cnt + excluded.cnt,"
    " sum = sum + excluded.sum, min = MIN(min, excluded.min), max = MAX(max, excluded.max)"
)
TOUCH_DEVICE = (
    "UPDATE devices SET last_seen = ? WHERE id = ? AND (last_seen IS NULL OR last_seen < ?)"
)
INSERT_QUARANTINE = (
    "INSERT INTO quarantine (device_id, key, ts, value, quality, reason, received)"
    " VALUES (?,?,?,?,?,?,?)"
)


MARK = "INSERT INTO derived_pending (node, min_ts, max_ts, journal) VALUES (?,?,?,?)"
# Reading a journal back costs no round trip here: the caller skips those it knows.
TAKE_MARKS = "DELETE FROM derived_pending WHERE node = ? RETURNING id, min_ts, journal"
# SQLite takes the bare columns of a MAX() aggregate from the row holding the maximum.
RECOVER_LATEST = (
    "INSERT INTO latest (device_id, key, ts, vtype, num, txt)"
    " SELECT device_id, key, MAX(ts), vtype, num, txt FROM readings WHERE ts >= ?"
    " GROUP BY device_id, key"
    " ON CONFLICT (device_id, key) DO UPDATE SET ts = excluded.ts, vtype = excluded.vtype,"
    " num = excluded.num, txt = excluded.txt WHERE excluded.ts > latest.ts"
)


def _first_of_each(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows without repeats of a (device, key, ts), the first of each kept."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for row in rows:
        series = row[:3]
        if series not in seen:
            seen.add(series)
            out.append(row)
    return out


class SqliteSeries(SeriesStore):
    """Time series in the embedded SQLite file (WAL, readings clustered by device, key, ts)."""

    def __init__(self, db: Database, default_retention_days: int = 0, **kwargs: Any) -> None:
        super().__init__(db, default_retention_days, **kwargs)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self.db.engine.raw_connection()
        return self._conn.driver_connection  # type: ignore[no-any-return]

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        conn = self._connection()
        cur = conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            yield cur
            cur.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        finally:
            cur.close()

    def _commit_readings(
        self, rows: list[tuple[Any, ...]], batch: WriteBatch
    ) -> tuple[int, Journal | None]:
        inserted, journal = 0, None
        with self._transaction() as cur:
            if rows:
                cur.execute("SAVEPOINT batch")
                # in primary-key order, consecutive inserts land on the same B-tree pages (10-25 %
                # faster); the sort is stable, so of duplicates in a batch the first still wins
                cur.executemany(INSERT_READING, sorted(rows, key=SERIES_ORDER))
                new = rows
                if cur.rowcount < len(rows):
                    # Some repeat within the batch (a device sent one reading twice, two
                    # uploads of one instant met in a batch) or were stored already (a
                    # retransmission): only the new count in the rollups (a recount of every
                    # hour the batch touched cost more). The repeats are dropped first, the
                    # first of each kept; if some are still not new, row by row.
                    cur.execute("ROLLBACK TO batch")
                    new = _first_of_each(rows)
                    cur.executemany(INSERT_READING, sorted(new, key=SERIES_ORDER))
                    if cur.rowcount < len(new):
                        cur.execute("ROLLBACK TO batch")
                        new = []
                        for row in rows:
                            cur.execute(INSERT_READING, row)
                            if cur.rowcount:
                                new.append(row)
                cur.execute("RELEASE batch")
                inserted = len(new)
                if new:
                    journal = self._journal(new)
                    cur.execute(MARK, (self.node, journal.min_ts, journal.max_ts, journal.blob))
                    assert cur.lastrowid is not None
                    journal.mark = cur.lastrowid
            if batch.quarantined:
                cur.executemany(INSERT_QUARANTINE, quarantine_rows(batch))
            if batch.seen:
                cur.executemany(TOUCH_DEVICE, [(t, d, t) for d, t in batch.seen.items()])
        return inserted, journal

    def _take_marks(
        self, cur: Any, node: str, known: list[int]
    ) -> list[tuple[int, int, bytes | None]]:
        return [(mark, min_ts, blob) for mark, min_ts, blob in cur.execute(TAKE_MARKS, (node,))]

    def _apply_derived(
        self,
        cur: Any,
        latest: list[tuple[Any, ...]],
        rollups: list[tuple[Any, ...]],
        since: int | None,
    ) -> None:
        cur.executemany(UPSERT_LATEST, latest)
        cur.executemany(ADD_ROLLUP, rollups)
        if since is not None:
            cur.execute(RECOVER_LATEST, (since,))
