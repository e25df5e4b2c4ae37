"""The embedded engine's write path: one sqlite3 connection, one transaction per batch."""

from __future__ import annotations

import logging
import operator
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from smartpole.store.database import Database
from smartpole.store.series import HOUR_MS, SeriesStore, WriteBatch

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


MARK = "INSERT INTO derived_pending (node, min_ts, max_ts) VALUES (?,?,?)"
UNMARK = "DELETE FROM derived_pending WHERE node = ? AND id <= ?"
RECOVER_ROLLUPS = (
    "INSERT OR REPLACE INTO rollups (device_id, key, hour, cnt, sum, min, max)"
    " SELECT device_id, key, ts - ts % 3600000, COUNT(*), SUM(num), MIN(num), MAX(num)"
    " FROM readings WHERE ts >= ? AND ts < ? AND vtype <= 1 GROUP BY 1, 2, 3"
)
# SQLite takes the bare columns of a MAX() aggregate from the row holding the maximum.
RECOVER_LATEST = (
    "INSERT INTO latest (device_id, key, ts, vtype, num, txt)"
    " SELECT device_id, key, MAX(ts), vtype, num, txt FROM readings WHERE ts >= ?"
    " GROUP BY device_id, key"
    " ON CONFLICT (device_id, key) DO UPDATE SET ts = excluded.ts, vtype = excluded.vtype,"
    " num = excluded.num, txt = excluded.txt WHERE excluded.ts > latest.ts"
)


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
    ) -> tuple[int, int | None, list[tuple[Any, ...]] | None]:
        inserted, mark, fresh = 0, None, None
        with self._transaction() as cur:
            if rows:
                cur.execute("SAVEPOINT batch")
                # in primary-key order, consecutive inserts land on the same B-tree pages (10-25 %
                # faster); the sort is stable, so of duplicates in a batch the first still wins
                cur.executemany(INSERT_READING, sorted(rows, key=SERIES_ORDER))
                inserted = cur.rowcount
                if inserted < len(rows):
                    # Some were stored already (a retransmission) or repeat within the batch:
                    # insert again row by row to learn which are new, so that only those count
                    # in the rollups (a recount of every hour the batch touched cost more).
                    cur.execute("ROLLBACK TO batch")
                    fresh = []
                    for row in rows:
                        cur.execute(INSERT_READING, row)
                        if cur.rowcount:
                            fresh.append(row)
                    inserted = len(fresh)
                cur.execute("RELEASE batch")
                stamps = [r[2] for r in rows]
                cur.execute(MARK, (self.node, min(stamps), max(stamps)))
                mark = cur.lastrowid
            if batch.quarantined:
                cur.executemany(INSERT_QUARANTINE, self._quarantine_rows(batch))
            if batch.seen:
                cur.executemany(TOUCH_DEVICE, [(t, d, t) for d, t in batch.seen.items()])
            self._before_commit(batch, inserted, mark, fresh)
        return inserted, mark, fresh

    def _flush_derived(
        self, latest: list[tuple[Any, ...]], rollups: list[tuple[Any, ...]], mark: int | None
    ) -> None:
        with self._transaction() as cur:
            cur.executemany(UPSERT_LATEST, latest)
            cur.executemany(ADD_ROLLUP, rollups)
            if mark is not None:
                cur.execute(UNMARK, (self.node, mark))

    def _recover(self) -> int:
        with self._transaction() as cur:
            lo, hi, last, n = cur.execute(
                "SELECT MIN(min_ts), MAX(max_ts), MAX(id), COUNT(*) FROM derived_pending"
                " WHERE node = ?",
                (self.node,),
            ).fetchone()
            if not n:
                return 0
            cur.execute(RECOVER_ROLLUPS, (lo - lo % HOUR_MS, hi - hi % HOUR_MS + HOUR_MS))
            cur.execute(RECOVER_LATEST, (lo,))
            cur.execute(UNMARK, (self.node, last))
        log.warning("recovered latest state and rollups of %d unflushed batches", n)
        return int(n)
