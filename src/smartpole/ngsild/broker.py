"""The NGSI-LD context broker: each operation of the standard on a tenant's entities.

Transport-free: the HTTP routes (``smartpole.api.ngsi_ld``) parse headers and parameters, pick
the tenant and the ``@context``, and hand this class parsed values; it answers entities and
results, and raises :class:`~smartpole.ngsild.errors.NgsiLdError` with the standard's types.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from smartpole.model.clock import now_ms
from smartpole.ngsild.context import Context
from smartpole.ngsild.entities import (
    KINDS,
    NULL,
    Attribute,
    Entity,
    check_id,
    parse_attribute,
    parse_attributes,
    parse_entity,
    parse_scopes,
)
from smartpole.ngsild.entity_query import MAX_LIMIT, EntityQuery, page_of
from smartpole.ngsild.errors import NgsiLdError, ProblemType
from smartpole.ngsild.store import EntityFilter, EntityStore
from smartpole.ngsild.temporal import Aggregated, TemporalQuery
from smartpole.registry.access import Principal

__all__ = [
    "ChangeListener",
    "ContextBroker",
    "OwnSource",
    "UpdateResult",
    "stamp_all",
]


@dataclass(slots=True)
class UpdateResult:
    """Which attributes an update changed, and why the others were not."""

    updated: list[str] = field(default_factory=list)
    not_updated: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)


def stamp_all(attrs: dict[str, list[Attribute]], now: int) -> None:
    for instances in attrs.values():
        for attribute in instances:
            attribute.stamped(now)


ChangeListener = Callable[[int, Sequence[Entity]], None]
"""Told ``(tenant id, entities)`` after entities were written and committed (each stamped with
the time of the change on what it changed). What must commit with the change is a journal of
the store (:data:`smartpole.ngsild.store.Journal`)."""


class OwnSource(Protocol):
    """smartpole's own poles and devices as read-only entities (``ngsild.own``)."""

    def owns(self, entity_id: str) -> bool:
        """Whether the id is in smartpole's own namespace."""
        ...

    def scan(self, who: Principal, f: EntityFilter) -> list[Entity]:
        """Entities that may match ``f``, in id order."""
        ...

    def types(self, who: Principal) -> dict[str, set[str]]:
        """Entity types with their attributes."""
        ...

    def having_history(
        self, who: Principal, entities: Sequence[Entity], query: TemporalQuery
    ) -> set[str]:
        """The ids of the entities with a reading in the query's window."""
        ...

    def history(
        self, who: Principal, entities: Sequence[Entity], query: TemporalQuery, n: int
    ) -> dict[str, dict[str, list[Attribute]]]:
        """Per entity id and attribute IRI, ``n`` readings in the window as instances (the
        newest with ``lastN``, else the oldest), oldest first."""
        ...

    def aggregated(
        self, who: Principal, entities: Sequence[Entity], query: TemporalQuery
    ) -> dict[str, dict[str, Aggregated]]:
        """Per entity id and attribute IRI, the aggregations per bucket."""
        ...


