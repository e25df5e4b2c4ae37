"""The work-order lifecycle: which status may follow which, and the deadline (SLA) of each
severity.

    open ──► assigned ──► in_progress ──► resolved ──► closed
      └─────────────────────────────────────▲   └──► in_progress (reopen)
      (dismissed: open ──► closed)
"""

from __future__ import annotations

import re

from smartpole.errors import InvalidInput
from smartpole.model.lifecycle import Severity, WorkOrderStatus

__all__ = [
    "DEFAULT_SLA",
    "HOUR_MS",
    "MAX_TEXT",
    "OVERDUE",
    "TRANSITIONS",
    "UNRESOLVED",
    "parse_sla",
]

OVERDUE = "work_order_overdue"
HOUR_MS = 3_600_000
DEFAULT_SLA = "critical=4h,major=24h,minor=72h,warning=7d,indeterminate=7d"
MAX_TEXT = 4000
UNIT_MS = {"m": 60_000, "h": HOUR_MS, "d": 24 * HOUR_MS}


S = WorkOrderStatus
TRANSITIONS: dict[WorkOrderStatus, tuple[WorkOrderStatus, ...]] = {
    S.OPEN: (S.ASSIGNED, S.CLOSED),
    S.ASSIGNED: (S.IN_PROGRESS,),
    S.IN_PROGRESS: (S.RESOLVED,),
    S.RESOLVED: (S.CLOSED, S.IN_PROGRESS),
    S.CLOSED: (),
}
UNRESOLVED = (S.OPEN.value, S.ASSIGNED.value, S.IN_PROGRESS.value)


def parse_sla(text: str) -> dict[Severity, int]:
    """Parse ``critical=4h,major=24h,...`` into a deadline in ms per severity.

    Units are ``m``, ``h`` and ``d``; a severity left out keeps its default.
    """
    return {**_parse_sla(DEFAULT_SLA), **_parse_sla(text)}


def _parse_sla(text: str) -> dict[Severity, int]:
    out: dict[Severity, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.fullmatch(r"([a-z]+)\s*=\s*(\d+(?:\.\d+)?)\s*([mhd])", part)
        if m is None or m.group(1) not in set(Severity):
            raise InvalidInput(f"SLA entry {part!r} is not severity=<number><m|h|d>", entry=part)
        ms = int(float(m.group(2)) * UNIT_MS[m.group(3)])
        if ms <= 0:
            raise InvalidInput(f"SLA entry {part!r} must be positive", entry=part)
        out[Severity(m.group(1))] = ms
    return out
