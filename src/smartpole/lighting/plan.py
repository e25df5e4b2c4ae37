"""Every lamp's plan for the next nights: the programs its calendar picks, resolved on its nights,
capped, with overrides laid over them.

Lamps that share their groups, time zone, position (on the astro grid) and cap factor share one
plan object; a ``PlanCache`` carried from one compile to the next keeps the groups' members and
every plan built, so a change recompiles only the plans it touches (and ``changed`` names the
lamps whose plan is new, to push to their gateways).
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely

from smartpole.lighting.astro import night_of, position_key
from smartpole.lighting.calendar import Calendar
from smartpole.lighting.programs import Resolved, resolve_program, resolve_time
from smartpole.model.lighting import (
    Anchor,
    CalendarEntry,
    Group,
    Lamp,
    Override,
    PlanStep,
    Program,
    Reason,
    Selector,
    TimeSpec,
)

__all__ = ["Plan", "PlanCache", "changed", "compile_plans", "level_at", "members"]

Plan = tuple[PlanStep, ...]
NOON = TimeSpec(Anchor.CLOCK, 720)
NO_REASON = Reason()
PlanKey = tuple[
    str, tuple[float, float], float, tuple[CalendarEntry | None, ...], tuple[Override, ...]
]


@dataclass
class PlanCache:
    """What one compile keeps for the next: the groups' members (for the same lamps) and plans."""

    lamps: Sequence[Lamp] | None = None
    members: dict[Group, frozenset[str]] = field(default_factory=dict)
    plans: dict[tuple[PlanKey, dt.date, int, int], Plan] = field(default_factory=dict)
    # each set of programs compiled with, numbered: a plan key holds the number, cheap to hash
    programs: dict[tuple[tuple[str, Program], ...], int] = field(default_factory=dict)

    def prune(self, first_night: dt.date, most: int = 20_000) -> None:
        """Forget plans of nights gone by; all of them past ``most`` (program edits, overrides
        and holds add plans that are never asked for again: the next compile makes them anew)."""
        self.plans = {k: v for k, v in self.plans.items() if k[1] >= first_night}
        if len(self.plans) > most:
            self.plans, self.programs, self.members = {}, {}, {}


class _Index:
    """The lamps by district, road, tag and pole, to evaluate selectors with set operations."""

    def __init__(self, lamps: Sequence[Lamp]) -> None:
        self.lamps = lamps
        self.everyone = frozenset(lamp.id for lamp in lamps)
        self.by: dict[str, dict[str, set[str]]] = {
            "district": {},
            "road": {},
            "tag": {},
            "pole": {},
        }
        for lamp in lamps:
            self.by["district"].setdefault(lamp.district, set()).add(lamp.id)
            self.by["road"].setdefault(lamp.road, set()).add(lamp.id)
            self.by["pole"].setdefault(lamp.pole, set()).add(lamp.id)
            for tag in lamp.tags:
                self.by["tag"].setdefault(tag, set()).add(lamp.id)
        self.lon = np.fromiter((lamp.lon for lamp in lamps), float, len(lamps))
        self.lat = np.fromiter((lamp.lat for lamp in lamps), float, len(lamps))

    def any_of(self, kind: str, names: Iterable[str]) -> set[str]:
        out: set[str] = set()
        for name in names:
            out |= self.by[kind].get(name, set())
        return out

    def select(self, selector: Selector) -> frozenset[str]:
        named = (selector.lamps & self.everyone) | self.any_of("pole", selector.poles)
        if not selector.has_criteria:
            return frozenset(named) if named or selector.lamps or selector.poles else self.everyone
        found: set[str] = set(self.everyone)
        if selector.districts:
            found &= self.any_of("district", selector.districts)
        if selector.roads:
            found &= self.any_of("road", selector.roads)
        for tag in selector.tags:
            found &= self.by["tag"].get(tag, set())
        if selector.polygon:
            inside = shapely.contains_xy(shapely.Polygon(selector.polygon), self.lon, self.lat)
            found &= {self.lamps[int(i)].id for i in np.flatnonzero(inside)}
        return frozenset(found | named)


def members(
    groups: Sequence[Group], lamps: Sequence[Lamp], cache: PlanCache | None = None
) -> dict[str, frozenset[str]]:
    """Each group's lamp ids, by group name."""
    cache = cache if cache is not None else PlanCache()
    if cache.lamps is not lamps:
        cache.lamps, cache.members = lamps, {}
    index: _Index | None = None
    out: dict[str, frozenset[str]] = {}
    for group in groups:
        if group not in cache.members:
            index = index or _Index(lamps)
            cache.members[group] = index.select(group.selector)
        out[group.name] = cache.members[group]
    return out


