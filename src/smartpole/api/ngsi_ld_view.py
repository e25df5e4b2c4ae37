"""How an NGSI-LD answer shows its entities: one :class:`View` per request, from its
``options``/``format``, ``attrs``, ``pick``/``omit``, ``datasetId`` and ``lang``, used alike by
retrieval, queries (GET and POST), joins and GeoJSON."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from smartpole.api.ngsi_ld_http import LOCATION, Selection, options, selection
from smartpole.ngsild.context import Context
from smartpole.ngsild.entities import Entity, Representation, render

__all__ = ["View", "view_of"]


@dataclass(frozen=True, slots=True)
class View:
    """Entities shown in ``ctx``, as ``representation`` (with system attributes when
    ``sys_attrs``), narrowed to ``attrs`` (IRIs; None: all) and to ``chosen``."""

    ctx: Context
    representation: str = Representation.NORMALIZED
    sys_attrs: bool = False
    attrs: frozenset[str] | None = None
    chosen: Selection = field(default_factory=Selection)

    @property
    def key_values(self) -> bool:
        return self.representation == Representation.KEY_VALUES

    def show(self, entity: Entity, *, asked: bool = True) -> dict[str, Any]:
        """An entity as the answer shows it; ``attrs``, ``pick`` and ``omit`` narrow the
        entities ``asked`` for only, not those a join adds."""
        shown = render(
            entity,
            self.ctx,
            representation=self.representation,
            sys_attrs=self.sys_attrs,
            attrs=self.attrs if asked else None,
            datasets=self.chosen.datasets,
            lang=self.chosen.lang,
        )
        return self.chosen.project(shown, self.ctx) if asked else shown

    def features(self, entities: Sequence[Entity], geometry: str = LOCATION) -> dict[str, Any]:
        """The entities as a GeoJSON FeatureCollection: each one's ``geometry`` the value of
        its GeoProperty of that name (None without one), the rest as it is shown."""
        prop = self.ctx.expand(geometry)
        features = []
        for entity in entities:
            shown = self.show(entity)
            located = next((a for a in entity.attrs.get(prop, ()) if a.kind == "GeoProperty"), None)
            features.append(
                {
                    "id": entity.id,
                    "type": "Feature",
                    "geometry": located.value if located else None,
                    "properties": {k: v for k, v in shown.items() if k != "id"},
                }
            )
        return {"type": "FeatureCollection", "features": features}


def view_of(request: Request, ctx: Context, attrs: Iterable[str] | None) -> View:
    """The view a request asks for; ``attrs``: the attribute IRIs it narrows to."""
    representation, sys_attrs = options(request)
    narrowed = frozenset(attrs) if attrs is not None else None
    return View(ctx, representation, sys_attrs, narrowed, selection(request))
