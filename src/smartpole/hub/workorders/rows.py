"""Work orders, their history entries and teams from their table rows."""

from __future__ import annotations

from typing import Any

import orjson

from smartpole.hub.workorders.lifecycle import UNRESOLVED
from smartpole.model.lifecycle import Severity, WorkOrderStatus
from smartpole.model.workorders import Team, WorkOrder, WorkOrderEntry

__all__ = ["entry_of", "team_of", "work_order_of"]

S = WorkOrderStatus


def work_order_of(row: Any, now: int, history: list[WorkOrderEntry] | None = None) -> WorkOrder:
    """A work order from its table row (with its team's name when the query joined it);
    ``overdue`` as of ``now``."""
    m = row._mapping
    return WorkOrder(
        id=m["id"],
        tenant_id=m["tenant_id"],
        alarm_id=m["alarm_id"],
        device_id=m["device_id"],
        pole_id=m["pole_id"],
        title=m["title"],
        description=m["description"],
        severity=Severity(m["severity"]),
        status=S(m["status"]),
        team_id=m["team_id"],
        created=m["created"],
        updated=m["updated"],
        deadline=m["deadline"],
        resolved=m["resolved"],
        closed=m["closed"],
        resolve_suggested=bool(m["resolve_suggested"]),
        overdue_since=m["overdue_since"],
        team=m["team"] if "team" in m else None,
        overdue=m["status"] in UNRESOLVED and m["deadline"] < now,
        history=None if history is None else tuple(history),
    )


def entry_of(row: Any) -> WorkOrderEntry:
    """A history entry from its table row (``details`` parsed from its JSON text)."""
    m = row._mapping
    return WorkOrderEntry(
        id=m["id"],
        work_order_id=m["work_order_id"],
        ts=m["ts"],
        actor=m["actor"],
        action=m["action"],
        from_status=None if m["from_status"] is None else S(m["from_status"]),
        to_status=None if m["to_status"] is None else S(m["to_status"]),
        comment=m["comment"],
        details=orjson.loads(m["details"]),
    )


def team_of(row: Any) -> Team:
    """A team from its table row."""
    m = row._mapping
    return Team(
        id=m["id"],
        tenant_id=m["tenant_id"],
        name=m["name"],
        title=m["title"],
        contact=m["contact"],
        created=m["created"],
    )
