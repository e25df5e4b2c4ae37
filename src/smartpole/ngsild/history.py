"""The temporal API's operations (``/temporal/entities``) over the context broker: history
read from ``ngsi_history`` for the entities other systems create and from the readings for
smartpole's own, and instances added to an entity's history."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from smartpole.ngsild.broker import ContextBroker
from smartpole.ngsild.context import Context
from smartpole.ngsild.entities import (
    Attribute,
    Entity,
    check_id,
    parse_attributes,
    parse_entity,
    require_any,
)
from smartpole.ngsild.entity_query import EntityQuery, page_of
from smartpole.ngsild.errors import NgsiLdError
from smartpole.ngsild.store import HistoryRow, HistoryWindow
from smartpole.ngsild.temporal import (
    INSTANCE_PREFIX,
    MAX_AGGREGATED,
    MAX_INSTANCES,
    NORMALIZED,
    InstanceRange,
    TemporalQuery,
    TemporalSeries,
    aggregate,
    from_shown,
    page_instances,
    time_of,
)
from smartpole.registry.access import Principal

__all__ = ["TemporalBroker"]

HISTORY_CHUNK = 500  # entities asked at once whether they have instances in a window


class TemporalBroker:
    """Temporal queries, retrievals and provision, for one context broker's entities. An
    answer holds at most ``instance_limit`` instances of an attribute; a longer history is
    answered in part (:class:`InstanceRange`), paged by time."""

    def __init__(self, broker: ContextBroker, instance_limit: int = MAX_INSTANCES) -> None:
        self.broker = broker
        self.instance_limit = instance_limit

    def temporal_query(
        self, who: Principal, query: EntityQuery, tq: TemporalQuery, *, count: bool = True
    ) -> tuple[list[TemporalSeries], int, InstanceRange | None]:
        """The history of the entities a query matches now that have an instance in its
        window (a page of them), their count (without ``count``, only as far as the page),
        and the time range shown when the histories were too long to show whole."""
        matching = self._with_history(who, self.broker.matching(who, query), tq)
        page, total = page_of(matching, query, count=count)
        series, shown = self._series(who, page, tq)
        return series, total, shown

    def _split(
        self, entities: Sequence[Entity], tq: TemporalQuery
    ) -> tuple[list[Entity], list[str]]:
        """smartpole's own entities, whose readings answer (none for deletions: readings are
        not deleted), and the ids of the others, whose kept history answers."""
        own_source = self.broker.own
        if own_source is None:
            return [], [e.id for e in entities]
        own = [e for e in entities if own_source.owns(e.id)]
        foreign = [e.id for e in entities if not own_source.owns(e.id)]
        return ([] if tq.deletions else own), foreign

    def _with_history(
        self, who: Principal, entities: Iterator[Entity], tq: TemporalQuery
    ) -> Iterator[Entity]:
        """The entities with an instance in the query's window (of the attributes it asks
        for), asked of the stores a chunk at a time: one with none has no temporal
        evolution to show, and is neither listed nor counted."""
        own_source = self.broker.own
        while chunk := list(itertools.islice(entities, HISTORY_CHUNK)):
            own, foreign = self._split(chunk, tq)
            kept = self.broker.store.having_history(who.tenant_id, foreign, _window(tq))
            if own and own_source is not None:
                kept |= own_source.having_history(who, own, tq)
            yield from (e for e in chunk if e.id in kept)

    def temporal_retrieve(
        self, who: Principal, entity_id: str, tq: TemporalQuery
    ) -> tuple[TemporalSeries, InstanceRange | None]:
        """One entity's history (ResourceNotFound when there is no such entity, or it has none
        of the attributes asked for), and the time range shown when it was too long to show
        whole."""
        entity = self.broker.retrieve(who, entity_id)
        series, shown = self._series(who, [entity], tq)
        found = series[0]
        if not (found.instances or found.fragments or found.emptied or found.aggregated):
            require_any(entity, tq.attrs)  # an attribute deleted since has a history still
        return found, shown

    def _series(
        self, who: Principal, entities: list[Entity], tq: TemporalQuery
    ) -> tuple[list[TemporalSeries], InstanceRange | None]:
        out = {e.id: TemporalSeries(e) for e in entities}
        own, foreign = self._split(entities, tq)
        if tq.aggr_methods is not None:
            self._aggregated(who, out, own, foreign, tq)
            return [out[e.id] for e in entities], None
        n = tq.fetch_size(self.instance_limit)
        kept: dict[str, dict[str, list[HistoryRow]]] = {}
        if foreign:
            store = self.broker.store
            read = store.last_instances if tq.last_n is not None else store.history
            kept = read(who.tenant_id, foreign, _window(tq), n)
        readings: dict[str, dict[str, list[Attribute]]] = {}
        if own and self.broker.own is not None:
            readings = self.broker.own.history(who, own, tq, n)
        # the first instance of each attribute: its kind, should the cut leave none of it
        heads = {
            (entity_id, attr): items[0]
            for found in (kept, readings)
            for entity_id, by_attr in found.items()
            for attr, items in by_attr.items()
            if items
        }
        shown = self._page(kept, readings, tq)
        for (entity_id, attr), head in heads.items():
            by_attr = kept.get(entity_id) or readings.get(entity_id) or {}
            if not by_attr[attr]:
                kind = head.kind if isinstance(head, Attribute) else _parsed(head).kind
                out[entity_id].emptied[attr] = kind
        for entity_id, by_attr in kept.items():
            series = out[entity_id]
            for attr, rows in by_attr.items():
                if not rows:
                    continue
                if tq.representation == NORMALIZED and all(r[3] for r in rows):
                    series.fragments[attr] = orjson.Fragment(
                        "[" + ",".join([_with_id(r[0], r[3] or "") for r in rows]) + "]"
                    )
                else:
                    series.instances[attr] = [(r[0], _parsed(r)) for r in rows]
        for entity_id, by_key in readings.items():
            out[entity_id].instances = {
                a: [(None, x) for x in items] for a, items in by_key.items() if items
            }
        return [out[e.id] for e in entities], shown

    def _page(
        self,
        kept: dict[str, dict[str, list[HistoryRow]]],
        readings: dict[str, dict[str, list[Attribute]]],
        tq: TemporalQuery,
    ) -> InstanceRange | None:
        """Cut the histories read to one time range an answer holds (see
        :func:`page_instances`): kept instances and readings alike."""
        limit = self.instance_limit
        rows = [items for by_attr in kept.values() for items in by_attr.values()]
        attributes = [items for by_key in readings.values() for items in by_key.values()]
        if all(len(x) <= limit for x in rows) and all(len(x) <= limit for x in attributes):
            return None
        # one time for both kinds: cut them as (time, index) pairs, then keep what survived
        pairs = [[(r[1], i) for i, r in enumerate(items)] for items in rows]
        pairs += [[(time_of(a), i) for i, a in enumerate(items)] for items in attributes]
        shown = page_instances(pairs, lambda p: p[0], tq, limit)
        for row_list, survivors in zip(rows, pairs[: len(rows)], strict=True):
            row_list[:] = [row_list[i] for _, i in survivors]
        for attribute_list, survivors in zip(attributes, pairs[len(rows) :], strict=True):
            attribute_list[:] = [attribute_list[i] for _, i in survivors]
        return shown

    def _aggregated(
        self,
        who: Principal,
        out: dict[str, TemporalSeries],
        own: list[Entity],
        foreign: list[str],
        tq: TemporalQuery,
    ) -> None:
        if foreign:
            found = self.broker.store.history(who.tenant_id, foreign, _window(tq), MAX_AGGREGATED)
            for entity_id, by_attr in found.items():
                for attr, rows in by_attr.items():
                    out[entity_id].aggregated[attr] = aggregate([_parsed(r) for r in rows], tq)
        if own and self.broker.own is not None:
            for entity_id, aggs in self.broker.own.aggregated(who, own, tq).items():
                out[entity_id].aggregated = aggs

    def temporal_provide(self, who: Principal, body: Any, ctx: Context) -> bool:
        """Add instances to an entity's history, creating the entity when it does not exist
        (its current state the newest instance of each attribute); True when it was created."""
        if not isinstance(body, dict):
            raise NgsiLdError.bad_data("a temporal entity must be a JSON object")
        check_id(body.get("id"))
        entity_id = str(body["id"])
        self.broker.check_writable(entity_id)
        now = self.broker.clock()
        series = {
            name: [a.stamped(now) for a in items]
            for name, items in parse_attributes(body, ctx, over_time=True).items()
        }
        current = {name: _newest(items) for name, items in series.items()}
        older = [
            (name, a) for name, items in series.items() for a in items if a is not current[name]
        ]
        if self.broker.store.get(who.tenant_id, entity_id) is None:
            entity = parse_entity({"id": entity_id, "type": body.get("type")}, ctx)
            entity.attrs = {name: [a] for name, a in current.items()}
            entity.created_at = entity.modified_at = now
            self.broker.store.create(who.tenant_id, entity)
            self.broker.changed(who, [entity])
            self.broker.store.add_history(who.tenant_id, entity_id, older)
            return True

        def change(entity: Entity, now: int) -> None:
            for name, newest in current.items():
                old = entity.instance(name, newest.dataset_id)
                if old is None or time_of(old) <= time_of(newest):
                    entity.write(name, newest, now)
                else:
                    older.append((name, newest))
            entity.modified_at = now

        self.broker.change_entity(who, entity_id, change)
        self.broker.store.add_history(who.tenant_id, entity_id, older)
        return False


def _window(tq: TemporalQuery) -> HistoryWindow:
    """What of the kept history a temporal query reads."""
    return HistoryWindow(tq.attrs, tq.start, tq.end, tq.deletions)


def _with_id(instance_id: int, shown: str) -> str:
    """A kept instance's shown form with its ``instanceId``."""
    return f'{{"instanceId":"{INSTANCE_PREFIX}{instance_id}",{shown[1:]}'


def _parsed(row: HistoryRow) -> Attribute:
    """A kept instance read back: its whole stored form, or its shown form."""
    if row[2] is not None:
        return Attribute.from_json(orjson.loads(row[2]))
    return from_shown(orjson.loads(row[3] or "{}"))


def _newest(items: list[Attribute]) -> Attribute:
    """The instance observed last (the last sent, among equals)."""
    best = items[0]
    for item in items[1:]:
        if time_of(item) >= time_of(best):
            best = item
    return best