class ContextBroker:
    """NGSI-LD operations over smartpole's own entities (read-only) and those other systems
    create (the ``ngsi_entities`` table), as one set per tenant."""

    def __init__(
        self,
        store: EntityStore,
        own: OwnSource | None = None,
        clock: Callable[[], int] = now_ms,
        listeners: list[ChangeListener] | None = None,
    ) -> None:
        self.store = store
        self.own = own
        self.clock = clock
        # told of every entity written, after the commit (the notifier wakes its delivery)
        self.listeners: list[ChangeListener] = listeners if listeners is not None else []

    def change_entity(
        self, who: Principal, entity_id: str, change: Callable[[Entity, int], Any]
    ) -> Any:
        """Apply ``change`` to a stored entity in one transaction, then tell the listeners.

        ``change`` gets the entity and the time to stamp what it changes with, read once the
        entity is locked (:meth:`Entity.next_stamp`): two writers in the same millisecond
        would otherwise stamp alike, and the second's change would look like no change at all
        (and not be written)."""
        written: list[Entity] = []

        def wrapped(entity: Entity) -> Any:
            modified = entity.modified_at
            result = change(entity, entity.next_stamp(self.clock()))
            if entity.modified_at != modified:  # a change that changed nothing tells no one
                written.append(entity)
            return result

        result = self.store.change(who.tenant_id, entity_id, wrapped)
        self.changed(who, written)
        return result

    def changed(self, who: Principal, entities: Sequence[Entity]) -> None:
        """Tell the listeners of entities just written."""
        if entities:
            for listener in self.listeners:
                listener(who.tenant_id, entities)

    def check_writable(self, entity_id: str) -> None:
        """OperationNotSupported for an id of smartpole's own (read-only) entities."""
        if self.own is not None and self.own.owns(entity_id):
            raise NgsiLdError(
                ProblemType.OPERATION_NOT_SUPPORTED,
                f"{entity_id} is one of smartpole's own poles or devices: read-only through "
                "NGSI-LD (change it through smartpole's registry)",
            )

    # Entities -----------------------------------------------------------------------------

    def create(self, who: Principal, body: Any, ctx: Context) -> Entity:
        """Create an entity (AlreadyExists when its id is taken)."""
        entity = parse_entity(body, ctx)
        self.check_writable(entity.id)
        now = self.clock()
        entity.created_at = entity.modified_at = now
        stamp_all(entity.attrs, now)
        self.store.create(who.tenant_id, entity)
        self.changed(who, [entity])
        return entity

    def retrieve(self, who: Principal, entity_id: str) -> Entity:
        """One entity (ResourceNotFound when there is none)."""
        check_id(entity_id)
        entity = self.retrieve_many(who, [entity_id]).get(entity_id)
        if entity is None:
            raise NgsiLdError.not_found(f"entity {entity_id} not found")
        return entity

    def query(self, who: Principal, query: EntityQuery) -> tuple[list[Entity], int]:
        """The page of matching entities (id order) and how many match in all."""
        return page_of(self.matching(who, query), query)

    def matching(self, who: Principal, query: EntityQuery) -> Iterator[Entity]:
        """Every entity the query matches, in id order (its limit and offset checked, not
        applied: :func:`page_of`)."""
        if query.is_empty():
            raise NgsiLdError.bad_data(
                "a query needs at least one of type, attrs, q, scopeQ, a geo-query or local=true"
            )
        if not 0 <= query.limit <= MAX_LIMIT:
            raise NgsiLdError.bad_data(f"limit must be between 0 and {MAX_LIMIT}")
        if query.offset < 0:
            raise NgsiLdError.bad_data("offset must not be negative")
        narrowed = EntityFilter(
            query.types, query.ids, query.id_pattern, query.geo.box() if query.geo else None
        )
        found = self.store.scan(who.tenant_id, narrowed)
        if self.own is not None:
            own = self.own.scan(who, narrowed)
            found = heapq.merge(own, found, key=lambda e: e.id) if own else found
        return (entity for entity in found if query.matches(entity))

    def linked(
        self,
        who: Principal,
        entities: Sequence[Entity],
        level: int,
        sees: Callable[[Entity], bool] = lambda _: True,
    ) -> dict[str, Entity]:
        """The entities the relationships of ``entities`` name, and theirs, ``level`` links
        deep (those the caller cannot see, or that do not exist, left out, and not followed:
        ``sees`` narrows what the tenant sees, for an open-data reader)."""
        found: dict[str, Entity] = {}
        seen = {e.id for e in entities}
        frontier = list(entities)
        for _ in range(level):
            ids = sorted(
                {
                    target
                    for e in frontier
                    for instances in e.attrs.values()
                    for a in instances
                    if a.kind in ("Relationship", "ListRelationship")
                    for target in (a.value if isinstance(a.value, list) else [a.value])
                    if isinstance(target, str)
                }
                - seen
            )
            seen.update(ids)
            reached = self.retrieve_many(who, ids[:MAX_LIMIT])
            frontier = [reached[i] for i in ids if i in reached and sees(reached[i])]
            found.update((e.id, e) for e in frontier)
        return found

    def retrieve_many(self, who: Principal, ids: Sequence[str]) -> dict[str, Entity]:
        """The entities of ``ids`` the caller sees, by id, read with one query per store
        (ids that are not URIs, or that name no entity, left out)."""
        own: list[str] = []
        kept: list[str] = []
        for entity_id in ids:
            try:
                check_id(entity_id)
            except NgsiLdError:
                continue
            (own if self.own is not None and self.own.owns(entity_id) else kept).append(entity_id)
        found: dict[str, Entity] = {}
        if kept:
            found.update((e.id, e) for e in self.store.scan(who.tenant_id, EntityFilter(ids=kept)))
        if own and self.own is not None:
            found.update((e.id, e) for e in self.own.scan(who, EntityFilter(ids=own)))
        return found

    def delete(self, who: Principal, entity_id: str) -> None:
        """Delete an entity (ResourceNotFound when there is none)."""
        check_id(entity_id)
        self.check_writable(entity_id)
        gone = self.store.delete_many(who.tenant_id, [entity_id])
        if not gone:
            raise NgsiLdError.not_found(f"entity {entity_id} not found")
        self.changed(who, list(gone.values()))

    def replace(self, who: Principal, entity_id: str, body: Any, ctx: Context) -> None:
        """Replace an entity's type and attributes, keeping its creation time."""
        check_id(entity_id)
        self.check_writable(entity_id)
        if isinstance(body, dict) and body.get("id", entity_id) != entity_id:
            raise NgsiLdError.bad_data("the body's id differs from the URL's")
        if isinstance(body, dict):
            body = {**body, "id": entity_id}
        new = parse_entity(body, ctx)

        def change(entity: Entity, now: int) -> None:
            stamp_all(new.attrs, now)
            entity.types = new.types
            entity.attrs = new.attrs
            entity.scopes = new.scopes
            entity.modified_at = now

        self.change_entity(who, entity_id, change)

    def merge(self, who: Principal, entity_id: str, body: Any, ctx: Context) -> None:
        """Merge attributes into an entity: new ones added, existing ones merged member by
        member, ``urn:ngsi-ld:null`` deleting one."""
        check_id(entity_id)
        self.check_writable(entity_id)
        if not isinstance(body, dict):
            raise NgsiLdError.bad_data("a merge needs a JSON object")
        if body.get("id", entity_id) != entity_id:
            raise NgsiLdError.bad_data("the body's id differs from the URL's")
        deleted = _nulls(body, ctx)
        kept = {n: v for n, v in body.items() if ctx.expand(n) not in deleted or n == "type"}
        attrs = parse_attributes(kept, ctx)
        types = (
            None
            if "type" not in body
            else parse_entity({"id": entity_id, "type": body["type"]}, ctx).types
        )

        def change(entity: Entity, now: int) -> None:
            for name, dataset in deleted.items():
                _drop(entity, name, dataset)
            for name, instances in attrs.items():
                for attribute in instances:
                    old = entity.instance(name, attribute.dataset_id)
                    if old is None:
                        entity.put(name, attribute.stamped(now))
                    else:
                        entity.put(name, _merged(old, attribute, now))
            if types is not None:
                entity.types = list(dict.fromkeys([*entity.types, *types]))
            if "scope" in body:
                entity.scopes = parse_entity({"id": entity_id, **body}, ctx).scopes
            entity.modified_at = now

        self.change_entity(who, entity_id, change)

    # Attributes ---------------------------------------------------------------------------

    def append(
        self, who: Principal, entity_id: str, body: Any, ctx: Context, *, overwrite: bool = True
    ) -> UpdateResult:
        """Add attributes (``overwrite`` False: existing ones are left alone and reported)."""
        check_id(entity_id)
        self.check_writable(entity_id)
        attrs = self._attrs_of(body, ctx, entity_id)
        scopes = _scopes_of(body)

        def change(entity: Entity, now: int) -> UpdateResult:
            result = UpdateResult()
            written, kept = entity.lacking(attrs) if not overwrite else (attrs, [])
            for name in kept:
                result.not_updated.append((ctx.compact(name), "attribute exists"))
            for name, instances in written.items():
                for attribute in instances:
                    entity.write(name, attribute, now)
                    result.updated.append(ctx.compact(name))
            _add_types(entity, body, ctx)
            if scopes is not None:  # replaced; with noOverwrite, added to
                kept_scopes = [] if overwrite else entity.scopes or []
                entity.scopes = list(dict.fromkeys([*kept_scopes, *scopes]))
            entity.modified_at = now
            return result

        result: UpdateResult = self.change_entity(who, entity_id, change)
        return result

    def update(self, who: Principal, entity_id: str, body: Any, ctx: Context) -> UpdateResult:
        """Replace attributes that exist (NGSI-LD Null deletes an instance); the others are
        reported as not updated."""
        check_id(entity_id)
        self.check_writable(entity_id)
        deleted = _nulls(body, ctx) if isinstance(body, dict) else {}
        if isinstance(body, dict) and deleted:
            body = {n: v for n, v in body.items() if ctx.expand(n) not in deleted}
        attrs = self._attrs_of(body, ctx, entity_id)
        scopes = _scopes_of(body)

        def change(entity: Entity, now: int) -> UpdateResult:
            result = UpdateResult()
            if scopes is not None:  # an entity's scope is replaced as a whole
                entity.scopes = scopes
                entity.modified_at = now
            if _add_types(entity, body, ctx):
                entity.modified_at = now
            for name, dataset in deleted.items():
                if _drop(entity, name, dataset):
                    result.updated.append(ctx.compact(name))
                else:
                    result.not_updated.append((ctx.compact(name), "attribute not found"))
            for name, instances in attrs.items():
                for attribute in instances:
                    if entity.instance(name, attribute.dataset_id) is None:
                        result.not_updated.append((ctx.compact(name), "attribute not found"))
                        continue
                    entity.write(name, attribute, now)
                    result.updated.append(ctx.compact(name))
            if result.updated:
                entity.modified_at = now
            return result

        result: UpdateResult = self.change_entity(who, entity_id, change)
        return result

    def patch_attribute(
        self, who: Principal, entity_id: str, name: str, body: Any, ctx: Context
    ) -> None:
        """Partial update of one attribute: its members merged (ResourceNotFound when the
        entity or the attribute is missing)."""
        check_id(entity_id)
        self.check_writable(entity_id)
        if not isinstance(body, dict):
            raise NgsiLdError.bad_data("an attribute update needs a JSON object")
        iri = ctx.expand(name)
        dataset = body.get("datasetId")

        def change(entity: Entity, now: int) -> None:
            old = entity.instance(iri, dataset)
            if old is None:
                raise NgsiLdError.not_found(f"entity {entity_id} has no attribute {name}")
            if _is_null_value(body):  # NGSI-LD Null: the instance is deleted
                _drop(entity, iri, dataset)
                entity.modified_at = now
                return
            raw = dict(body)
            raw.setdefault("type", old.kind)
            if all(m not in raw for m in ("value", "object", "languageMap", "json", "vocab")):
                raw.setdefault(_member(old), old.value)
            new = parse_attribute(name, raw, ctx)
            if new.kind != old.kind:
                raise NgsiLdError.bad_data(
                    f"attribute {name} is a {old.kind}: a partial update cannot make it a "
                    f"{new.kind} (replace the attribute instead)"
                )
            entity.put(iri, _merged(old, new, now))
            entity.modified_at = now

        self.change_entity(who, entity_id, change)

    def replace_attribute(
        self, who: Principal, entity_id: str, name: str, body: Any, ctx: Context
    ) -> None:
        """Replace one attribute instance as a whole (ResourceNotFound when missing)."""
        check_id(entity_id)
        self.check_writable(entity_id)
        iri = ctx.expand(name)
        new = parse_attribute(name, body, ctx)

        def change(entity: Entity, now: int) -> None:
            old = entity.instance(iri, new.dataset_id)
            if old is None:
                raise NgsiLdError.not_found(f"entity {entity_id} has no attribute {name}")
            entity.put(iri, new.stamped(now, old.created_at))
            entity.modified_at = now

        self.change_entity(who, entity_id, change)

    def delete_attribute(
        self,
        who: Principal,
        entity_id: str,
        name: str,
        ctx: Context,
        *,
        dataset_id: str | None = None,
        delete_all: bool = False,
    ) -> None:
        """Delete an attribute's default instance, one dataset or all of them."""
        check_id(entity_id)
        self.check_writable(entity_id)
        iri = ctx.expand(name)

        def change(entity: Entity, now: int) -> None:
            instances = entity.attrs.get(iri)
            if not instances:
                raise NgsiLdError.not_found(f"entity {entity_id} has no attribute {name}")
            if delete_all:
                del entity.attrs[iri]
            else:
                kept = [a for a in instances if a.dataset_id != dataset_id]
                if len(kept) == len(instances):
                    raise NgsiLdError.not_found(
                        f"attribute {name} of {entity_id} has no instance of that datasetId"
                    )
                if kept:
                    entity.attrs[iri] = kept
                else:
                    del entity.attrs[iri]
            entity.modified_at = now

        self.change_entity(who, entity_id, change)

    def _attrs_of(self, body: Any, ctx: Context, entity_id: str) -> dict[str, list[Attribute]]:
        if not isinstance(body, dict):
            raise NgsiLdError.bad_data("attributes must come as a JSON object")
        if body.get("id", entity_id) != entity_id:
            raise NgsiLdError.bad_data("the body's id differs from the URL's")
        return parse_attributes(body, ctx)

    # Types and attributes -----------------------------------------------------------------

    def types(self, who: Principal) -> dict[str, set[str]]:
        """Every entity type with the attributes its entities have."""
        found = self.store.types(who.tenant_id)
        for type_iri, attrs in (self.own.types(who) if self.own is not None else {}).items():
            found.setdefault(type_iri, set()).update(attrs)
        return found


