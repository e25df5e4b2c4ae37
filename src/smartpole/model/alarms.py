"""Alarms as values: one alarm as stored, a change told to listeners, a comment on it.

The store and its lifecycle rules are the hub's (:mod:`smartpole.hub.alarms.store`); these are
what it hands to the API, the command line, webhooks and the WebSocket stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from smartpole.model.lifecycle import AlarmStatus, Severity

__all__ = ["Alarm", "AlarmChange", "AlarmComment", "ChangeKind"]

# What happened to an alarm (told to the alarm listeners).
ChangeKind = Literal["raised", "updated", "acknowledged", "cleared", "assigned", "commented"]


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm as stored; ``count`` is how many times it was raised while active."""

    id: int
    tenant_id: int
    originator_type: str  # "device" | "pole" | "work_order"
    originator_id: int
    type: str
    severity: Severity
    status: AlarmStatus
    details: dict[str, Any]
    first_ts: int
    last_ts: int
    count: int
    assignee: str | None
    cleared_ts: int | None
    acked_ts: int | None
    pole_id: int | None = None
    root_id: int | None = None  # the alarm this one is grouped under
    latch: bool = False  # stays active until acknowledged
    released_ts: int | None = None  # latched: when its rule stopped holding
    children: int = 0  # alarms grouped under this one (that the reader sees)

    def to_dict(self) -> dict[str, Any]:
        """The alarm as JSON-ready values (API, WebSocket, webhooks)."""
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "originator_type": self.originator_type,
            "originator_id": self.originator_id,
            "type": self.type,
            "severity": self.severity.value,
            "status": self.status.value,
            "details": self.details,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "count": self.count,
            "assignee": self.assignee,
            "cleared_ts": self.cleared_ts,
            "acked_ts": self.acked_ts,
            "pole_id": self.pole_id,
            "root_id": self.root_id,
            "latch": self.latch,
            "released_ts": self.released_ts,
            "children": self.children,
        }


@dataclass(frozen=True, slots=True)
class AlarmChange:
    """What happened to an alarm, told to listeners after it commits."""

    alarm: Alarm
    change: ChangeKind
    tenants: tuple[int, ...] = ()  # every tenant that sees the alarm


@dataclass(frozen=True, slots=True)
class AlarmComment:
    """A comment on an alarm, signed by its author: a person's login, tenant and role, or a
    key's tenant and role."""

    id: int
    alarm_id: int
    ts: int
    author: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        """The comment as JSON-ready values."""
        return {
            "id": self.id,
            "alarm_id": self.alarm_id,
            "ts": self.ts,
            "author": self.author,
            "text": self.text,
        }
