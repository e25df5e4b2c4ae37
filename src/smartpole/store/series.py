"""The time-series store: one interface, reads shared by both engines.

Writes are engine-specific (``sqlite.py``, ``postgres.py``); every read here is portable SQL.
A write batch is one transaction: readings (duplicates ignored, the first one wins), latest state
(never goes back in time), exact hourly rollups, quarantined values and device last-seen.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, tzinfo
from typing import Any

import orjson
from sqlalchemy import BindParameter, bindparam, text

from smartpole.errors import StoreUnavailable
from smartpole.model.clock import now_ms
from smartpole.model.types import Quality, Value
from smartpole.model.writes import WriteBatch, WriteResult
from smartpole.store.buckets import Buckets
from smartpole.store.database import Database, store_unavailable
from smartpole.store.derived import (
    HOUR_MS,
    Journal,
    Latest,
    Partial,
    Partials,
    decode_partials,
    derive,
    encode_partials,
    merge,
)
from smartpole.store.marks import Mark, lowest, values_before
from smartpole.store.protocol import AggPoint, Aggregation, TimeSeries, Writer
from smartpole.store.values import decode_value, reading_rows

__all__ = [
    "HOUR_MS",
    "AggPoint",
    "Aggregation",
    "SeriesStore",
    "TimeSeries",
]

SERIES = operator.itemgetter(0, 1)  # device_id, key of a row
log = logging.getLogger(__name__)


@contextlib.contextmanager
def _outages() -> Iterator[None]:
    """Raise an engine error that is an outage as StoreUnavailable (retry later)."""
    try:
        yield
    except StoreUnavailable:
        raise
    except Exception as err:
        outage = store_unavailable(err)
        if outage is None:
            raise
        raise outage from err


def _finish(p: Partial, agg: Aggregation) -> float:
    if agg == "count":
        return p[0]
    if agg == "sum":
        return p[1]
    if agg == "min":
        return p[2]
    if agg == "max":
        return p[3]
    return p[1] / p[0]


class _MarksTaken(Exception):
    """Some of the marks a flush holds partials for were settled by someone else."""


class SeriesStore:
    """The write protocol and the reads shared by both engines.

    A batch commits its new readings, quarantine, last-seen and a ``derived_pending`` mark in
    one transaction; that is what acknowledgement waits for. The mark journals the batch's
    hourly partials (count, sum, min, max per device, key and hour). Latest state and rollups
    are derived data: they gather in memory and are written every ``flush_ms`` (0 = with every
    batch), and always before a read that uses them.

    One rule keeps the rollups exact with any number of nodes crashing at any time: **a mark's
    partials are added to the rollups by whoever deletes the mark, in the same transaction**.
    A flush deletes its node's marks and adds the partials it holds in memory for the marks it
    knows, folded together, plus the journalled ones of any mark it does not know (its
    process crashed, or a commit whose answer was lost landed after all). If a mark it knows
    was deleted first by someone else (another node adopting this one's marks, or a flush
    whose commit was retried), the folded totals cannot be split again: the flush settles the
    marks left from their journals instead, so nothing is counted twice.
    Nothing is ever recounted from the readings table, which may hold readings that another
    node has committed but not yet flushed.

    Engines implement ``_transaction``, ``_commit_readings`` (which stores the mark via
    :meth:`_journal`), ``_take_marks`` and ``_apply_derived``.
    """

    def __init__(
        self,
        db: Database,
        default_retention_days: int = 0,
        *,
        flush_ms: int = 0,
        node: str = "local",
        writer: Writer | None = None,
    ) -> None:
        self.db = db
        self.writer = writer  # None: this process writes
        self.default_retention_days = default_retention_days
        self.flush_ms = flush_ms
        self.node = node[:64]
        self._write_lock = threading.Lock()
        # the committed batches' derived state, folded together, and their marks' ids
        self._pending_latest: Latest = {}
        self._pending_rollups: Partials = {}
        self._pending_marks: list[int] = []
        # a batch's commit failed: it may have landed, leaving a mark only a flush settles
        self._in_doubt = False
        self._last_flush = time.monotonic()
        self._conn: Any = None  # the writer's pooled DBAPI connection (engines open it)

    def close(self, *, flush: bool = True) -> None:
        """Write what is gathered and return the writer's connection to the pool.

        ``flush=False`` leaves what is gathered unwritten, as a killed process would: the committed
        readings are safe and ``db recover`` rebuilds their latest values and rollups.
        """
        try:
            if self.writer is not None:
                self.writer.close(flush=flush)
            elif flush and (self._pending_marks or self._in_doubt):
                self.flush()
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _discard(self) -> None:
        """Drop a broken writer connection from the pool; the next write opens a new one."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()
            self._conn = None

    # -- writes ---------------------------------------------------------------------------
    def write(self, batch: WriteBatch) -> WriteResult:
        """Commit one batch's readings in one transaction (one writer at a time: this
        process's, or its writer process when it has one)."""
        rows = reading_rows(batch.readings)
        if self.writer is not None:
            rest = WriteBatch(quarantined=batch.quarantined, seen=batch.seen)
            return self.writer.write(rows, rest)
        return self.write_rows(rows, batch)

    def write_rows(self, rows: list[tuple[Any, ...]], batch: WriteBatch) -> WriteResult:
        """:meth:`write` of the batch's readings as rows (:func:`reading_rows`), in this process."""
        with self._write_lock:
            # A COMMIT whose answer was lost may have landed: its retry finds every reading a
            # duplicate and adds no journal, so the next flush must look for the landed mark
            # even when it holds no mark of its own.
            try:
                with _outages():
                    inserted, journal = self._commit_readings(rows, batch)
            except BaseException:
                self._in_doubt = True
                raise
            if journal is not None:
                self._gather(journal)
            if self.flush_ms == 0 or time.monotonic() - self._last_flush >= self.flush_ms / 1000:
                try:
                    self._flush()
                except Exception:
                    # The readings and their marks are committed; the derived state waits for
                    # the next flush (or for whoever settles the marks).
                    log.exception("flushing latest state and rollups failed; will retry")
            return WriteResult(inserted, len(rows) - inserted, len(batch.quarantined))

    @staticmethod
    def _journal(new: list[tuple[Any, ...]]) -> Journal:
        """The derived state of the rows a batch really inserted, with its journal."""
        latest: Latest = {}
        partials: Partials = {}
        derive(new, latest, partials)
        stamps = [r[2] for r in new]
        return Journal(latest, partials, min(stamps), max(stamps), encode_partials(partials))

    def _gather(self, journal: Journal) -> None:
        """Hold a committed batch's derived state until the flush settles its mark."""
        self._pending_marks.append(journal.mark)
        if not self._pending_rollups and not self._pending_latest:
            # the first batch since the flush: its own dicts become the running totals
            self._pending_latest, self._pending_rollups = journal.latest, journal.partials
            return
        pending = self._pending_latest
        for series, row in journal.latest.items():
            old = pending.get(series)
            if old is None or row[2] > old[2]:
                pending[series] = row
        totals = self._pending_rollups
        for g, p in journal.partials.items():
            q = totals.get(g)
            if q is None:
                totals[g] = p
            else:
                merge(q, *p)

    def flush(self) -> None:
        """Write the gathered latest state and rollups now (StoreUnavailable in an outage).

        A flush whose answer was lost may have landed: the next one finds its marks gone and
        settles the rest from their journals (see :meth:`_flush`), so nothing counts twice.
        """
        if self.writer is not None:
            self.writer.flush()
            return
        with self._write_lock, _outages():
            had_connection = self._conn is not None
            try:
                self._flush()
            except Exception:
                if not had_connection or self._conn is not None:
                    raise
                # the writer's connection had gone stale (a restarted server, a terminated
                # backend) and was dropped: a reader should not fail for that, try a new one
                self._flush()

    def _flush(self, force: bool = False) -> int:
        if not force and not self._pending_marks and not self._in_doubt:
            return 0
        latest = self._pending_latest
        try:
            adopted = self._settle(self.node, self._pending_marks, self._pending_rollups, latest)
        except _MarksTaken:
            # Someone settled some of the marks these totals include: the totals cannot be
            # taken apart again, so settle whatever marks are left from their journals.
            adopted = self._settle(self.node, [], {}, latest)
        self._pending_latest, self._pending_rollups = {}, {}
        self._pending_marks = []
        self._in_doubt = False
        self._last_flush = time.monotonic()
        return adopted

    def _settle(self, node: str, known: list[int], totals: Partials, latest: Latest) -> int:
        """Delete ``node``'s marks and add their partials to the rollups, in one transaction.

        ``totals`` are the partials of the ``known`` marks, which this writer committed, and
        ``latest`` their newest rows; any other mark is settled from its journal (and its
        readings' latest state from the readings table). Raises :class:`_MarksTaken`,
        changing nothing, when a known mark was settled by someone else. Returns how many
        marks were settled from their journal.
        """
        with self._transaction() as cur:
            taken = self._take_marks(cur, node, known)
            mine = set(known)
            if len(mine) > sum(1 for mark, _, _ in taken if mark in mine):
                raise _MarksTaken
            since: int | None = None
            adopted = [(min_ts, blob) for mark, min_ts, blob in taken if mark not in mine]
            if adopted:
                totals = {g: list(p) for g, p in totals.items()}  # a retry reuses the original
                for min_ts, blob in adopted:
                    assert blob is not None
                    decode_partials(blob, totals)
                    since = min_ts if since is None else min(since, min_ts)
            # sorted, so that two nodes updating the same rows take their locks in one order
            rollups = sorted((*g, int(p[0]), p[1], p[2], p[3]) for g, p in totals.items())
            self._apply_derived(cur, sorted(latest.values(), key=SERIES), rollups, since)
        if adopted:
            log.warning(
                "settled %d unflushed batches of node %r from their journal", len(adopted), node
            )
        return len(adopted)

    def recover(self, node: str | None = None) -> int:
        """Settle the marks a crash left unflushed; return how many were settled.

        Without ``node``, this node's own (what a starting node does; the engine also readies
        itself, e.g. PostgreSQL creates this and next month's partitions). With ``node``,
        another node's: its marks are adopted, which is exact even if that node is still
        running (whoever deletes a mark counts it).
        """
        if self.writer is not None and (node is None or node[:64] == self.node):
            return self.writer.recover()
        with self._write_lock, _outages():
            if node is None or node == self.node:
                self._prepare()
                return self._flush(force=True)
            return self._settle(node[:64], [], {}, {})

    def unsettled(self) -> dict[str, int]:
        """Per node, how many committed batches wait for their derived state to be written.

        A running node's count stays small (it settles its marks every flush); a node that is
        gone for good keeps its count until another adopts its marks (:meth:`recover`).
        """
        with self.db.engine.connect() as conn:
            sql = text("SELECT node, COUNT(*) FROM derived_pending GROUP BY node ORDER BY node")
            return {node: n for node, n in conn.execute(sql)}

    def _prepare(self) -> None:
        """Ready the engine for a starting node (nothing by default)."""

    def _transaction(self) -> AbstractContextManager[Any]:
        """A cursor in one transaction of the writer's connection: committed, or rolled back."""
        raise NotImplementedError

    def _commit_readings(
        self, rows: list[tuple[Any, ...]], batch: WriteBatch
    ) -> tuple[int, Journal | None]:
        """Commit the rows, with a mark journalling the new ones (:meth:`_journal`), in one
        transaction; return how many were new and their journal (None if none were)."""
        raise NotImplementedError

    def _take_marks(
        self, cur: Any, node: str, known: list[int]
    ) -> list[tuple[int, int, bytes | None]]:
        """Delete ``node``'s marks; return ``(id, min_ts, journal)`` of each deleted (the
        journal may be None for the ``known`` ids, whose partials the caller holds)."""
        raise NotImplementedError

    def _apply_derived(
        self,
        cur: Any,
        latest: list[tuple[Any, ...]],
        rollups: list[tuple[Any, ...]],
        since: int | None,
    ) -> None:
        """Upsert latest rows (newer wins), add rollup partials, and when ``since`` is given
        recompute latest state from the readings from ``since`` on (newer wins: idempotent)."""
        raise NotImplementedError

    # -- reads ----------------------------------------------------------------------------
    def _ids(self, device_ids: Sequence[int], column: str = "device_id") -> tuple[str, Any]:
        """``column`` membership in ``device_ids`` as one bound parameter (10,000 ids, one
        round trip)."""
        if self.db.dialect == "sqlite":
            return f"{column} IN (SELECT value FROM json_each(:ids))", orjson.dumps(
                list(device_ids)
            ).decode()
        return f"{column} = ANY(:ids)", list(device_ids)

    def having(
        self,
        device_ids: Sequence[int],
        keys: Sequence[str],
        start: int,
        end: int,
        *,
        rolled_up: bool = False,
    ) -> set[int]:
        """The devices with a raw reading of one of ``keys`` in ``[start, end)`` (``rolled_up``:
        or an hourly rollup of one, kept past the raw readings' retention): an index seek
        each, whatever the window holds."""
        if not device_ids or not keys:
            return set()
        member, ids = self._ids(device_ids, "d.id")
        rollups = (
            " OR EXISTS (SELECT 1 FROM rollups u WHERE u.device_id = d.id AND u.key IN :keys"
            f" AND u.hour > :s - {HOUR_MS} AND u.hour < :e)"
            if rolled_up
            else ""
        )
        sql = text(
            f"SELECT d.id FROM devices d WHERE {member} AND (EXISTS (SELECT 1 FROM readings r"
            f" WHERE r.device_id = d.id AND r.key IN :keys AND r.ts >= :s AND r.ts < :e){rollups})"
        ).bindparams(bindparam("keys", expanding=True))
        params = {"ids": ids, "keys": list(keys), "s": start, "e": end}
        with self.db.engine.connect() as conn:
            return {row[0] for row in conn.execute(sql, params)}

    def latest(
        self, device_ids: Sequence[int], keys: Sequence[str] | None = None
    ) -> dict[int, dict[str, tuple[int, Value]]]:
        """Newest ``(ts, value)`` per device and key."""
        out: dict[int, dict[str, tuple[int, Value]]] = defaultdict(dict)
        if not device_ids:
            return {}
        self.flush()
        member, ids = self._ids(device_ids)
        sql = f"SELECT device_id, key, ts, vtype, num, txt FROM latest WHERE {member}"
        params: dict[str, Any] = {"ids": ids}
        binds: list[BindParameter[Any]] = []
        if keys:
            sql += " AND key IN :keys"
            params["keys"] = list(keys)
            binds.append(bindparam("keys", expanding=True))
        with self.db.engine.connect() as conn:
            # fetchall: one call instead of a fetch per row (half the time at 20,000 rows)
            rows = conn.execute(text(sql).bindparams(*binds), params).all()
        for device_id, key, ts, vtype, num, txt in rows:
            out[device_id][key] = (ts, decode_value(vtype, num, txt))
        return dict(out)

    def previous(
        self, device_ids: Sequence[int], keys: Sequence[str]
    ) -> dict[int, dict[str, tuple[int, Value]]]:
        """Per device and key, the newest ``(ts, value)`` older than the newest: what a late
        reading's time saw of a key whose newest value is younger than it (the hub's rules)."""
        out: dict[int, dict[str, tuple[int, Value]]] = defaultdict(dict)
        if not device_ids or not keys:
            return {}
        self.flush()
        member, ids = self._ids(device_ids)
        sql = text(
            "SELECT l.device_id, l.key, r.ts, r.vtype, r.num, r.txt FROM latest l"
            " JOIN readings r ON r.device_id = l.device_id AND r.key = l.key"
            " AND r.ts = (SELECT max(p.ts) FROM readings p"
            " WHERE p.device_id = l.device_id AND p.key = l.key AND p.ts < l.ts)"
            f" WHERE l.{member} AND l.key IN :keys"
        ).bindparams(bindparam("keys", expanding=True))
        with self.db.engine.connect() as conn:
            rows = conn.execute(sql, {"ids": ids, "keys": list(keys)}).all()
        for device_id, key, ts, vtype, num, txt in rows:
            out[device_id][key] = (ts, decode_value(vtype, num, txt))
        return dict(out)

    def history(
        self, device_id: int, keys: Sequence[str], start: int, end: int, limit: int = 1000
    ) -> dict[str, list[tuple[int, Value]]]:
        """Raw readings in ``[start, end)``, oldest first, at most ``limit`` per key."""
        out: dict[str, list[tuple[int, Value]]] = {}
        sql = text(
            "SELECT ts, vtype, num, txt FROM readings WHERE device_id = :d AND key = :k"
            " AND ts >= :s AND ts < :e ORDER BY ts LIMIT :n"
        )
        with self.db.engine.connect() as conn:
            for key in keys:
                rows = conn.execute(
                    sql, {"d": device_id, "k": key, "s": start, "e": end, "n": limit}
                )
                out[key] = [(ts, decode_value(vt, num, txt)) for ts, vt, num, txt in rows]
        return out

    def recent(
        self, device_ids: Sequence[int], keys: Sequence[str], start: int, end: int, n: int
    ) -> dict[int, dict[str, list[tuple[int, Value]]]]:
        """Per device and key, the newest ``n`` raw readings in ``[start, end)``, oldest first:
        one query for every device (a window function), not one per device and key."""
        out: dict[int, dict[str, list[tuple[int, Value]]]] = defaultdict(dict)
        if not device_ids or not keys or n <= 0:
            return {}
        self.flush()
        member, ids = self._ids(device_ids)
        sql = text(
            "SELECT device_id, key, ts, vtype, num, txt FROM ("
            " SELECT device_id, key, ts, vtype, num, txt, ROW_NUMBER() OVER"
            " (PARTITION BY device_id, key ORDER BY ts DESC) AS rn FROM readings"
            f" WHERE {member} AND key IN :keys AND ts >= :s AND ts < :e) AS newest"
            " WHERE rn <= :n ORDER BY device_id, key, ts"
        ).bindparams(bindparam("keys", expanding=True))
        params = {"ids": ids, "keys": list(keys), "s": start, "e": end, "n": n}
        with self.db.engine.connect() as conn:
            rows = conn.execute(sql, params).all()
        for device_id, key, ts, vtype, num, txt in rows:
            out[device_id].setdefault(key, []).append((ts, decode_value(vtype, num, txt)))
        return dict(out)

    def aggregate(
        self,
        device_ids: Sequence[int],
        keys: Sequence[str],
        start: int,
        end: int,
        interval: int,
        agg: Aggregation,
        per_device: bool = True,
        zone: tzinfo = UTC,
    ) -> dict[int, dict[str, list[AggPoint]]]:
        """Aggregate numeric readings in ``[start, end)`` into buckets aligned to the clock
        (days at midnight in ``zone``; see :mod:`smartpole.store.buckets`), labelled by their
        start.

        Whole hours come from the rollups when every bucket boundary is on a whole hour; the
        cut hours at either end of the window are scanned raw. With ``per_device=False`` the
        fleet total is under id 0. InvalidInput for intervals :class:`Buckets` refuses.
        """
        if interval <= 0 or end <= start:
            return {}
        buckets = Buckets.of(start, end, interval, zone)  # refuses before any query
        if not device_ids or not keys:
            return {}
        self.flush()
        parts: dict[tuple[int, str, int], Partial] = {}

        def add(
            device_id: int, key: str, bucket: int, c: float, s: float, lo: float, hi: float
        ) -> None:
            g = (device_id if per_device else 0, key, bucket)
            # PostgreSQL returns SUM(bigint) as Decimal: keep the partials plain floats.
            c, s, lo, hi = float(c), float(s), float(lo), float(hi)
            p = parts.get(g)
            if p is None:
                parts[g] = [c, s, lo, hi]
            else:
                merge(p, c, s, lo, hi)

        # hours wholly inside the window, each inside one bucket, come from the rollups
        hours_from = -(-start // HOUR_MS) * HOUR_MS
        hours_to = end - end % HOUR_MS
        if not buckets.hour_aligned or hours_from >= hours_to:
            hours_from = hours_to = end
        member, ids = self._ids(device_ids)
        ks: BindParameter[Any] = bindparam("keys", expanding=True)
        params: dict[str, Any] = {"ids": ids, "keys": list(keys)}
        raw = text(
            f"SELECT device_id, key, {buckets.label('ts')} AS b,"
            " COUNT(*), SUM(num), MIN(num), MAX(num) FROM readings"
            f" WHERE {member} AND key IN :keys AND ts >= :s AND ts < :e"
            " AND vtype <= 1 GROUP BY device_id, key, b"
        ).bindparams(ks)
        with self.db.engine.connect() as conn:
            if hours_from < hours_to:
                sql = text(
                    f"SELECT device_id, key, {buckets.label('hour')} AS b,"
                    " SUM(cnt), SUM(sum), MIN(min), MAX(max) FROM rollups"
                    f" WHERE {member} AND key IN :keys AND hour >= :s AND hour < :e"
                    " GROUP BY device_id, key, b"
                ).bindparams(ks)
                for row in conn.execute(sql, {**params, "s": hours_from, "e": hours_to}).all():
                    add(*row)
            for s, e in ((start, hours_from), (hours_to, end)):
                if s < e:
                    for row in conn.execute(raw, {**params, "s": s, "e": e}).all():
                        add(*row)
        out: dict[int, dict[str, list[AggPoint]]] = defaultdict(lambda: defaultdict(list))
        for (device_id, key, bucket), p in sorted(parts.items()):
            out[device_id][key].append((int(bucket), _finish(p, agg)))
        return {d: dict(v) for d, v in out.items()}

    def values_before(
        self, device_ids: Sequence[int], key: str, marks: Sequence[int], floor: int
    ) -> dict[int, list[Mark]]:
        """Per device, the last numeric ``(ts, value)`` of ``key`` before each of ``marks``
        and not before ``floor``: one index seek each (see :mod:`smartpole.store.marks`)."""
        return values_before(self.db, device_ids, key, marks, floor)

    def lowest(self, key: str, spans: Sequence[tuple[int, int, int]]) -> list[float | None]:
        """The lowest value of ``key`` in the hourly rollups overlapping each ``(device,
        start, end)`` (see :mod:`smartpole.store.marks`)."""
        self.flush()
        return lowest(self.db, key, spans)

    def quarantine_counts(self, device_ids: Sequence[int]) -> dict[int, int]:
        """How many values each device had kept apart."""
        if not device_ids:
            return {}
        sql = text(
            "SELECT device_id, COUNT(*) FROM quarantine WHERE device_id IN :ids GROUP BY device_id"
        ).bindparams(bindparam("ids", expanding=True))
        with self.db.engine.connect() as conn:
            return {d: n for d, n in conn.execute(sql, {"ids": list(device_ids)})}

    def quarantined(self, device_id: int, limit: int = 100) -> list[dict[str, Any]]:
        """The newest values kept apart for a device, with their reasons."""
        sql = text(
            "SELECT key, ts, value, quality, reason, received FROM quarantine"
            " WHERE device_id = :d ORDER BY ts DESC LIMIT :n"
        )
        with self.db.engine.connect() as conn:
            return [
                {
                    "key": key,
                    "ts": ts,
                    "value": orjson.loads(value),
                    "quality": Quality(q).name.lower(),
                    "reason": reason,
                    "received": received,
                }
                for key, ts, value, q, reason, received in conn.execute(
                    sql, {"d": device_id, "n": limit}
                )
            ]

    # -- retention ------------------------------------------------------------------------
    def retention_rules(self) -> dict[str, int]:
        """Per-key retention in days (keys not listed use the default)."""
        with self.db.engine.connect() as conn:
            return {k: d for k, d in conn.execute(text("SELECT key, days FROM retention"))}

    def set_retention(self, key: str, days: int | None) -> None:
        """Keep ``key`` for ``days`` (0 = forever); ``None`` returns it to the default."""
        with self.db.engine.begin() as conn:
            conn.execute(text("DELETE FROM retention WHERE key = :k"), {"k": key})
            if days is not None:
                conn.execute(
                    text("INSERT INTO retention (key, days) VALUES (:k, :d)"), {"k": key, "d": days}
                )

    def purge(self, now: int | None = None) -> int:
        """Delete readings past their retention (rollups and latest state are kept)."""
        now = now_ms() if now is None else now
        rules = self.retention_rules()
        deleted = 0
        with self.db.engine.begin() as conn:
            for key, days in rules.items():
                if days > 0:
                    deleted += conn.execute(
                        text("DELETE FROM readings WHERE key = :k AND ts < :c"),
                        {"k": key, "c": now - days * 86_400_000},
                    ).rowcount
            if self.default_retention_days > 0:
                cutoff = now - self.default_retention_days * 86_400_000
                sql = "DELETE FROM readings WHERE ts < :c"
                params: dict[str, Any] = {"c": cutoff}
                if rules:
                    sql += " AND key NOT IN :keys"
                    params["keys"] = list(rules)
                    stmt = text(sql).bindparams(bindparam("keys", expanding=True))
                else:
                    stmt = text(sql)
                deleted += conn.execute(stmt, params).rowcount
        return deleted
