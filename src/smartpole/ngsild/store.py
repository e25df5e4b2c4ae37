"""The entities other systems create through NGSI-LD, per tenant (table ``ngsi_entities``).

Each entity is one row: its attributes as JSON (the stored form of :mod:`entities`), its first
type and the bounding box of its ``location`` in columns of their own, so that a query by type
or by place reads only the rows that can match. A change is a read and a write of the row in
one transaction (the row locked on PostgreSQL, the database on SQLite), so two writers never
lose each other's attributes; a batch reads and writes all its rows in one. Each transaction
that writes entities also records what it wrote, in the same transaction: the history, and
whatever the journals keep (the notifier's outbox), so that no committed change goes
unrecorded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement

from smartpole.ngsild.entities import Attribute, Entity
from smartpole.ngsild.errors import NgsiLdError
from smartpole.ngsild.geo import bounds
from smartpole.ngsild.patterns import Pattern
from smartpole.ngsild.tables import ngsi_entities as t
from smartpole.ngsild.tables import ngsi_entity_types as types_t
from smartpole.ngsild.tables import ngsi_history as history_t
from smartpole.ngsild.temporal import deletion_json, instance_json, time_of

__all__ = ["EntityFilter", "EntityStore", "HistoryRow", "HistoryWindow", "Journal", "Writes"]

LOCATION = "https://uri.etsi.org/ngsi-ld/location"
_PAGE = 2_000


Journal = Callable[[Connection, int, Sequence[Entity], bool], None]
"""Told ``(connection, tenant id, entities, deleted)`` inside the transaction that wrote the
entities (each stamped with the time of the change on what it changed) or, ``deleted``, deleted
them (as they were), before it commits."""


@dataclass(slots=True)
class Writes:
    """What a batch decided to write: entities to create, entities changed (read, then
    changed by the caller), and the ids among those whose types changed."""

    created: list[Entity] = field(default_factory=list)
    changed: list[Entity] = field(default_factory=list)
    retyped: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class HistoryWindow:
    """What of the history a read asks for: the instances of ``attrs`` (IRIs; None: every
    attribute) observed in ``[start, end)``, or with ``deletions`` the instances recording
    deletions, by when they were deleted."""

    attrs: Collection[str] | None
    start: int
    end: int
    deletions: bool = False

    def holds(self, *, attrs: bool = True) -> list[ColumnElement[bool]]:
        """The conditions on ``ngsi_history`` rows in the window (``attrs``: with the
        attributes', else the caller names the attribute)."""
        h = history_t.c
        out = [h.observed >= self.start, h.observed < self.end, h.deleted == self.deletions]
        if attrs and self.attrs is not None:
            out.append(h.attr.in_(list(self.attrs)))
        return out


HistoryRow = tuple[int, int, str | None, str | None]
"""One kept instance: its id, when it was observed, its whole stored form (only when it has
sub-attributes) and its shown form (when it has none)."""


@dataclass(frozen=True, slots=True)
class EntityFilter:
    """What the database can narrow a query by before the finer checks run in Python."""

    types: Sequence[str] | None = None
    ids: Sequence[str] | None = None
    id_pattern: Pattern | None = None
    box: tuple[float, float, float, float] | None = None  # on the location's bounding box


_ENTITY_KEYS = (
    "tenant_id",
    "entity_id",
    "types",
    "scopes",
    "attrs",
    "created",
    "modified",
    "min_lon",
    "min_lat",
    "max_lon",
    "max_lat",
)


def _row_values(entity: Entity) -> dict[str, Any]:
    """The row's columns besides its key (in :data:`_ENTITY_KEYS` order)."""
    values: dict[str, Any] = {
        "types": orjson.dumps(entity.types).decode(),
        "scopes": orjson.dumps(entity.scopes).decode() if entity.scopes else None,
        "attrs": orjson.dumps(entity.attrs_json()).decode(),
        "created": entity.created_at,
        "modified": entity.modified_at,
        "min_lon": None,
        "min_lat": None,
        "max_lon": None,
        "max_lat": None,
    }
    location = entity.instance(LOCATION, None) or next(iter(entity.attrs.get(LOCATION, ())), None)
    if location is not None and location.kind == "GeoProperty":
        box = bounds(location.value)
        values.update(min_lon=box[0], min_lat=box[1], max_lon=box[2], max_lat=box[3])
    return values


def _entity(row: Any) -> Entity:
    raw = orjson.loads(row.attrs)
    return Entity(
        row.entity_id,
        orjson.loads(row.types),
        {name: [Attribute.from_json(a) for a in items] for name, items in raw.items()},
        orjson.loads(row.scopes) if row.scopes else None,
        row.created,
        row.modified,
    )


class EntityStore:
    """Create, read, change and delete a tenant's NGSI-LD entities."""

    def __init__(self, engine: Engine, journals: list[Journal] | None = None) -> None:
        self.engine = engine
        self.journals: list[Journal] = journals if journals is not None else []
        self._lock_rows = engine.dialect.name == "postgresql"  # else SQLite

    def create(self, tenant_id: int, entity: Entity) -> None:
        """Store a new entity (AlreadyExists when its id is taken in the tenant)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(t).values(
                        tenant_id=tenant_id, entity_id=entity.id, **_row_values(entity)
                    )
                )
                _write_types(conn, tenant_id, [entity])
                self._record(conn, tenant_id, [entity])
        except IntegrityError:
            raise NgsiLdError.exists(f"entity {entity.id} exists already") from None

    def get(self, tenant_id: int, entity_id: str) -> Entity | None:
        """One entity, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t).where(t.c.tenant_id == tenant_id, t.c.entity_id == entity_id)
            ).first()
        return None if row is None else _entity(row)

    def write_many(
        self, tenant_id: int, ids: Sequence[str], plan: Callable[[dict[str, Entity]], Writes]
    ) -> Writes:
        """In one transaction: read the entities of these ids that exist (locked on
        PostgreSQL), let ``plan`` decide what to create and what to change, write both and
        record them. Rows are locked, inserted and updated in id order, so two batches over the
        same entities wait for each other instead of deadlocking. When another writer created
        one of the new ids meanwhile (or the database still chose this transaction to end a
        deadlock), the whole batch is read and planned again (``plan`` must not depend on an
        earlier call)."""
        ordered = sorted(set(ids))
        for attempt in range(3):
            try:
                with self._read_write() as conn:
                    existing = self._read_many(conn, tenant_id, ordered)
                    before = {i: _instances(e) for i, e in existing.items()}
                    writes = plan(existing)
                    created = sorted(writes.created, key=_by_id)
                    self._insert(conn, tenant_id, created)
                    self._update(
                        conn, tenant_id, sorted(writes.changed, key=_by_id), writes.retyped
                    )
                    self._record(conn, tenant_id, [*writes.created, *writes.changed])
                    changed = [(e, before.get(e.id, [])) for e in writes.changed]
                    _write_deletions(conn, tenant_id, changed)
                return writes
            except (IntegrityError, OperationalError) as err:
                if isinstance(err, OperationalError) and not _retryable(err):
                    raise
                if attempt == 2:
                    raise NgsiLdError.exists(
                        "entities of this batch were created or locked meanwhile"
                    ) from None
        raise AssertionError("unreachable")

    @contextmanager
    def _read_write(self) -> Iterator[Connection]:
        """A transaction that reads rows and writes them back: on PostgreSQL the rows read are
        locked (``FOR UPDATE``); SQLite's driver would begin the transaction only at the first
        write, after the reads, so it is begun at once, taking the database's write lock."""
        with self.engine.begin() as conn:
            if not self._lock_rows:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn

    def _read_many(self, conn: Connection, tenant_id: int, ids: Sequence[str]) -> dict[str, Entity]:
        found: dict[str, Entity] = {}
        for chunk in _chunks(list(ids)):
            query = select(t).where(t.c.tenant_id == tenant_id, t.c.entity_id.in_(chunk))
            if self._lock_rows:
                query = query.order_by(t.c.entity_id).with_for_update()
            for row in conn.execute(query):
                found[row.entity_id] = _entity(row)
        return found

    def _insert(self, conn: Connection, tenant_id: int, entities: Sequence[Entity]) -> None:
        if entities:
            rows = [(tenant_id, e.id, *_row_values(e).values()) for e in entities]
            _insert_many(conn, t, _ENTITY_KEYS, rows)
            _write_types(conn, tenant_id, entities)

    def _update(
        self, conn: Connection, tenant_id: int, entities: Sequence[Entity], retyped: Collection[str]
    ) -> None:
        if not entities:
            return
        rows = [{"_tenant": tenant_id, "_entity": e.id, **_row_values(e)} for e in entities]
        rewrite = (
            update(t)
            .where(t.c.tenant_id == bindparam("_tenant"), t.c.entity_id == bindparam("_entity"))
            .values({k: bindparam(k) for k in rows[0] if not k.startswith("_")})
        )
        conn.execute(rewrite, rows)  # one executemany
        for entity in entities:
            if entity.id in retyped:
                _retype(conn, tenant_id, entity)

    def _record(self, conn: Connection, tenant_id: int, entities: Sequence[Entity]) -> None:
        """The history of what a change wrote, and the journals, in its transaction."""
        if not entities:
            return
        _write_history(conn, tenant_id, entities)
        for journal in self.journals:
            journal(conn, tenant_id, entities, False)

    def change(self, tenant_id: int, entity_id: str, change: Callable[[Entity], Any]) -> Any:
        """Apply ``change`` to the stored entity and write it back, in one transaction, unless
        it changed nothing (left the modification time as it was); returns what ``change``
        returned (ResourceNotFound when there is no such entity)."""
        with self._read_write() as conn:
            entity = self._read_for_update(conn, tenant_id, entity_id)
            if entity is None:
                raise NgsiLdError.not_found(f"entity {entity_id} not found")
            types, modified = list(entity.types), entity.modified_at
            before = _instances(entity)
            result = change(entity)
            if entity.modified_at != modified:
                retyped = {entity.id} if entity.types != types else set()
                self._update(conn, tenant_id, [entity], retyped)
                self._record(conn, tenant_id, [entity])
                _write_deletions(conn, tenant_id, [(entity, before)])
        return result

    def _read_for_update(self, conn: Connection, tenant_id: int, entity_id: str) -> Entity | None:
        query = select(t).where(t.c.tenant_id == tenant_id, t.c.entity_id == entity_id)
        if self._lock_rows:
            query = query.with_for_update()
        row = conn.execute(query).first()
        return None if row is None else _entity(row)

    def delete_many(self, tenant_id: int, ids: Sequence[str]) -> dict[str, Entity]:
        """Delete entities, telling the journals what they were; returns those that were
        there, by id."""
        with self._read_write() as conn:
            gone = self._read_many(conn, tenant_id, sorted(set(ids)))
            for chunk in _chunks(list(gone)):
                where = and_(t.c.tenant_id == tenant_id, t.c.entity_id.in_(chunk))
                conn.execute(delete(t).where(where))
            if gone:
                for journal in self.journals:
                    journal(conn, tenant_id, list(gone.values()), True)
        return gone

    def scan(self, tenant_id: int, f: EntityFilter) -> Iterator[Entity]:
        """Entities that may match ``f`` (its id pattern and box checked exactly later), in id
        order, read a page at a time."""
        after = ""
        while True:
            query = self._narrowed(select(t), tenant_id, f).where(t.c.entity_id > after)
            with self.engine.connect() as conn:
                rows = conn.execute(query.order_by(t.c.entity_id).limit(_PAGE)).all()
            for row in rows:
                if f.id_pattern is None or f.id_pattern.fullmatch(row.entity_id):
                    yield _entity(row)
            if len(rows) < _PAGE:
                return
            after = rows[-1].entity_id

    def _narrowed(self, query: Select[Any], tenant_id: int, f: EntityFilter) -> Select[Any]:
        query = query.where(t.c.tenant_id == tenant_id)
        if f.types is not None:
            typed = (types_t.c.tenant_id == tenant_id, types_t.c.type.in_(f.types))
            if f.box is not None or f.ids is not None:
                # correlated: a primary-key probe per candidate row the box or ids leave
                query = query.where(exists().where(*typed, types_t.c.entity_id == t.c.entity_id))
            else:
                # the type alone: the type's entities, read once from its index
                query = query.where(t.c.entity_id.in_(select(types_t.c.entity_id).where(*typed)))
        if f.ids is not None:
            query = query.where(t.c.entity_id.in_(f.ids))
        if f.box is not None:
            min_lon, min_lat, max_lon, max_lat = f.box
            query = query.where(
                t.c.min_lon <= max_lon,
                t.c.max_lon >= min_lon,
                t.c.min_lat <= max_lat,
                t.c.max_lat >= min_lat,
            )
        return query

    def add_history(
        self, tenant_id: int, entity_id: str, rows: Sequence[tuple[str, Attribute]]
    ) -> None:
        """Record past instances of an entity's attributes (the temporal API's provision)."""
        if not rows:
            return
        with self.engine.begin() as conn:
            values = [_history_row(tenant_id, entity_id, name, a) for name, a in rows]
            _insert_many(conn, history_t, _HISTORY_KEYS, values)

    def history(
        self, tenant_id: int, entity_ids: Sequence[str], window: HistoryWindow, limit: int
    ) -> dict[str, dict[str, list[HistoryRow]]]:
        """Per entity and attribute, the oldest ``limit`` instances in the window, oldest
        first."""
        out: dict[str, dict[str, list[HistoryRow]]] = {}
        h = history_t.c
        for chunk in _chunks(list(entity_ids)):
            where = [h.tenant_id == tenant_id, h.entity_id.in_(chunk), *window.holds()]
            rank = func.row_number().over(
                partition_by=(h.entity_id, h.attr), order_by=(h.observed, h.id)
            )
            inner = select(h.id, h.entity_id, h.attr, h.observed, h.body, h.shown, rank.label("rn"))
            ranked = inner.where(*where).subquery()
            query = (
                select(
                    ranked.c.id,
                    ranked.c.entity_id,
                    ranked.c.attr,
                    ranked.c.observed,
                    ranked.c.body,
                    ranked.c.shown,
                )
                .where(ranked.c.rn <= limit)
                .order_by(ranked.c.entity_id, ranked.c.attr, ranked.c.observed, ranked.c.id)
            )
            with self.engine.connect() as conn:
                for row in conn.execute(query):
                    by_attr = out.setdefault(row.entity_id, {})
                    by_attr.setdefault(row.attr, []).append(
                        (row.id, row.observed, row.body, row.shown)
                    )
        return out

    def having_history(
        self, tenant_id: int, entity_ids: Sequence[str], window: HistoryWindow
    ) -> set[str]:
        """The entities with an instance in the window: one index seek each, whatever the
        window holds."""
        h = history_t.c
        out: set[str] = set()
        for chunk in _chunks(list(entity_ids)):
            found = [h.tenant_id == t.c.tenant_id, h.entity_id == t.c.entity_id, *window.holds()]
            query = select(t.c.entity_id).where(
                t.c.tenant_id == tenant_id,
                t.c.entity_id.in_(chunk),
                exists(select(literal(1)).select_from(history_t).where(*found)),
            )
            with self.engine.connect() as conn:
                out.update(row[0] for row in conn.execute(query))
        return out

    def last_instances(
        self, tenant_id: int, entity_ids: Sequence[str], window: HistoryWindow, n: int
    ) -> dict[str, dict[str, list[HistoryRow]]]:
        """Per entity and attribute, the newest ``n`` instances in the window, oldest first:
        one index seek per (entity, attribute), which at lastN=100 over 1,000 entities is
        several times cheaper than ranking every instance of them."""
        h = history_t.c
        out: dict[str, dict[str, list[HistoryRow]]] = {}
        newest = (
            select(h.id, h.observed, h.body, h.shown)
            .where(
                h.tenant_id == tenant_id,
                h.entity_id == bindparam("entity"),
                h.attr == bindparam("attr"),
                *window.holds(attrs=False),
            )
            .order_by(h.observed.desc(), h.id.desc())
            .limit(n)
        )
        # A thousand small seeks: run on the driver's own cursor, rows as plain tuples (the
        # result wrapping of each row cost more than the seek).
        compiled = newest.compile(dialect=self.engine.dialect)
        sql = str(compiled)
        positions = compiled.positiontup
        with self.engine.connect() as conn:
            pairs: list[tuple[str, str]] = []
            for chunk in _chunks(list(entity_ids)):
                present = select(h.entity_id, h.attr).where(
                    h.tenant_id == tenant_id, h.entity_id.in_(chunk)
                )
                if window.attrs is not None:
                    present = present.where(h.attr.in_(list(window.attrs)))
                pairs += [(r[0], r[1]) for r in conn.execute(present.distinct())]
            with driver_cursor(conn) as cursor:
                for entity_id, attr in sorted(pairs):
                    params = compiled.construct_params({"entity": entity_id, "attr": attr})
                    bound = tuple(params[p] for p in positions) if positions else params
                    cursor.execute(sql, bound)
                    rows = cursor.fetchall()
                    if rows:
                        out.setdefault(entity_id, {})[attr] = list(rows[::-1])
        return out

    def types(self, tenant_id: int) -> dict[str, set[str]]:
        """Every entity type of the tenant with the attributes its entities have."""
        found: dict[str, set[str]] = {}
        with self.engine.connect() as conn:
            query = select(t.c.types, t.c.attrs).where(t.c.tenant_id == tenant_id)
            for row in conn.execute(query):
                names = set(orjson.loads(row.attrs))
                for type_iri in orjson.loads(row.types):
                    found.setdefault(type_iri, set()).update(names)
        return found


