"""Rules as the engine runs them (compiled: scope, condition tree, actions) and where their
bodies are kept (per tenant, unique by name). The body format and its checks are in
:mod:`smartpole.hub.rule_body`.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

import orjson
import yaml
from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from smartpole.errors import Conflict, NotFound
from smartpole.hub.alarms import Severity
from smartpole.hub.conditions import Condition
from smartpole.hub.tables import rules
from smartpole.model.clock import now_ms
from smartpole.model.types import Role
from smartpole.registry.access import Principal

__all__ = [
    "DEFAULT_COMMAND_EXPIRY_MS",
    "AlarmAction",
    "CommandAction",
    "Rule",
    "RuleScope",
    "RuleStore",
    "WebhookAction",
    "WorkOrderAction",
    "default_rules",
]

# How long a rule's command waits for an offline device unless the action says: long enough
# for a lamp or a display to come back from a short outage, short enough to still be relevant.
DEFAULT_COMMAND_EXPIRY_MS = 10 * 60_000


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
    latch: bool = False  # stays active until acknowledged, whatever the rule says meanwhile


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
