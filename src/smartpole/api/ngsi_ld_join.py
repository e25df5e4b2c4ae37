"""Linked entity retrieval (``join``, clause 4.5.23) for the NGSI-LD API: the entities a
Relationship names shown inside it (``inline``: an ``entity`` member, or in place of the
object in keyValues) or after the entities asked for (``flat``: one array), ``joinLevel`` links
deep (1 to 5; default 1)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from smartpole.ngsild.entities import Entity
from smartpole.ngsild.errors import NgsiLdError

__all__ = ["Join", "join_of"]

MAX_JOIN_LEVEL = 5
Shown = Callable[[Entity], dict[str, Any]]
"""Renders one entity as the answer shows it (representation, attrs, lang…)."""


@dataclass(frozen=True, slots=True)
class Join:
    """How linked entities are shown."""

    kind: str  # "inline" or "flat"
    level: int

    def apply(
        self, shown: list[dict[str, Any]], linked: dict[str, Entity], render: Shown, keys: bool
    ) -> list[dict[str, Any]]:
        """The answer's entities with their linked ones (``keys``: keyValues)."""
        if self.kind == "flat":
            present = {e.get("id") for e in shown}
            return shown + [render(e) for i, e in linked.items() if i not in present]
        return [self._inline(e, linked, render, keys, self.level) for e in shown]

    def _inline(
        self,
        shown: dict[str, Any],
        linked: dict[str, Entity],
        render: Shown,
        keys: bool,
        depth: int,
    ) -> dict[str, Any]:
        if depth == 0:
            return shown

        def nested(target: Any) -> dict[str, Any] | None:
            entity = linked.get(target) if isinstance(target, str) else None
            if entity is None:
                return None
            return self._inline(render(entity), linked, render, keys, depth - 1)

        out = dict(shown)
        for name, value in shown.items():
            if name in ("id", "type", "@context"):
                continue
            if keys:
                if isinstance(value, str) and (entity := nested(value)) is not None:
                    out[name] = entity
                continue
            instances = value if isinstance(value, list) else [value]
            joined = []
            for item in instances:
                if (
                    isinstance(item, dict)
                    and "object" in item
                    and not isinstance(item["object"], list)
                ):
                    entity = nested(item["object"])
                    if entity is not None:
                        item = {**item, "entity": entity}
                joined.append(item)
            out[name] = joined if isinstance(value, list) else joined[0]
        return out


def join_of(request: Request) -> Join | None:
    """The ``join`` and ``joinLevel`` of a request (None: no join)."""
    kind = request.query_params.get("join")
    raw_level = request.query_params.get("joinLevel")
    if kind is None:
        if raw_level is not None:
            raise NgsiLdError.bad_data("joinLevel needs join")
        return None
    if kind not in ("inline", "flat", "@none"):
        raise NgsiLdError.bad_data(f"join is inline, flat or @none, not {kind!r}")
    try:
        level = int(raw_level) if raw_level is not None else 1
    except ValueError:
        raise NgsiLdError.bad_data(f"joinLevel must be a whole number, not {raw_level!r}") from None
    if not 1 <= level <= MAX_JOIN_LEVEL:
        raise NgsiLdError.bad_data(f"joinLevel is between 1 and {MAX_JOIN_LEVEL}")
    if kind == "@none":
        return None
    return Join(kind, level)
