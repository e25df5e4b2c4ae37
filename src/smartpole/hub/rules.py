"""Rules: what they look like (JSON or YAML), how they are checked, where they are kept.

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
takes ``for: 10m`` (hold that long). Every problem is reported at once, with its location.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

import orjson
import yaml
from shapely.prepared import prep
from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from smartpole.errors import Conflict, InvalidInput, NotFound
from smartpole.hub.alarms import Severity
from smartpole.hub.aqi import BREAKPOINTS
from smartpole.hub.conditions import (
    OPS,
    All,
    Any_,
    Condition,
    For,
    Missing,
    Not,
    Rate,
    Threshold,
    TimePoint,
    Window,
    has_state,
    is_timed,
    number_tree,
)
from smartpole.hub.tables import rules
from smartpole.model.types import KEY_RE, DeviceKind, Role
from smartpole.registry.access import Principal
from smartpole.registry.geo import _polygon as polygon_of
from smartpole.store.database import now_ms

__all__ = [
    "AlarmAction",
    "CommandAction",
    "Rule",
    "RuleScope",
    "RuleStore",
    "WebhookAction",
    "WorkOrderAction",
    "compile_rule",
    "default_rules",
    "parse_duration",
]

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, None: 1000, "m": 60_000, "min": 60_000, "h": 3_600_000}
_CLOCK_RE = re.compile(r"^(\d{1,2}):(\d{2})$")
_SUN_RE = re.compile(r"^(sunrise|sunset)\s*(?:([+-])\s*(\d+)\s*(m|min|h)?)?$")
MAX_RADIUS_M = 5_000.0
# How long a rule's command waits for an offline device unless the action says: long enough
# for a lamp or a display to come back from a short outage, short enough to still be relevant.
DEFAULT_COMMAND_EXPIRY_MS = 10 * 60_000
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


@dataclass(frozen=True, slots=True)
class RuleScope:
    """Which devices a rule watches; an empty field does not narrow."""

    kinds: frozenset[str] = frozenset()
    tenants: frozenset[int] = frozenset()
    poles: frozenset[int] = frozenset()
    districts: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    devices: frozenset[int] = frozenset()
    polygon: Any = None  # a prepared shapely geometry


@dataclass(frozen=True, slots=True)
class AlarmAction:
    """Raise an alarm when the condition starts to hold, clear it when it stops."""

    type: str
    severity: Severity
    originator: str = "device"  # or "pole"
    propagate: tuple[int, ...] = ()
    clear: bool = True
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommandAction:
    """Send a command to the device itself, to devices of a kind on its pole or nearby.

    Persistent by default: a device offline at the moment gets it when it connects, unless
    ``expires_ms`` passed since the rule acted (a street lit for an SOS an hour later helps
    no one); ``persistent: false`` sends it only to devices connected now.
    """

    method: str
    params: Any
    kind: str | None = None
    target: str = "self"  # "self" | "pole" | "radius"
    radius_m: float = 0.0
    on: str = "raise"  # "raise" | "clear"
    persistent: bool = True
    expires_ms: int = DEFAULT_COMMAND_EXPIRY_MS


@dataclass(frozen=True, slots=True)
class WebhookAction:
    """Post the event to one of the rule tenant's webhooks (signed, retried)."""

    name: str
    on: str = "both"  # "raise" | "clear" | "both"


@dataclass(frozen=True, slots=True)
class WorkOrderAction:
    """Open a work order for the alarm the rule raised."""

    team: str | None = None
    note: str | None = None


Action = AlarmAction | CommandAction | WebhookAction | WorkOrderAction


