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

import builtins
import re
from collections.abc import Callable
from typing import Any

from shapely.prepared import prep

from smartpole.errors import InvalidInput
from smartpole.hub.alarms.store import Severity
from smartpole.hub.aqi import BREAKPOINTS
from smartpole.hub.rules.conditions import (
    OPS,
    All,
    Any_,
    Condition,
    For,
    Hold,
    Missing,
    Not,
    Offline,
    Rate,
    Threshold,
    TimePoint,
    Window,
    has_offline,
    has_state,
    is_timed,
    number_tree,
)
from smartpole.hub.rules.store import (
    DEFAULT_COMMAND_EXPIRY_MS,
    Action,
    AlarmAction,
    CommandAction,
    Rule,
    RuleScope,
    WebhookAction,
    WorkOrderAction,
)
from smartpole.model.types import DeviceKind, key_label, key_problem
from smartpole.registry.geo import _polygon as polygon_of

__all__ = ["compile_rule", "parse_duration"]

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, None: 1000, "m": 60_000, "min": 60_000, "h": 3_600_000}
_CLOCK_RE = re.compile(r"^(\d{1,2}):(\d{2})$")
_SUN_RE = re.compile(r"^(sunrise|sunset)\s*(?:([+-])\s*(\d+)\s*(m|min|h)?)?$")
MAX_RADIUS_M = 5_000.0
MAX_COMMAND_EXPIRY_MS = 86_400_000  # the control layer's own limit for a persistent command
Errors = builtins.list[dict[str, Any]]
Lookup = Callable[[str], int | None]


