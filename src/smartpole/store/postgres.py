"""The PostgreSQL engine's write path: COPY into a staging table, one transaction per batch.

Readings are partitioned by month of ``ts``; a partition is created the first time a batch
needs it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg

from smartpole.store.database import Database
from smartpole.store.series import HOUR_MS, SeriesStore, WriteBatch

log = logging.getLogger(__name__)

__all__ = ["PostgresSeries", "month_bounds"]

STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS stage (device_id integer, key text, ts bigint,"
    " vtype smallint, num double precision, txt text, seq integer) ON COMMIT DELETE ROWS"
)
# Of duplicates inside one batch the first wins: ``seq`` is the row's place in the batch.
INSERT_STAGED = """
INSERT INTO readings (device_id, key, ts, vtype, num, txt)
SELECT DISTINCT ON (device_id, key, ts) device_id, key, ts, vtype, num, txt FROM stage
ORDER BY device_id, key, ts, seq
ON CONFLICT DO NOTHING
RETURNING device_id, key, ts, vtype, num, txt
"""
# Binary COPY: no text formatting of numbers here, no parsing in the server.
READING_TYPES = ["int4", "text", "int8", "int2", "float8", "text"]
MARK = "INSERT INTO derived_pending (node, min_ts, max_ts) VALUES (%s, %s, %s) RETURNING id"
UNMARK = "DELETE FROM derived_pending WHERE node = %s AND id <= %s"
UPSERT_LATEST = """
INSERT INTO latest AS l (device_id, key, ts, vtype, num, txt)
SELECT * FROM unnest(%s::int[], %s::text[], %s::bigint[], %s::smallint[], %s::float8[],
                     %s::text[])
ON CONFLICT (device_id, key) DO UPDATE SET ts = excluded.ts, vtype = excluded.vtype,
    num = excluded.num, txt = excluded.txt WHERE excluded.ts > l.ts
"""
ADD_ROLLUPS = """
INSERT INTO rollups AS r (device_id, key, hour, cnt, sum, min, max)
SELECT * FROM unnest(%s::int[], %s::text[], %s::bigint[], %s::bigint[], %s::float8[],
                     %s::float8[], %s::float8[])
ON CONFLICT (device_id, key, hour) DO UPDATE SET cnt = r.cnt + excluded.cnt,
    sum = r.sum + excluded.sum, min = least(r.min, excluded.min),
    max = greatest(r.max, excluded.max)
"""
RECOVER_ROLLUPS = """
INSERT INTO rollups AS r (device_id, key, hour, cnt, sum, min, max)
SELECT device_id, key, ts - ts %% 3600000, count(*), sum(num), min(num), max(num)
FROM readings WHERE ts >= %s AND ts < %s AND vtype <= 1 GROUP BY 1, 2, 3
ON CONFLICT (device_id, key, hour) DO UPDATE SET cnt = excluded.cnt, sum = excluded.sum,
    min = excluded.min, max = excluded.max
"""
RECOVER_LATEST = """
INSERT INTO latest AS l (device_id, key, ts, vtype, num, txt)
SELECT DISTINCT ON (device_id, key) device_id, key, ts, vtype, num, txt FROM readings
WHERE ts >= %s ORDER BY device_id, key, ts DESC
ON CONFLICT (device_id, key) DO UPDATE SET ts = excluded.ts, vtype = excluded.vtype,
    num = excluded.num, txt = excluded.txt WHERE excluded.ts > l.ts
"""
TOUCH = (
    "UPDATE devices SET last_seen = v.t FROM unnest(%s::int[], %s::bigint[]) AS v(d, t)"
    " WHERE devices.id = v.d AND (devices.last_seen IS NULL OR devices.last_seen < v.t)"
)
QUARANTINE = (
    "INSERT INTO quarantine (device_id, key, ts, value, quality, reason, received)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s)"
)


def month_bounds(ts: int) -> tuple[str, int, int]:
    """Partition name and ``[lo, hi)`` in ms of the calendar month (UTC) holding ``ts``."""
    d = datetime.fromtimestamp(ts / 1000, UTC)
    lo = datetime(d.year, d.month, 1, tzinfo=UTC)
    hi = datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=UTC)
    return (
        f"readings_{d.year:04d}{d.month:02d}",
        int(lo.timestamp() * 1000),
        int(hi.timestamp() * 1000),
    )


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as column arrays, for ``unnest``."""
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[]] * width