def _by_id(entity: Entity) -> str:
    return entity.id


def _retryable(err: OperationalError) -> bool:
    """A deadlock or serialization failure on PostgreSQL: the transaction may simply run
    again."""
    return getattr(err.orig, "sqlstate", None) in ("40P01", "40001")


def _insert_many(
    conn: Connection, table: Table, keys: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """Insert rows (tuples of the ``keys`` columns) with the driver's ``executemany``: a batch
    of a thousand entities writes five thousand rows, and building each one's parameters
    through the statement cost more than writing it."""
    sql, order = _compiled_insert(table, keys, conn.dialect)
    params: list[Any]
    if order is None:  # named parameters (psycopg)
        params = [dict(zip(keys, r, strict=True)) for r in rows]
    elif order == tuple(range(len(keys))):
        params = rows
    else:
        params = [tuple(r[i] for i in order) for r in rows]
    with driver_cursor(conn) as cursor:
        cursor.executemany(sql, params)


@functools.lru_cache(maxsize=64)
def _compiled_insert(
    table: Table, keys: tuple[str, ...], dialect: Dialect
) -> tuple[str, tuple[int, ...] | None]:
    """The INSERT of these columns and, when it takes positional parameters, the index in
    ``keys`` of each (None: named parameters)."""
    compiled = insert(table).compile(dialect=dialect, column_keys=list(keys))
    assert isinstance(compiled, SQLCompiler)
    positions = compiled.positiontup
    if positions is None:
        return str(compiled), None
    return str(compiled), tuple(keys.index(p) for p in positions)


@contextmanager
def driver_cursor(conn: Connection) -> Iterator[Any]:
    """The driver's own cursor on the connection's transaction; its errors raised as
    SQLAlchemy's (so that an outage is still told apart as one: a 503, not a 500)."""
    cursor = conn.connection.cursor()
    dbapi = conn.dialect.loaded_dbapi
    try:
        yield cursor
    except dbapi.Error as err:
        raise DBAPIError.instance(None, None, err, dbapi.Error) from err
    finally:
        cursor.close()


_TYPE_KEYS = ("tenant_id", "type", "entity_id")
_HISTORY_KEYS = ("tenant_id", "entity_id", "attr", "observed", "shown", "body")


def _write_types(conn: Connection, tenant_id: int, entities: Sequence[Entity]) -> None:
    rows = [(tenant_id, type_iri, e.id) for e in entities for type_iri in e.types]
    if rows:
        _insert_many(conn, types_t, _TYPE_KEYS, rows)


def _history_row(tenant_id: int, entity_id: str, name: str, a: Attribute) -> tuple[Any, ...]:
    """A history row (:data:`_HISTORY_KEYS`) of an instance. It keeps the instance's shown
    form (what the temporal API answers, and enough to read it back), else, with
    sub-attributes, its whole stored form."""
    shown = instance_json(a)
    body = None if shown else orjson.dumps(a.to_json()).decode()
    return (tenant_id, entity_id, name, time_of(a), shown, body)


def _instances(entity: Entity) -> list[tuple[str, Attribute]]:
    """Every attribute instance of an entity, with its attribute's name."""
    return [(name, a) for name, items in entity.attrs.items() for a in items]


def _write_deletions(
    conn: Connection,
    tenant_id: int,
    changes: Sequence[tuple[Entity, Sequence[tuple[str, Attribute]]]],
) -> None:
    """For each changed entity and its attribute instances before the change, an instance
    recording the deletion of each it no longer has, at the change's time (one insert)."""
    rows = [
        (
            tenant_id,
            entity.id,
            name,
            entity.modified_at,
            deletion_json(a.kind, a.dataset_id, entity.modified_at),
            None,
            True,
        )
        for entity, before in changes
        for name, a in before
        if entity.instance(name, a.dataset_id) is None
    ]
    if rows:
        _insert_many(conn, history_t, (*_HISTORY_KEYS, "deleted"), rows)


def _write_history(conn: Connection, tenant_id: int, entities: Sequence[Entity]) -> None:
    """The instances each entity's last change wrote (those stamped with its modification
    time), as history rows."""
    rows = [
        _history_row(tenant_id, e.id, name, a)
        for e in entities
        for name, instances in e.attrs.items()
        for a in instances
        if a.modified_at == e.modified_at
    ]
    if rows:
        _insert_many(conn, history_t, _HISTORY_KEYS, rows)


def _retype(conn: Connection, tenant_id: int, entity: Entity) -> None:
    conn.execute(
        delete(types_t).where(types_t.c.tenant_id == tenant_id, types_t.c.entity_id == entity.id)
    )
    _write_types(conn, tenant_id, [entity])


def _chunks(items: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
