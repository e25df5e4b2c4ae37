"""The temporal API's operations (``/temporal/entities``) over the context broker: history
read from ``ngsi_history`` for the entities other systems create and from the readings for
smartpole's own, and instances added to an entity's history."""

from __future__ import annotations

from typing import Any

import orjson

from smartpole.ngsild.broker import ContextBroker, EntityQuery
from smartpole.ngsild.context import Context
from smartpole.ngsild.entities import Attribute, Entity, check_id, parse_attributes, parse_entity
from smartpole.ngsild.errors import NgsiLdError
from smartpole.ngsild.store import HistoryRow
from smartpole.ngsild.temporal import (
    INSTANCE_PREFIX,
    MAX_INSTANCES,
    NORMALIZED,
    TemporalQuery,
    TemporalSeries,
    aggregate,
    from_shown,
)
from smartpole.registry.access import Principal

__all__ = ["TemporalBroker"]


class TemporalBroker:
    """Temporal queries, retrievals and provision, for one context broker's entities."""

    def __init__(self, broker: ContextBroker) -> None:
        self.broker = broker

    def temporal_query(
        self, who: Principal, query: EntityQuery, tq: TemporalQuery
    ) -> tuple[list[TemporalSeries], int]:
        """The history of the entities a query matches now (a page of them) and their count."""
        page, total = self.broker.query(who, query)
        return self._series(who, page, tq), total

    def temporal_retrieve(
        self, who: Principal, entity_id: str, tq: TemporalQuery
    ) -> TemporalSeries:
        """One entity's history (ResourceNotFound when there is no such entity)."""
        return self._series(who, [self.broker.retrieve(who, entity_id)], tq)[0]

    def _series(
        self, who: Principal, entities: list[Entity], tq: TemporalQuery
    ) -> list[TemporalSeries]:
        out = {e.id: TemporalSeries(e) for e in entities}
        own = [e for e in entities if self.broker.own is not None and self.broker.own.owns(e.id)]
        foreign = [e.id for e in entities if e.id not in {o.id for o in own}]
        aggregating = tq.aggr_methods is not None
        if foreign:
            store = self.broker.store
            if aggregating:
                found = store.history(
                    who.tenant_id, foreign, tq.attrs, tq.start, tq.end, 100 * MAX_INSTANCES
                )
            elif tq.last_n is not None:
                found = store.last_instances(
                    who.tenant_id,
                    foreign,
                    tq.attrs,
                    tq.start,
                    tq.end,
                    tq.last_n,
                )
            else:
                found = store.history(
                    who.tenant_id, foreign, tq.attrs, tq.start, tq.end, MAX_INSTANCES
                )
            for entity_id, by_attr in found.items():
                series = out[entity_id]
                for attr, rows in by_attr.items():
                    if aggregating:
                        series.aggregated[attr] = aggregate([_parsed(r) for r in rows], tq)
                    elif tq.representation == NORMALIZED and all(r[2] for r in rows):
                        series.fragments[attr] = orjson.Fragment(
                            "[" + ",".join([_with_id(r[0], r[2] or "") for r in rows]) + "]"
                        )
                    else:
                        series.instances[attr] = [(r[0], _parsed(r)) for r in rows]
        if own and self.broker.own is not None:
            if aggregating:
                for entity_id, aggs in self.broker.own.aggregated(who, own, tq).items():
                    out[entity_id].aggregated = aggs
            else:
                for entity_id, by_key in self.broker.own.history(who, own, tq).items():
                    out[entity_id].instances = {
                        a: [(None, x) for x in items] for a, items in by_key.items()
                    }
        return [out[e.id] for e in entities]

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
                if old is None or _observed(old) <= _observed(newest):
                    entity.write(name, newest, now)
                else:
                    older.append((name, newest))
            entity.modified_at = now

        self.broker.change_entity(who, entity_id, change)
        self.broker.store.add_history(who.tenant_id, entity_id, older)
        return False


def _with_id(instance_id: int, shown: str) -> str:
    """A kept instance's shown form with its ``instanceId``."""
    return f'{{"instanceId":"{INSTANCE_PREFIX}{instance_id}",{shown[1:]}'


def _parsed(row: HistoryRow) -> Attribute:
    """A kept instance read back: its whole stored form, or its shown form."""
    if row[1] is not None:
        return Attribute.from_json(orjson.loads(row[1]))
    return from_shown(orjson.loads(row[2] or "{}"))


def _observed(attribute: Attribute) -> int:
    return attribute.observed_at if attribute.observed_at is not None else attribute.modified_at


def _newest(items: list[Attribute]) -> Attribute:
    """The instance observed last (the last sent, among equals)."""
    best = items[0]
    for item in items[1:]:
        if _observed(item) >= _observed(best):
            best = item
    return best
