"""A program resolved on one night: its steps as absolute times, in order, levels capped.

The rules, in order:

1. a step's time resolves on the night: an event ± its offset; a clock time at or after 12:00 on
   the evening's date, before 12:00 on the next morning (in the lamp's time zone, DST included);
2. a time before sunset or after sunrise is clamped to it: the lamps do not burn by day;
3. the steps are ordered by time (the order written breaks ties); of steps on the same moment
   the one written last stands;
4. at sunrise the lamp goes to 0 %, whatever the program says (a step at sunrise keeps its fade);
5. every level is multiplied by the lamp's cap factor (maintenance, CLO).

An empty night (midnight sun) resolves to no step: the lamp stays off.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from smartpole.lighting.astro import Night
from smartpole.model.lighting import Anchor, Program, TimeSpec

__all__ = ["Resolved", "resolve_program", "resolve_time"]

MINUTE_MS = 60_000
NOON_MIN = 720

Resolved = tuple[tuple[int, float, int], ...]  # (ts_ms, level %, fade_s), in time order


def resolve_time(spec: TimeSpec, night: Night, tz: str) -> int:
    """The UTC ms a time spec names on a night (not clamped)."""
    if spec.anchor is Anchor.CLOCK:
        day = night.date if spec.minutes >= NOON_MIN else night.date + dt.timedelta(days=1)
        local = dt.datetime.combine(day, dt.time(spec.minutes // 60, spec.minutes % 60))
        # a clock time skipped by DST (02:30 in spring) lands an hour later, as zoneinfo's fold=0
        return int(local.replace(tzinfo=ZoneInfo(tz)).timestamp() * 1000)
    base = {
        Anchor.SUNSET: night.sunset,
        Anchor.SUNRISE: night.sunrise,
        Anchor.CIVIL_DUSK: night.civil_dusk,
        Anchor.CIVIL_DAWN: night.civil_dawn,
        Anchor.VIRTUAL_MIDNIGHT: night.virtual_midnight,
    }[spec.anchor]
    return base + spec.minutes * MINUTE_MS


def resolve_program(program: Program, night: Night, tz: str, factor: float = 1.0) -> Resolved:
    """The program's steps on this night by the module's rules."""
    if night.sunrise <= night.sunset:
        return ()
    timed = sorted(
        (
            (min(max(resolve_time(step.at, night, tz), night.sunset), night.sunrise), i, step)
            for i, step in enumerate(program.steps)
        ),
        key=lambda item: (item[0], item[1]),
    )
    out: dict[int, tuple[float, int]] = {}
    for ts, _, step in timed:
        out[ts] = (round(step.level * factor, 1), step.fade_s)
    dawn_fade = out[night.sunrise][1] if night.sunrise in out else 0
    out[night.sunrise] = (0.0, dawn_fade)
    return tuple((ts, level, fade) for ts, (level, fade) in out.items())
