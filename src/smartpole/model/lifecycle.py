"""The lifecycles of alarms and work orders: their statuses and severities, as plain values.

The hub (``hub.alarms``, ``hub.workorders``) owns the rules that move between them; these are
here, free of I/O, so that the command line and the API can name them without loading the hub.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["AlarmStatus", "Severity", "WorkOrderStatus"]


class Severity(StrEnum):
    """How bad an alarm is, most severe first."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"
    INDETERMINATE = "indeterminate"


class AlarmStatus(StrEnum):
    """Where an alarm is in its lifecycle: active or cleared, acknowledged or not."""

    ACTIVE_UNACK = "active_unack"
    ACTIVE_ACK = "active_ack"
    CLEARED_UNACK = "cleared_unack"
    CLEARED_ACK = "cleared_ack"

    @property
    def active(self) -> bool:
        """Not cleared yet."""
        return self in (AlarmStatus.ACTIVE_UNACK, AlarmStatus.ACTIVE_ACK)

    @property
    def acked(self) -> bool:
        """Acknowledged by someone."""
        return self in (AlarmStatus.ACTIVE_ACK, AlarmStatus.CLEARED_ACK)


class WorkOrderStatus(StrEnum):
    """Where a work order is in its lifecycle."""

    OPEN = "open"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"