@dataclass(slots=True)
class Rule:
    """A compiled rule, ready for the engine."""

    id: int
    tenant_id: int
    name: str
    enabled: bool
    scope: RuleScope
    condition: Condition
    actions: tuple[Action, ...]
    city_wide: bool = False  # the rule's tenant is the city operator
    keys: frozenset[str] = frozenset()
    timed: bool = False
    stateful: bool = False  # some node keeps state (written to ``rule_state``)


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
                node = For(node, parse_duration(body["for"]))
            except ValueError as e:
                self.err([*loc, "for"], str(e))
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
        allowed = {form, "for"} | ({"op", "value", "aqi"} if form == "key" else set())
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
            return Threshold("online", "==", False)
        if form == "rate":
            return self._rate(body["rate"], [*loc, "rate"])
        if form == "missing":
            return self._missing(body["missing"], [*loc, "missing"])
        return self._window(body["window"], [*loc, "window"])

    def _key(self, key: Any, loc: builtins.list[Any]) -> str:
        if not isinstance(key, str) or not KEY_RE.match(key):
            self.err(loc, "must be a telemetry key (letters, digits, _ . : -)")
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
        return Threshold(key, op, value, aqi=aqi is True)

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
        return AlarmAction(
            str(atype),
            Severity(severity),
            str(originator),
            tuple(propagate),
            bool(spec.get("clear", True)),
            details,
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


def _row(r: Any) -> dict[str, Any]:
    m = r._mapping
    body = orjson.loads(m["body"])
    return {
        "id": m["id"],
        "tenant_id": m["tenant_id"],
        "name": m["name"],
        "enabled": m["enabled"],
        "created": m["created"],
        "updated": m["updated"],
        "body": body,
    }


class RuleStore:
    """Rules kept as their bodies (names, not ids), per tenant, unique by name."""

    def __init__(self, engine: Engine, check: Callable[[int, bool, dict[str, Any]], Rule]) -> None:
        self.engine = engine
        self.check = check  # compiles a body for a tenant, raising InvalidInput

    def _visible(self, who: Principal) -> Any:
        return True if who.is_operator else rules.c.tenant_id == who.tenant_id

    def put(self, who: Principal, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create the rule, or replace the caller's rule of that name; return it and whether
        it was created."""
        who.require(Role.OPERATOR)
        rule = self.check(who.tenant_id, who.is_operator, body)
        now = now_ms()
        text = orjson.dumps(body).decode()
        with self.engine.begin() as conn:
            q = select(rules.c.id).where(
                rules.c.tenant_id == who.tenant_id, rules.c.name == rule.name
            )
            existing = conn.execute(q).scalar()
            values = {"enabled": rule.enabled, "body": text, "updated": now}
            if existing is not None:
                conn.execute(update(rules).where(rules.c.id == existing).values(**values))
                rule_id, created = existing, False
            else:
                try:
                    ins = insert(rules).values(
                        tenant_id=who.tenant_id, name=rule.name, created=now, **values
                    )
                    rule_id = conn.execute(ins.returning(rules.c.id)).scalar_one()
                except IntegrityError as err:
                    raise Conflict(f"rule {rule.name!r} was created meanwhile") from err
                created = True
        return self.get(who, rule_id), created

    def get(self, who: Principal, rule_id: int) -> dict[str, Any]:
        """A visible rule; NotFound otherwise."""
        q = select(rules).where(rules.c.id == rule_id, self._visible(who))
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"rule {rule_id} not found", rule_id=rule_id)
        return _row(row)

    def by_name(self, who: Principal, name: str) -> dict[str, Any]:
        """The caller's rule of this name; NotFound otherwise."""
        q = select(rules).where(rules.c.name == name, rules.c.tenant_id == who.tenant_id)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"rule {name!r} not found", name=name)
        return _row(row)

    def list(self, who: Principal) -> builtins.list[dict[str, Any]]:
        """The visible rules, by id."""
        q = select(rules).where(self._visible(who)).order_by(rules.c.id)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(q)]

    def delete(self, who: Principal, rule_id: int) -> None:
        """Delete a visible rule (operator role)."""
        who.require(Role.OPERATOR)
        self.get(who, rule_id)
        with self.engine.begin() as conn:
            conn.execute(delete(rules).where(rules.c.id == rule_id))

    def all(self) -> builtins.list[dict[str, Any]]:
        """Every rule of every tenant (the engine's view)."""
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(select(rules).order_by(rules.c.id))]

    def version(self) -> tuple[int, int, int]:
        """(count, max id, max updated): changes when any rule is added, changed or deleted."""
        q = select(func.count(), func.max(rules.c.id), func.max(rules.c.updated))
        with self.engine.connect() as conn:
            n, top, updated = conn.execute(q).one()
        return int(n), int(top or 0), int(updated or 0)


def default_rules() -> builtins.list[dict[str, Any]]:
    """The default rule set shipped with smartpole (``defaults.yaml``)."""
    text = (files("smartpole.hub") / "defaults.yaml").read_text(encoding="utf-8")
    return list(yaml.safe_load(text)["rules"])
