"""NGSI-LD batch operations (``/entityOperations/…``): many entities in one request, each one's
outcome reported (a 207 when some failed), the others written in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from smartpole.ngsild.broker import ContextBroker, stamp_all
from smartpole.ngsild.context import Context
from smartpole.ngsild.entities import Entity, check_id, parse_attributes, parse_entity
from smartpole.ngsild.errors import NgsiLdError
from smartpole.ngsild.store import Writes
from smartpole.registry.access import Principal

__all__ = ["MAX_BATCH", "BatchOperations", "BatchResult"]

MAX_BATCH = 1000


@dataclass(slots=True)
class BatchResult:
    """A batch operation's outcome per entity."""

    success: list[str] = field(default_factory=list)
    errors: list[tuple[str, NgsiLdError]] = field(default_factory=list)


class BatchOperations:
    """Batch create, upsert, update and delete over one context broker's entities."""

    def __init__(self, broker: ContextBroker) -> None:
        self.broker = broker

    def batch_create(self, who: Principal, bodies: Any, ctx: Context) -> BatchResult:
        """Create many entities; each that fails is reported, the others are created."""
        result = BatchResult()
        parsed = self._parse_batch(bodies, ctx, result, unique=True)
        now = self.broker.clock()
        for entity in parsed:
            entity.created_at = entity.modified_at = now
            stamp_all(entity.attrs, now)

        def plan(existing: dict[str, Entity]) -> Writes:
            return Writes(created=[e for e in parsed if e.id not in existing])

        writes = self.broker.store.write_many(who.tenant_id, [e.id for e in parsed], plan)
        self.broker.changed(who, writes.created)
        made = {e.id for e in writes.created}
        for entity in parsed:
            if entity.id in made:
                result.success.append(entity.id)
            else:
                result.errors.append(
                    (entity.id, NgsiLdError.exists(f"entity {entity.id} exists already"))
                )
        return result

    def batch_upsert(
        self, who: Principal, bodies: Any, ctx: Context, *, replace: bool = True
    ) -> tuple[BatchResult, list[str]]:
        """Create the entities that do not exist, and replace (or update, ``replace`` False)
        those that do, all in one transaction. Returns the outcome and the ids created."""
        result = BatchResult()
        parsed = self._parse_batch(bodies, ctx, result)
        now = self.broker.clock()
        for entity in parsed:
            stamp_all(entity.attrs, now)

        def plan(existing: dict[str, Entity]) -> Writes:
            writes = Writes()
            for entity in parsed:
                old = existing.get(entity.id)
                if old is None:
                    entity.created_at = entity.modified_at = now
                    writes.created.append(entity)
                    continue
                types_before = list(old.types)
                at = old.next_stamp(now)
                if replace:
                    stamp_all(entity.attrs, at)
                    old.types, old.attrs, old.scopes = entity.types, entity.attrs, entity.scopes
                else:
                    old.write_all(entity.attrs, at)
                    old.types = list(dict.fromkeys([*old.types, *entity.types]))
                old.modified_at = at
                writes.changed.append(old)
                if old.types != types_before:
                    writes.retyped.add(old.id)
            return writes

        writes = self.broker.store.write_many(who.tenant_id, [e.id for e in parsed], plan)
        self.broker.changed(who, [*writes.created, *writes.changed])
        result.success += [e.id for e in parsed]
        return result, [e.id for e in writes.created]

    def batch_update(
        self, who: Principal, bodies: Any, ctx: Context, *, overwrite: bool = True
    ) -> BatchResult:
        """Update attributes (and add types) of existing entities, all in one transaction;
        ``overwrite`` False (``noOverwrite``) adds only the attributes an entity lacks, and
        reports the entities some of whose attributes were kept."""
        result = BatchResult()
        parsed = self._parse_batch(bodies, ctx, result, id_only=True)
        now = self.broker.clock()
        kept: dict[str, list[str]] = {}
        found: set[str] = set()

        def plan(existing: dict[str, Entity]) -> Writes:
            writes = Writes()
            kept.clear()
            found.clear()
            found.update(existing)
            for entity in parsed:
                old = existing.get(entity.id)
                if old is None:
                    continue
                attrs = entity.attrs
                if not overwrite:
                    attrs, kept[old.id] = old.lacking(attrs)
                types_before = list(old.types)
                old.types = list(dict.fromkeys([*old.types, *entity.types]))
                if old.types != types_before:
                    writes.retyped.add(old.id)
                if attrs or old.id in writes.retyped:
                    at = old.next_stamp(now)
                    old.write_all(attrs, at)
                    old.modified_at = at
                    writes.changed.append(old)
            return writes

        writes = self.broker.store.write_many(who.tenant_id, [e.id for e in parsed], plan)
        self.broker.changed(who, writes.changed)
        for entity in parsed:
            if kept.get(entity.id):
                names = ", ".join(ctx.compact(n) for n in kept[entity.id])
                result.errors.append(
                    (entity.id, NgsiLdError.bad_data(f"not overwritten (noOverwrite): {names}"))
                )
            elif entity.id in found:
                result.success.append(entity.id)
            else:
                result.errors.append(
                    (entity.id, NgsiLdError.not_found(f"entity {entity.id} not found"))
                )
        return result

    def batch_merge(self, who: Principal, bodies: Any, ctx: Context) -> BatchResult:
        """Merge into many existing entities, each as ``PATCH /entities/{id}`` would
        (``urn:ngsi-ld:null`` deletes an attribute), each in its own transaction."""
        if not isinstance(bodies, list) or not bodies:
            raise NgsiLdError.bad_data("a batch needs a non-empty array of entities")
        if len(bodies) > MAX_BATCH:
            raise NgsiLdError.bad_data(f"a batch holds at most {MAX_BATCH} entities")
        result = BatchResult()
        for body in bodies:
            entity_id = body.get("id") if isinstance(body, dict) else None
            if _misplaced_context(body):
                result.errors.append((str(entity_id), _context_misplaced()))
                continue
            try:
                self.broker.merge(who, check_id(entity_id), body, ctx)
            except NgsiLdError as err:
                result.errors.append((str(entity_id), err))
                continue
            result.success.append(str(entity_id))
        return result

    def batch_delete(self, who: Principal, ids: Any) -> BatchResult:
        """Delete entities by id."""
        if not isinstance(ids, list) or not ids:
            raise NgsiLdError.bad_data("a batch delete needs a non-empty array of entity ids")
        if len(ids) > MAX_BATCH:
            raise NgsiLdError.bad_data(f"a batch holds at most {MAX_BATCH} entities")
        result = BatchResult()
        valid: list[str] = []
        seen: set[str] = set()
        for raw in ids:
            if isinstance(raw, str) and raw in seen:  # the second time, it is gone already
                result.errors.append((raw, NgsiLdError.not_found(f"{raw} is twice")))
                continue
            if isinstance(raw, str):
                seen.add(raw)
            try:
                valid.append(check_id(raw))
                self.broker.check_writable(raw)
            except NgsiLdError as err:
                if valid and valid[-1] == raw:
                    valid.pop()
                result.errors.append((str(raw), err))
        found = self.broker.store.delete_many(who.tenant_id, valid)
        self.broker.changed(who, list(found.values()))
        for entity_id in valid:
            if entity_id in found:
                result.success.append(entity_id)
            else:
                result.errors.append(
                    (entity_id, NgsiLdError.not_found(f"entity {entity_id} not found"))
                )
        return result

    def _parse_batch(
        self,
        bodies: Any,
        ctx: Context,
        result: BatchResult,
        *,
        id_only: bool = False,
        unique: bool = False,
    ) -> list[Entity]:
        if not isinstance(bodies, list) or not bodies:
            raise NgsiLdError.bad_data("a batch needs a non-empty array of entities")
        if len(bodies) > MAX_BATCH:
            raise NgsiLdError.bad_data(f"a batch holds at most {MAX_BATCH} entities")
        parsed: dict[str, Entity] = {}
        for body in bodies:
            entity_id = body.get("id") if isinstance(body, dict) else None
            if _misplaced_context(body):
                result.errors.append((str(entity_id), _context_misplaced()))
                continue
            try:
                if id_only and isinstance(body, dict) and "type" not in body:
                    entity = Entity(check_id(entity_id), [], parse_attributes(body, ctx))
                else:
                    entity = parse_entity(body, ctx)
            except NgsiLdError as err:
                result.errors.append((str(entity_id), err))
                continue
            if self.broker.own is not None and self.broker.own.owns(entity.id):
                try:
                    self.broker.check_writable(entity.id)
                except NgsiLdError as err:
                    result.errors.append((entity.id, err))
                continue
            if entity.id in parsed and unique:  # a create: the second one exists already
                result.errors.append((entity.id, NgsiLdError.exists(f"{entity.id} is twice")))
                continue
            if entity.id in parsed:  # the same id twice: the later one wins, as in a loop
                parsed[entity.id].attrs.update(entity.attrs)
                continue
            parsed[entity.id] = entity
        return list(parsed.values())


def _misplaced_context(body: Any) -> bool:
    """An entity of a batch whose @context is not the request's (the HTTP layer leaves it in
    the entity for the batch to refuse that entity alone)."""
    return isinstance(body, dict) and "@context" in body


def _context_misplaced() -> NgsiLdError:
    return NgsiLdError.bad_data(
        "this entity's @context does not fit the request: application/json takes it in a Link "
        "header, application/ld+json in every entity of the batch, the same"
    )