def _member(attribute: Attribute) -> str:
    return KINDS[attribute.kind]


def _nulls(body: dict[str, Any], ctx: Context) -> dict[str, str | None]:
    """The attributes a body sets to NGSI-LD Null, each with the dataset id of the instance
    that deletes (None: the default instance)."""
    deleted: dict[str, str | None] = {}
    for n, v in body.items():
        if n not in ("id", "type", "scope", "@context") and (v == NULL or _is_null_value(v)):
            dataset = v.get("datasetId") if isinstance(v, dict) else None
            deleted[ctx.expand(n)] = (
                None if dataset is None else check_id(dataset, f"{n}.datasetId")
            )
    return deleted


def _drop(entity: Entity, name: str, dataset: str | None) -> bool:
    """Delete the instance of ``name`` with that dataset id; False when there was none."""
    instances = entity.attrs.get(name, [])
    left = [a for a in instances if a.dataset_id != dataset]
    if len(left) == len(instances):
        return False
    if left:
        entity.attrs[name] = left
    else:
        entity.attrs.pop(name, None)
    return True


def _is_null_value(raw: Any) -> bool:
    """An attribute whose value is NGSI-LD Null (a LanguageProperty's: ``{"@none": null}``)."""
    if not isinstance(raw, dict):
        return False
    language_map = raw.get("languageMap")
    return (
        raw.get("value") == NULL
        or raw.get("object") == NULL
        or (isinstance(language_map, dict) and language_map.get("@none") == NULL)
    )


def _merged(old: Attribute, new: Attribute, now: int) -> Attribute:
    """``new``'s members over ``old``'s; sub-attributes merged by name."""
    merged = Attribute(
        new.kind,
        new.value,
        new.dataset_id,
        new.observed_at if new.observed_at is not None else old.observed_at,
        new.unit_code if new.unit_code is not None else old.unit_code,
        {**old.sub, **{k: v.stamped(now) for k, v in new.sub.items()}},
        old.created_at,
        now,
    )
    return merged


def _scopes_of(body: Any) -> list[str] | None:
    """The ``scope`` an append or an update body sets (None: it has none)."""
    if not isinstance(body, dict) or body.get("scope") is None:
        return None
    return parse_scopes(body["scope"])


def _add_types(entity: Entity, body: Any, ctx: Context) -> bool:
    """Add the types an append or an update body names (an entity's types are only ever
    added to); whether it named any it did not have."""
    if not isinstance(body, dict) or "type" not in body:
        return False
    extra = parse_entity({"id": entity.id, "type": body["type"]}, ctx).types
    before = len(entity.types)
    entity.types = list(dict.fromkeys([*entity.types, *extra]))
    return len(entity.types) > before
