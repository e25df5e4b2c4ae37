"""An NGSI-LD entity query (clause 5.7.2): its filters, names expanded, and its page."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from smartpole.ngsild.entities import Entity
from smartpole.ngsild.geo import GeoQuery
from smartpole.ngsild.patterns import Pattern
from smartpole.ngsild.query import Predicate

__all__ = ["MAX_LIMIT", "EntityQuery", "page_of"]

MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class EntityQuery:
    """A query's filters, names expanded."""

    types: Sequence[str] | None = None
    ids: Sequence[str] | None = None
    id_pattern: Pattern | None = None
    attrs: frozenset[str] | None = None
    q: Predicate | None = None
    scope_q: Predicate | None = None
    geo: GeoQuery | None = None
    limit: int = 20
    offset: int = 0
    type_q: Predicate | None = None  # the exact type selection (``types``: every type it names)
    local: bool = False  # ``local=true``: every entity may be asked for, without a filter

    def is_empty(self) -> bool:
        """True when the query names none of what the standard asks for at least one of
        (clause 5.7.2: type, attrs, q, a geo-query, or ``local=true``; ids alone are not)."""
        filters = (self.types, self.attrs, self.q, self.scope_q, self.geo)
        return all(v is None for v in filters) and not self.local

    def matches(self, entity: Entity) -> bool:
        """Whether the entity passes the filters the store did not apply."""
        if self.type_q is not None and not self.type_q(entity):
            return False
        if self.attrs is not None and not any(a in entity.attrs for a in self.attrs):
            return False
        if self.q is not None and not self.q(entity):
            return False
        if self.scope_q is not None and not self.scope_q(entity):
            return False
        return self.geo is None or self.geo.locates(entity.attrs)


def page_of(
    entities: Iterable[Entity], query: EntityQuery, *, count: bool = True
) -> tuple[list[Entity], int]:
    """The query's page (``offset``, ``limit``) of entities, and how many there are (without
    ``count``, counted only as far as the page: the rest is not read)."""
    page: list[Entity] = []
    total = 0
    for entity in entities:
        if total >= query.offset + query.limit:
            if not count:
                break
        elif total >= query.offset:
            page.append(entity)
        total += 1
    return page, total