def parse_duration(value: Any) -> int:
    """Milliseconds of ``"10m"``, ``"30s"``, ``"2h"``, ``"1d"``, ``"500ms"`` or seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like '10m'")
    if isinstance(value, int | float):
        ms = int(value * 1000)
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        unit = m.group(2)
        ms = int(float(m.group(1)) * (86_400_000 if unit == "d" else _UNIT_MS[unit]))
    else:
        raise ValueError(f"{value!r} is not a duration like '10m', '30s', '2h'")
    if ms <= 0:
        raise ValueError("a duration must be positive")
    return ms


CLEAR_HELP = {
    ">": "for > and >= a number at or below the value",
    ">=": "for > and >= a number at or below the value",
    "<": "for < and <= a number at or above the value",
    "<=": "for < and <= a number at or above the value",
    "between": "for between [low, high] around the value's range",
}


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _clears(op: str, value: Any, clear: Any) -> bool:
    """Whether ``clear`` widens the threshold (hysteresis), so that what raised it holds."""
    if op == "between":
        return (
            isinstance(clear, builtins.list)
            and len(clear) == 2
            and all(_is_number(c) for c in clear)
            and isinstance(value, builtins.list)
            and len(value) == 2
            and clear[0] <= value[0]
            and clear[1] >= value[1]
        )
    if not _is_number(clear) or not _is_number(value):
        return False
    if op in (">", ">="):
        return bool(clear <= value)
    if op in ("<", "<="):
        return bool(clear >= value)
    return False


def _time_point(value: Any) -> TimePoint:
    text = str(value).strip().lower()
    if m := _CLOCK_RE.match(text):
        h, mi = int(m.group(1)), int(m.group(2))
        if h < 24 and mi < 60:
            return TimePoint(minutes=h * 60 + mi)
    if m := _SUN_RE.match(text):
        offset = int(m.group(3) or 0) * (60 if m.group(4) == "h" else 1)
        return TimePoint(minutes=-offset if m.group(2) == "-" else offset, sun=m.group(1))
    raise ValueError(f"{value!r} is not a time like '22:00', 'sunset' or 'sunrise-30m'")


class _Parser:
    """Walks a rule body, collecting every error with its location."""

    def __init__(self, tenant_id: Lookup, pole_id: Lookup) -> None:
        self.errors: Errors = []
        self.tenant_id = tenant_id
        self.pole_id = pole_id

    def err(self, loc: builtins.list[Any], msg: str) -> None:
        self.errors.append({"loc": loc, "msg": msg})

    def strs(self, value: Any, loc: builtins.list[Any]) -> builtins.list[str]:
        if value is None:
            return []
        if not isinstance(value, builtins.list) or not all(isinstance(v, str) for v in value):
            self.err(loc, "must be a list of strings")
            return []
        return value

    def scope(self, body: Any) -> RuleScope:
        loc: builtins.list[Any] = ["scope"]
        if body is None:
            return RuleScope()
        if not isinstance(body, dict):
            self.err(loc, "must be an object")
            return RuleScope()
        known = {"kinds", "tenants", "poles", "districts", "tags", "devices", "polygon"}
        for extra in sorted(set(body) - known):
            self.err([*loc, extra], f"unknown scope field; use {', '.join(sorted(known))}")
        kinds = self.strs(body.get("kinds"), [*loc, "kinds"])
        for i, k in enumerate(kinds):
            if k not in DeviceKind.__members__.values():
                self.err([*loc, "kinds", i], f"unknown device kind {k!r}")
        tenants = self._ids(body.get("tenants"), [*loc, "tenants"], self.tenant_id, "tenant")
        poles = self._ids(body.get("poles"), [*loc, "poles"], self.pole_id, "pole")
        devices = body.get("devices") or []
        if not isinstance(devices, builtins.list) or not all(
            isinstance(d, int) and not isinstance(d, bool) for d in devices
        ):
            self.err([*loc, "devices"], "must be a list of device ids")
            devices = []
        polygon = None
        if body.get("polygon") is not None:
            try:
                polygon = prep(polygon_of(body["polygon"]))
            except InvalidInput as e:
                self.err([*loc, "polygon"], e.detail)
        return RuleScope(
            kinds=frozenset(kinds),
            tenants=frozenset(tenants),
            poles=frozenset(poles),
            districts=frozenset(self.strs(body.get("districts"), [*loc, "districts"])),
            tags=frozenset(self.strs(body.get("tags"), [*loc, "tags"])),
            devices=frozenset(devices),
            polygon=polygon,
        )

    def _ids(
        self, value: Any, loc: builtins.list[Any], lookup: Lookup, what: str
    ) -> builtins.list[int]:
        out = []
        for i, name in enumerate(self.strs(value, loc)):
            found = lookup(name)
            if found is None:
                self.err([*loc, i], f"no {what} {name!r}")
            else:
                out.append(found)
        return out

    def condition(self, body: Any, loc: builtins.list[Any]) -> Condition:
        node = self._bare(body, loc)
        if isinstance(body, dict) and "for" in body:
            try:
                node = For(node, parse_duration(body["for"]), from_start=has_offline(node))
            except ValueError as e:
                self.err([*loc, "for"], str(e))
        if isinstance(body, dict) and "hold" in body:
            try:
                node = Hold(node, parse_duration(body["hold"]))
            except ValueError as e:
                self.err([*loc, "hold"], str(e))
        return node

    def _bare(self, body: Any, loc: builtins.list[Any]) -> Condition:
        never = Threshold("_", "==", None)
        if not isinstance(body, dict):
            self.err(loc, "a condition is an object")
            return never
        forms = [f for f in ("key", "rate", "missing", "offline", "all", "any", "not", "window")]
        present = [f for f in forms if f in body]
        if len(present) != 1:
            self.err(loc, f"needs exactly one of {', '.join(forms)}; found {present or 'none'}")
            return never
        form = present[0]
        allowed = {form, "for", "hold"} | (
            {"op", "value", "aqi", "clear"} if form == "key" else set()
        )
        for extra in sorted(set(body) - allowed):
            self.err([*loc, extra], f"not allowed in a {form!r} condition")
        if form == "key":
            return self._threshold(body, loc)
        if form in ("all", "any"):
            parts = body[form]
            if not isinstance(parts, builtins.list) or not parts:
                self.err([*loc, form], "must be a non-empty list of conditions")
                return never
            built = [self.condition(p, [*loc, form, i]) for i, p in enumerate(parts)]
            return All(built) if form == "all" else Any_(built)
        if form == "not":
            return Not(self.condition(body["not"], [*loc, "not"]))
        if form == "offline":
            if body["offline"] is not True:
                self.err([*loc, "offline"], "write 'offline: true'")
            return Offline()
        if form == "rate":
            return self._rate(body["rate"], [*loc, "rate"])
        if form == "missing":
            return self._missing(body["missing"], [*loc, "missing"])
        return self._window(body["window"], [*loc, "window"])

    def _key(self, key: Any, loc: builtins.list[Any]) -> str:
        problem = key_problem(key)
        if problem is not None or not isinstance(key, str):
            self.err(loc, f"must be a telemetry key: {key_label(key)} {problem}")
            return "_"
        return key

    def _op_value(self, body: dict[str, Any], loc: builtins.list[Any]) -> tuple[str, Any]:
        op, value = body.get("op"), body.get("value")
        if op not in OPS:
            self.err([*loc, "op"], f"must be one of {' '.join(OPS)}")
            return "==", value
        if "value" not in body:
            self.err([*loc, "value"], "is required")
        elif op == "between":
            ok = (
                isinstance(value, builtins.list)
                and len(value) == 2
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
                and value[0] <= value[1]
            )
            if not ok:
                self.err([*loc, "value"], "between takes [low, high] numbers, low <= high")
        elif op not in ("==", "!=") and (
            not isinstance(value, int | float) or isinstance(value, bool)
        ):
            self.err([*loc, "value"], f"{op} compares with a number")
        return str(op), value

    def _threshold(self, body: dict[str, Any], loc: builtins.list[Any]) -> Condition:
        key = self._key(body["key"], [*loc, "key"])
        op, value = self._op_value(body, loc)
        aqi = body.get("aqi", False)
        if aqi is not False and (aqi is not True or key not in BREAKPOINTS):
            self.err([*loc, "aqi"], f"aqi: true works on {', '.join(BREAKPOINTS)} only")
        clear = body.get("clear")
        if clear is not None and not _clears(op, value, clear):
            self.err([*loc, "clear"], CLEAR_HELP.get(op, "no clear value for == and !="))
        return Threshold(key, op, value, aqi=aqi is True, clear=clear)

    def _rate(self, body: Any, loc: builtins.list[Any]) -> Condition:
        if not isinstance(body, dict):
            self.err(loc, "must be an object {key, op, value, per}")
            return Threshold("_", "==", None)
        op, value = self._op_value(body, loc)
        per = 60_000
        try:
            per = parse_duration(body.get("per", "1m"))
        except ValueError as e:
            self.err([*loc, "per"], str(e))
        return Rate(self._key(body.get("key"), [*loc, "key"]), op, value, per)

    def _missing(self, body: Any, loc: builtins.list[Any]) -> Condition:
        if not isinstance(body, dict):
            self.err(loc, "must be an object {after, key?}")
            return Threshold("_", "==", None)
        key = body.get("key")
        after = 600_000
        try:
            after = parse_duration(body.get("after"))
        except ValueError as e:
            self.err([*loc, "after"], str(e))
        return Missing(None if key is None else self._key(key, [*loc, "key"]), after)

    def _window(self, body: Any, loc: builtins.list[Any]) -> Condition:
        points = []
        for end in ("from", "to"):
            try:
                points.append(_time_point(body[end] if isinstance(body, dict) else None))
            except (ValueError, KeyError) as e:
                self.err([*loc, end], str(e).strip("'"))
                points.append(TimePoint())
        return Window(points[0], points[1])

    def actions(self, body: Any, webhooks: Callable[[str], bool]) -> builtins.list[Action]:
        if not isinstance(body, builtins.list) or not body:
            self.err(["actions"], "must be a non-empty list")
            return []
        out: builtins.list[Action] = []
        for i, item in enumerate(body):
            loc: builtins.list[Any] = ["actions", i]
            if not isinstance(item, dict) or len(item) != 1:
                self.err(loc, "each action is one of alarm, command, webhook, work_order")
                continue
            ((kind, spec),) = item.items()
            if kind == "alarm":
                out.append(self._alarm(spec, [*loc, kind]))
            elif kind == "command":
                out.append(self._command(spec, [*loc, kind]))
            elif kind == "webhook":
                name = spec.get("name") if isinstance(spec, dict) else spec
                on = spec.get("on", "both") if isinstance(spec, dict) else "both"
                if not isinstance(name, str) or not webhooks(name):
                    self.err([*loc, kind], f"no webhook {name!r} of this tenant")
                if on not in ("raise", "clear", "both"):
                    self.err([*loc, kind, "on"], "must be raise, clear or both")
                out.append(WebhookAction(str(name), on))
            elif kind == "work_order":
                spec = spec or {}
                if not isinstance(spec, dict):
                    self.err([*loc, kind], "must be an object {team?, note?}")
                    continue
                out.append(WorkOrderAction(spec.get("team"), spec.get("note")))
            else:
                self.err(loc, f"unknown action {kind!r}")
        if any(isinstance(a, WorkOrderAction) for a in out) and not any(
            isinstance(a, AlarmAction) for a in out
        ):
            self.err(["actions"], "a work_order action needs an alarm action to open it for")
        return out

    def _alarm(self, spec: Any, loc: builtins.list[Any]) -> AlarmAction:
        if not isinstance(spec, dict):
            self.err(loc, "must be an object {type, severity, ...}")
            return AlarmAction("_", Severity.INDETERMINATE)
        atype = spec.get("type")
        if not isinstance(atype, str) or not 1 <= len(atype) <= 128:
            self.err([*loc, "type"], "is required, 1 to 128 characters")
        severity = spec.get("severity", "major")
        if severity not in Severity.__members__.values():
            self.err([*loc, "severity"], f"must be one of {', '.join(Severity)}")
            severity = Severity.INDETERMINATE
        originator = spec.get("originator", "device")
        if originator not in ("device", "pole"):
            self.err([*loc, "originator"], "must be device or pole")
        propagate = self._ids(spec.get("propagate"), [*loc, "propagate"], self.tenant_id, "tenant")
        details = spec.get("details", {})
        if not isinstance(details, dict):
            self.err([*loc, "details"], "must be an object")
            details = {}
        latch = spec.get("latch", False)
        if not isinstance(latch, bool):
            self.err([*loc, "latch"], "must be true or false")
            latch = False
        return AlarmAction(
            str(atype),
            Severity(severity),
            str(originator),
            tuple(propagate),
            bool(spec.get("clear", True)),
            details,
            latch,
        )

    def _command(self, spec: Any, loc: builtins.list[Any]) -> CommandAction:
        if not isinstance(spec, dict):
            self.err(loc, "must be an object {method, params, kind?, target?}")
            return CommandAction("_", {})
        method = spec.get("method")
        if not isinstance(method, str) or not 1 <= len(method) <= 128:
            self.err([*loc, "method"], "is required, 1 to 128 characters")
        kind = spec.get("kind")
        if kind is not None and kind not in DeviceKind.__members__.values():
            self.err([*loc, "kind"], f"unknown device kind {kind!r}")
        target, radius = spec.get("target", "self"), 0.0
        if isinstance(target, dict) and "within_m" in target:
            radius = target["within_m"]
            if not isinstance(radius, int | float) or not 0 < radius <= MAX_RADIUS_M:
                self.err([*loc, "target", "within_m"], f"a radius in (0, {MAX_RADIUS_M:g}] m")
                radius = 0.0
            target = "radius"
        elif target not in ("self", "pole"):
            self.err([*loc, "target"], "must be self, pole or {within_m: metres}")
        if target != "self" and kind is None:
            self.err([*loc, "kind"], "is required to command devices other than the originator")
        on = spec.get("on", "raise")
        if on not in ("raise", "clear"):
            self.err([*loc, "on"], "must be raise or clear")
        persistent = spec.get("persistent", True)
        if not isinstance(persistent, bool):
            self.err([*loc, "persistent"], "must be true or false")
            persistent = True
        expires = DEFAULT_COMMAND_EXPIRY_MS
        if "expires" in spec:
            if not persistent:
                self.err([*loc, "expires"], "only a persistent command waits, and expires")
            try:
                expires = parse_duration(spec["expires"])
            except ValueError as e:
                self.err([*loc, "expires"], str(e))
            if expires > MAX_COMMAND_EXPIRY_MS:
                self.err([*loc, "expires"], "at most 1d")
        return CommandAction(
            str(method),
            spec.get("params", {}),
            kind,
            str(target),
            float(radius),
            str(on),
            persistent,
            expires,
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
    p = _Parser(tenant_lookup, pole_lookup)
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
    scope = p.scope(body.get("scope"))
    condition = p.condition(body.get("condition"), ["condition"])
    actions = p.actions(body.get("actions"), webhook_exists)
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
        stateful=has_state(condition),
    )
