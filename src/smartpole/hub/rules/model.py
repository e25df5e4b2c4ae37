"""Rules as the engine runs them: compiled from a body (see :mod:`smartpole.hub.rules.parser`)
into a scope, a condition tree and actions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from smartpole.hub.rules.conditions import Condition
from smartpole.model.lifecycle import Severity

__all__ = [
    "DEFAULT_COMMAND_EXPIRY_MS",
    "Action",
    "AlarmAction",
    "CommandAction",
    "LightAction",
    "Rule",
    "RuleScope",
    "WebhookAction",
    "WorkOrderAction",
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
class LightAction:
    """Hold the lamps on the device's pole or nearby at ``level`` % for ``for_ms``, then let
    them go back to their lighting program (an SOS lights the street around the call).

    The lamps get ``setDim`` at once; where lighting programs run, the hold is also an override
    of their plans, so that a gateway following its plan keeps the level and the lamps are not
    reported out of program; it ends by itself.
    """

    level: float
    for_ms: int
    target: str = "radius"  # "self" | "pole" | "radius"
    radius_m: float = 0.0


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


Action = AlarmAction | CommandAction | LightAction | WebhookAction | WorkOrderAction


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
    clocked: bool = False  # time alone may change it whatever its state (missing, windows)
    stateful: bool = False  # some node keeps state (written to ``rule_state``)
