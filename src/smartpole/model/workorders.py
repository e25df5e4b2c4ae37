"""Work orders as values: a maintenance team, a work order, one change in its history.

The store and the lifecycle's rules are the hub's (:mod:`smartpole.hub.workorders`); these are
what it hands to the API and the command line. ``to_dict`` gives the JSON they answer with,
keys in the order of the table's columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smartpole.model.lifecycle import Severity, WorkOrderStatus

__all__ = ["Team", "WorkOrder", "WorkOrderEntry"]


@dataclass(frozen=True, slots=True)
class Team:
    """A maintenance team of a tenant: what a work order is assigned to."""

    id: int
    tenant_id: int
    name: str
    title: str
    contact: str
    created: int

    def to_dict(self) -> dict[str, Any]:
        """The team as JSON-ready values."""
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "name": self.name,
            "title": self.title,
            "contact": self.contact,
            "created": self.created,
        }


@dataclass(frozen=True, slots=True)
class WorkOrderEntry:
    """One change of a work order: who (tenant and role, ``rule`` or ``hub``), when, from which
    status to which, and why."""

    id: int
    work_order_id: int
    ts: int
    actor: str
    action: str  # created, assigned, unassigned, transition, comment, overdue, resolve_suggested
    from_status: WorkOrderStatus | None
    to_status: WorkOrderStatus | None
    comment: str
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON-ready values."""
        return {
            "id": self.id,
            "work_order_id": self.work_order_id,
            "ts": self.ts,
            "actor": self.actor,
            "action": self.action,
            "from_status": None if self.from_status is None else self.from_status.value,
            "to_status": None if self.to_status is None else self.to_status.value,
            "comment": self.comment,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class WorkOrder:
    """A maintenance job: from an alarm or for a device or pole, with a deadline from its
    severity's SLA. ``history`` is loaded for one order (oldest change first), None in a
    listing."""

    id: int
    tenant_id: int
    alarm_id: int | None
    device_id: int | None
    pole_id: int | None
    title: str
    description: str
    severity: Severity
    status: WorkOrderStatus
    team_id: int | None
    created: int
    updated: int
    deadline: int
    resolved: int | None
    closed: int | None
    resolve_suggested: bool  # its alarm cleared: consider resolving it
    overdue_since: int | None  # when its overdue alarm was raised (None: not overdue or done)
    team: str | None  # the team's name
    overdue: bool  # unresolved and past its deadline
    history: tuple[WorkOrderEntry, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The work order as JSON-ready values (with ``history`` when it was loaded)."""
        out: dict[str, Any] = {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "alarm_id": self.alarm_id,
            "device_id": self.device_id,
            "pole_id": self.pole_id,
            "title": self.title,
            "description": self.description,
            "severity": self.severity.value,
            "status": self.status.value,
            "team_id": self.team_id,
            "created": self.created,
            "updated": self.updated,
            "deadline": self.deadline,
            "resolved": self.resolved,
            "closed": self.closed,
            "resolve_suggested": self.resolve_suggested,
            "overdue_since": self.overdue_since,
            "team": self.team,
            "overdue": self.overdue,
        }
        if self.history is not None:
            out["history"] = [h.to_dict() for h in self.history]
        return out
