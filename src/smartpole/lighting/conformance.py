"""Out of program: a lamp whose reported level differs from its plan for longer than a hold time
raises an ``out_of_program`` alarm (commanded against actual), cleared when it is back in
program. It finds a controller that lost its plan, a lamp stuck at a level, a driver that
ignores dimming.

A reading is in program when it is within ``tolerance`` percentage points of the plan's level at
its time, or of the level a ``grace`` earlier or later: a fade, and a report taken a moment
before or after a step, are not deviations.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from smartpole.model.lifecycle import Severity
from smartpole.model.types import Reading
from smartpole.model.writes import WriteBatch

__all__ = [
    "ALARM_TYPE",
    "AlarmSink",
    "Conformance",
    "Deviation",
    "Expected",
    "LampRef",
]

log = logging.getLogger(__name__)

ALARM_TYPE = "out_of_program"
LEVEL_KEY = "dim"  # the catalog's lamp key for the level it is at

Expected = Callable[[str, str, int], float | None]
"""(tenant, lamp, ts_ms) -> the plan's level then; None when the lamp has no plan then."""


@dataclass(frozen=True, slots=True)
class LampRef:
    """Who a lamp device is, for the plan (tenant and lamp names) and for its alarm (ids)."""

    tenant: str
    lamp: str
    tenant_id: int
    device_id: int
    pole_id: int | None = None


class AlarmSink(Protocol):
    """The part of the hub's alarm store the detector uses (``hub.alarms.store.Alarms``)."""

    async def raise_alarm(
        self,
        *,
        tenant_id: int,
        originator_type: str,
        originator_id: int,
        type: str,
        severity: Any,
        details: dict[str, Any] | None = None,
        ts: int | None = None,
        pole_id: int | None = None,
    ) -> Any:
        """Raise (or repeat) the alarm of this originator and type."""

    async def clear(
        self,
        *,
        originator_type: str,
        originator_id: int,
        type: str,
        details: dict[str, Any] | None = None,
        ts: int | None = None,
    ) -> Any:
        """Clear the active alarm of this originator and type."""


@dataclass(frozen=True, slots=True)
class Deviation:
    """A lamp going out of program (``raised``) or back in (``cleared``)."""

    change: Literal["raised", "cleared"]
    lamp: LampRef
    ts: int
    commanded: float
    actual: float
    since: int


@dataclass(slots=True)
class _State:
    last_ts: int = 0
    since: int | None = None  # when the current deviation began
    alarmed: bool = False


class Conformance:
    """Compares each lamp's reported level with its plan; a pipeline listener (``on_batch``).

    ``expected`` and ``lamp_of`` run on the event loop for every lamp reading: give them
    in-memory look-ups (the lighting service's compiled plans, a cache of lamp devices).
    """

    def __init__(
        self,
        expected: Expected,
        alarms: AlarmSink | None,
        lamp_of: Callable[[int], LampRef | None],
        *,
        tolerance: float = 2.0,
        hold_ms: int = 600_000,
        grace_ms: int = 60_000,
        key: str = LEVEL_KEY,
    ) -> None:
        self.expected = expected
        self.alarms = alarms
        self.lamp_of = lamp_of
        self.tolerance = tolerance
        self.hold_ms = hold_ms
        self.grace_ms = grace_ms
        self.key = key
        self.states: dict[int, _State] = {}

    def in_program(self, lamp: LampRef, ts: int, level: float) -> tuple[bool, float | None]:
        """Whether ``level`` at ``ts`` is the plan's (within tolerance, fades and grace), and
        the plan's level then (None: no plan, so nothing to compare)."""
        now = self.expected(lamp.tenant, lamp.lamp, ts)
        if now is None:
            return True, None
        around = [now]
        for at in (ts - self.grace_ms, ts + self.grace_ms):
            level_then = self.expected(lamp.tenant, lamp.lamp, at)
            if level_then is not None:
                around.append(level_then)
        inside = min(around) - self.tolerance <= level <= max(around) + self.tolerance
        return inside, now

    def observe(self, lamp: LampRef, ts: int, level: float) -> Deviation | None:
        """Take one reading (in time order per lamp; older ones are ignored); the change of
        state it makes, if any."""
        state = self.states.setdefault(lamp.device_id, _State())
        if ts < state.last_ts:
            return None  # a late reading: the lamp has reported since
        state.last_ts = ts
        inside, commanded = self.in_program(lamp, ts, level)
        if inside or commanded is None:
            since, state.since = state.since, None
            if state.alarmed:
                state.alarmed = False
                return Deviation("cleared", lamp, ts, commanded or 0.0, level, since or ts)
            return None
        if state.since is None:
            state.since = ts
        if not state.alarmed and ts - state.since >= self.hold_ms:
            state.alarmed = True
            return Deviation("raised", lamp, ts, commanded, level, state.since)
        return None

    def check(self, readings: Iterable[Reading]) -> list[Deviation]:
        """Take a batch of readings (the level key only); the changes of state, in order."""
        levels = sorted(
            (r for r in readings if r.key == self.key and _is_number(r.value)),
            key=lambda r: r.ts,
        )
        out: list[Deviation] = []
        refs: dict[int, LampRef | None] = {}
        for r in levels:
            if r.device_id not in refs:
                refs[r.device_id] = self.lamp_of(r.device_id)
            lamp = refs[r.device_id]
            if lamp is not None:
                change = self.observe(lamp, r.ts, float(r.value))  # type: ignore[arg-type]
                if change is not None:
                    out.append(change)
        return out

    async def on_batch(self, batch: WriteBatch) -> None:
        """Pipeline listener: check the committed readings and raise or clear alarms."""
        for change in self.check(batch.readings):
            try:
                await self.tell(change)
            except Exception:
                # not told: the next reading tries again (the store may be away for a moment)
                log.exception("out-of-program alarm of lamp %s failed", change.lamp.device_id)
                state = self.states.get(change.lamp.device_id)
                if state is not None:
                    state.alarmed = change.change == "cleared"

    async def tell(self, change: Deviation) -> None:
        """Raise or clear the lamp's ``out_of_program`` alarm."""
        if self.alarms is None:
            return
        details = {
            "commanded": change.commanded,
            "actual": change.actual,
            "since": change.since,
            "tolerance": self.tolerance,
        }
        lamp = change.lamp
        if change.change == "raised":
            await self.alarms.raise_alarm(
                tenant_id=lamp.tenant_id,
                originator_type="device",
                originator_id=lamp.device_id,
                type=ALARM_TYPE,
                severity=Severity.MINOR,
                details=details,
                ts=change.ts,
                pole_id=lamp.pole_id,
            )
        else:
            await self.alarms.clear(
                originator_type="device",
                originator_id=lamp.device_id,
                type=ALARM_TYPE,
                details=details,
                ts=change.ts,
            )


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)