class PostgresSeries(SeriesStore):
    """Time series in PostgreSQL: monthly partitions, COPY for bulk writes."""

    def __init__(self, db: Database, default_retention_days: int = 0, **kwargs: Any) -> None:
        super().__init__(db, default_retention_days, **kwargs)
        self._partitions: set[str] = set()

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self.db.engine.raw_connection()
        return self._conn.driver_connection

    def _ensure_partitions(self, first: int, last: int) -> None:
        """Create the monthly partitions from ``first`` to ``last`` (ms) not known to exist.

        The DDL runs in its own transaction, and only when a month is new to this writer.
        """
        missing = []
        ts = first
        while ts <= last:
            name, lo, hi = month_bounds(ts)
            if name not in self._partitions:
                missing.append((name, lo, hi))
            ts = hi
        if not missing:
            return
        with self._transaction() as cur:
            for name, lo, hi in missing:
                cur.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF readings"
                    f" FOR VALUES FROM ({lo}) TO ({hi})"
                )
        self._partitions.update(name for name, _, _ in missing)

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                yield cur
            conn.commit()
        except BaseException:
            try:
                conn.rollback()
            except psycopg.Error:
                pass  # the connection is gone: discarded below
            if conn.broken or conn.closed:
                # a restart, a cut network, a terminated backend: never reuse this connection
                self._discard()
            self._partitions.clear()
            raise

    def _insert(self, cur: Any, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]] | None:
        """COPY straight into the readings; a duplicate falls back to staging + ON CONFLICT.

        A duplicate inside the batch or against stored readings breaks the primary key, so the
        direct COPY fails and is rolled back to its savepoint: no need to look for them first.
        Returns None when every row was new, else the rows that were: only those may count in
        the rollups (another node may hold uncounted readings of the same hours, so recounting
        from the table could count those twice).
        """
        cur.execute("SAVEPOINT direct")
        try:
            with cur.copy(
                "COPY readings (device_id, key, ts, vtype, num, txt) FROM STDIN (FORMAT BINARY)"
            ) as c:
                c.set_types(READING_TYPES)
                for row in rows:
                    c.write_row(row)
        except psycopg.errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT direct")
        else:
            cur.execute("RELEASE SAVEPOINT direct")
            return None
        cur.execute(STAGE)
        with cur.copy(
            "COPY stage (device_id, key, ts, vtype, num, txt, seq) FROM STDIN (FORMAT BINARY)"
        ) as c:
            c.set_types([*READING_TYPES, "int4"])
            for seq, row in enumerate(rows):
                c.write_row((*row, seq))
        cur.execute(INSERT_STAGED)
        return [tuple(r) for r in cur.fetchall()]

    def _commit_readings(
        self, rows: list[tuple[Any, ...]], batch: WriteBatch
    ) -> tuple[int, int | None, list[tuple[Any, ...]] | None]:
        inserted, mark, fresh = 0, None, None
        if rows:
            stamps = [r[2] for r in rows]
            first, last = min(stamps), max(stamps)
            self._ensure_partitions(first, last)
        with self._transaction() as cur:
            if rows:
                fresh = self._insert(cur, rows)
                inserted = len(rows) if fresh is None else len(fresh)
                cur.execute(MARK, (self.node, first, last))
                mark = cur.fetchone()[0]
            if batch.quarantined:
                cur.executemany(QUARANTINE, self._quarantine_rows(batch))
            if batch.seen:
                cur.execute(TOUCH, (list(batch.seen), list(batch.seen.values())))
            self._before_commit(batch, inserted, mark, fresh)
        return inserted, mark, fresh

    def _flush_derived(
        self, latest: list[tuple[Any, ...]], rollups: list[tuple[Any, ...]], mark: int | None
    ) -> None:
        with self._transaction() as cur:
            if latest:
                cur.execute(UPSERT_LATEST, _columns(latest, 6))
            if rollups:
                cur.execute(ADD_ROLLUPS, _columns(rollups, 7))
            if mark is not None:
                cur.execute(UNMARK, (self.node, mark))

    def _recover(self) -> int:
        with self._transaction() as cur:
            cur.execute(
                "SELECT min(min_ts), max(max_ts), max(id), count(*) FROM derived_pending"
                " WHERE node = %s",
                (self.node,),
            )
            lo, hi, last, n = cur.fetchone()
            if not n:
                return 0
            cur.execute(RECOVER_ROLLUPS, (lo - lo % HOUR_MS, hi - hi % HOUR_MS + HOUR_MS))
            cur.execute(RECOVER_LATEST, (lo,))
            cur.execute(UNMARK, (self.node, last))
        log.warning("recovered latest state and rollups of %d unflushed batches", n)
        return int(n)