def _overlay(base: list[PlanStep], override: Override, start: int) -> list[PlanStep]:
    """``base`` with ``override`` laid over it: its level from its start, the program's again at
    its end (so an override never leaves a lamp stuck)."""
    begin = max(override.start_ms, start)
    back_level, back_reason = level_at(tuple(base), override.until_ms, fade=False)
    reason = Reason(override=override.name)
    return [
        *(s for s in base if s.ts_ms < begin),
        PlanStep(begin, override.level, 0, reason),
        PlanStep(override.until_ms, back_level, 0, back_reason),
        *(s for s in base if s.ts_ms > override.until_ms),
    ]


def _build(
    key: PlanKey,
    programs: Mapping[str, Program],
    first_night: dt.date,
    nights: int,
    resolved: dict[tuple[str, float, float, str, int, float], Resolved],
) -> Plan:
    tz, (lat, lon), factor, entries, overrides = key
    steps: list[PlanStep] = []
    for n, entry in enumerate(entries):
        if entry is None:
            continue
        night = night_of(lat, lon, tz, first_night + dt.timedelta(days=n))
        reason = Reason(program=entry.program, entry=entry.name)
        # keyed by names and numbers: hashing programs and nights whole costs more than resolving
        shared = (entry.program, lat, lon, tz, n, factor)
        if shared not in resolved:
            resolved[shared] = resolve_program(programs[entry.program], night, tz, factor)
        for ts, level, fade in resolved[shared]:
            # polar nights join: a night's first step replaces the last night's end at noon
            if steps and steps[-1].ts_ms >= ts:
                steps.pop()
            steps.append(PlanStep(ts, level, fade, reason))
    if overrides:
        start = resolve_time(NOON, night_of(lat, lon, tz, first_night), tz)
        end = resolve_time(
            NOON, night_of(lat, lon, tz, first_night + dt.timedelta(days=nights - 1)), tz
        )
        for override in overrides:
            if override.until_ms > start and override.start_ms < end + 86_400_000:
                steps = _overlay(steps, override, start)
    return tuple(steps)


def compile_plans(
    lamps: Sequence[Lamp],
    groups: Sequence[Group],
    programs: Mapping[str, Program],
    calendar: Calendar,
    overrides: Sequence[Override],
    first_night: dt.date,
    nights: int,
    cache: PlanCache | None = None,
) -> dict[str, Plan]:
    """Each lamp's plan for the ``nights`` nights from ``first_night`` (by lamp id). Overrides
    are laid over in the order given (a later one wins where they overlap)."""
    cache = cache if cache is not None else PlanCache()
    group_members = members(groups, lamps, cache)
    lamp_groups: dict[str, set[str]] = {}
    for name, ids in group_members.items():
        for lamp_id in ids:
            lamp_groups.setdefault(lamp_id, set()).add(name)
    days = [first_night + dt.timedelta(days=n) for n in range(nights)]
    programs_key = cache.programs.setdefault(tuple(sorted(programs.items())), len(cache.programs))
    resolved: dict[tuple[str, float, float, str, int, float], Resolved] = {}
    interned: dict[frozenset[str], frozenset[str]] = {}
    keys: dict[tuple[frozenset[str], str, tuple[float, float], float], Plan] = {}
    plans: dict[str, Plan] = {}
    empty: frozenset[str] = frozenset()
    for lamp in lamps:
        names = frozenset(lamp_groups.get(lamp.id, empty))
        names = interned.setdefault(names, names)
        short = (names, lamp.tz, position_key(lamp.lat, lamp.lon), lamp.cap.factor)
        plan = keys.get(short)
        if plan is None:
            entries = tuple(calendar.entry_for(names, day) for day in days)
            laid = tuple(o for o in overrides if o.group in names)
            key: PlanKey = (short[1], short[2], short[3], entries, laid)
            full = (key, first_night, nights, programs_key)
            plan = cache.plans.get(full)
            if plan is None:
                plan = cache.plans[full] = _build(key, programs, first_night, nights, resolved)
            keys[short] = plan
        plans[lamp.id] = plan
    return plans


def changed(old: Mapping[str, Plan], new: Mapping[str, Plan]) -> set[str]:
    """The lamps whose plan is not the same (by identity first: shared plans compare cheaply)."""
    return {
        lamp for lamp, plan in new.items() if old.get(lamp) is not plan and old.get(lamp) != plan
    }


def level_at(plan: Plan, ts_ms: int, fade: bool = True) -> tuple[float, Reason]:
    """The lamp's level at ``ts_ms`` and what decided it (0 % before its first step); within a
    step's fade the level moves linearly from the one before."""
    i = bisect.bisect_right(plan, ts_ms, key=lambda step: step.ts_ms)
    if i == 0:
        return 0.0, NO_REASON
    step = plan[i - 1]
    elapsed = ts_ms - step.ts_ms
    if fade and step.fade_s and elapsed < step.fade_s * 1000:
        before = plan[i - 2].level if i >= 2 else 0.0
        share = elapsed / (step.fade_s * 1000)
        return round(before + (step.level - before) * share, 1), step.reason
    return step.level, step.reason
