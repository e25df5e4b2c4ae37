"""Rule bodies (JSON or YAML): their format, and how they are checked and compiled.

A rule body::

    name: pole-tilt
    scope: {kinds: [tilt], districts: [Futian], tags: [bridge], poles: [FT-0001],
            tenants: [lighting], polygon: {type: Polygon, coordinates: [...]}}
    condition: {key: tilt, op: ">", value: 5, for: 2m}
    actions:
      - alarm: {type: pole_tilt, severity: major, originator: pole, propagate: [police]}
      - command: {kind: lamp, target: {within_m: 100}, method: setDim, params: {level: 100},
                  expires: 30m}
      - webhook: city-ops
      - work_order: {team: structures, note: check the foundation}

Conditions: ``{key, op, value}`` (``op`` one of ``> >= < <= == != between``; ``aqi: true``
compares the HJ 633-2012 individual AQI), ``{rate: {key, op, value, per}}``,
``{missing: {key?, after}}``, ``{offline: true}``, ``{all: [...]}``, ``{any: [...]}``,
``{not: {...}}``, ``{window: {from, to}}`` (``HH:MM``, ``sunset``, ``sunrise-30m``); any of them
takes ``for: 10m`` (hold that long) and ``hold: 5m`` (keep holding that long after it stops); a
threshold takes ``clear`` (stop only past this value: hysteresis). Every problem is reported
at once, with its location.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from shapely.prepared import prep

from smartpole.errors import InvalidInput
from smartpole.hub.rules.conditions import has_state, is_clocked, is_timed, number_tree
from smartpole.hub.rules.model import Rule, RuleScope
from smartpole.hub.rules.parse_actions import ActionParser
from smartpole.hub.rules.parse_conditions import ConditionParser
from smartpole.hub.rules.problems import Loc, Lookup, Problems
from smartpole.model.geo import polygon_of
from smartpole.model.types import DeviceKind

__all__ = ["compile_rule"]

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
SCOPE_FIELDS = {"kinds", "tenants", "poles", "districts", "tags", "devices", "polygon"}


def _scope(p: Problems, body: Any, tenant_id: Lookup, pole_id: Lookup) -> RuleScope:
    """The devices a rule watches, from its ``scope`` (None: every device it may see)."""
    loc: Loc = ["scope"]
    if body is None:
        return RuleScope()
    if not isinstance(body, dict):
        p.err(loc, "must be an object")
        return RuleScope()
    known = SCOPE_FIELDS
    for extra in sorted(set(body) - known):
        p.err([*loc, extra], f"unknown scope field; use {', '.join(sorted(known))}")
    kinds = p.strs(body.get("kinds"), [*loc, "kinds"])
    for i, k in enumerate(kinds):
        if k not in DeviceKind.__members__.values():
            p.err([*loc, "kinds", i], f"unknown device kind {k!r}")
    tenants = p.ids(body.get("tenants"), [*loc, "tenants"], tenant_id, "tenant")
    poles = p.ids(body.get("poles"), [*loc, "poles"], pole_id, "pole")
    devices = body.get("devices") or []
    if not isinstance(devices, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) for d in devices
    ):
        p.err([*loc, "devices"], "must be a list of device ids")
        devices = []
    polygon = None
    if body.get("polygon") is not None:
        try:
            polygon = prep(polygon_of(body["polygon"]))
        except InvalidInput as e:
            p.err([*loc, "polygon"], e.detail)
    return RuleScope(
        kinds=frozenset(kinds),
        tenants=frozenset(tenants),
        poles=frozenset(poles),
        districts=frozenset(p.strs(body.get("districts"), [*loc, "districts"])),
        tags=frozenset(p.strs(body.get("tags"), [*loc, "tags"])),
        devices=frozenset(devices),
        polygon=polygon,
    )


def compile_rule(
    body: Any,
    *,
    rule_id: int = 0,
    tenant_id: int = 0,
    city_wide: bool = False,
    tenant_lookup: Lookup = lambda _: None,
    pole_lookup: Lookup = lambda _: None,
    webhook_exists: Callable[[str], bool] = lambda _: False,
) -> Rule:
    """Check a rule body and build the rule; InvalidInput lists every problem found."""
    p = Problems()
    if not isinstance(body, dict):
        raise InvalidInput("a rule is an object", errors=[{"loc": [], "msg": "not an object"}])
    known = {"name", "description", "enabled", "scope", "condition", "actions"}
    for extra in sorted(set(body) - known):
        p.err([extra], f"unknown field; a rule has {', '.join(sorted(known))}")
    name = body.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        p.err(["name"], "is required: letters, digits, _ . : - (1-128)")
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        p.err(["enabled"], "must be true or false")
    scope = _scope(p, body.get("scope"), tenant_lookup, pole_lookup)
    condition = ConditionParser(p).condition(body.get("condition"), ["condition"])
    actions = ActionParser(p, tenant_lookup).actions(body.get("actions"), webhook_exists)
    if p.errors:
        raise InvalidInput(f"invalid rule {name!r}: {len(p.errors)} problem(s)", errors=p.errors)
    number_tree(condition)
    return Rule(
        id=rule_id,
        tenant_id=tenant_id,
        name=str(name),
        enabled=bool(enabled),
        scope=scope,
        condition=condition,
        actions=tuple(actions),
        city_wide=city_wide,
        keys=frozenset(condition.keys()),
        timed=is_timed(condition),
        clocked=is_clocked(condition),
        stateful=has_state(condition),
    )
