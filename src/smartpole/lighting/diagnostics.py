"""Lamp diagnostics: what a street lamp's own readings say is wrong with it.

A :class:`LampDiagnostics` is fed each lamp's reports (the catalog's ``on``, ``dim`` and
``power`` keys, at the readings' own times) and says when a diagnosis starts or ends. The
diagnoses and their alarm types follow uCIFI / OMA LwM2M object 3416 (Outdoor Lamp Controller)
where it names them (see docs/lighting-diagnostics.md):

- ``lamp_failure``: switched on at a level above 0 but drawing next to no power (a dead driver
  or LED string); latched: it does not mend itself at dawn.
- ``day_burner``: reporting itself on in daylight, between sunrise and sunset (with a margin) at
  the lamp's own position and date (:func:`smartpole.lighting.astro.night_of`), not a fixed hour.
- ``lamp_cycling``: lit and dark again and again (``cycling_switches`` changes within
  ``cycling_window_s``): a driver's thermal cut-out, a failing photocell or a loose contact.
- ``low_power``: lit, but drawing under ``low_power_ratio`` of what its level needs: its rated
  power times the level, never under its minimum wattage (a failing LED string).
- ``control_gear_failure``: reporting itself off (``on`` false or level 0) while power flows: the
  relay or driver does not obey the controller. A day burner says it is on; a gear failure says
  it is off, so each lamp fault is one diagnosis, never both.

Every diagnosis holds its condition for a while before it is raised (``*_hold_s``) and clears
when the condition is gone; power checks wait ``settle_s`` after a level or switch change (a
fade, a driver starting). Late readings (older than the lamp's newest) are ignored: a gateway's
buffer is delivered in order, so only stale duplicates are dropped.

:func:`burn_hours_forecast` compares each lamp's burn hours with its rated life (L70: the hours
until its light falls to 70 %) and forecasts replacements per road.
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import functools
import io
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from smartpole.lighting.astro import night_of, position_key
from smartpole.model.lifecycle import Severity
from smartpole.model.types import Value

__all__ = [
    "DEFAULT_RATED_LIFE_H",
    "DIAGNOSES",
    "LATCHED",
    "MAX_HORIZON_YEARS",
    "NIGHT_HOURS_PER_DAY",
    "REPLACEMENTS_HEADER",
    "SEVERITY",
    "WORK_ORDER",
    "BurnHours",
    "Diagnosis",
    "DiagnosisEvent",
    "DiagnosticSettings",
    "LampDiagnostics",
    "LampFacts",
    "LampFactsLookup",
    "RoadForecast",
    "burn_hours_forecast",
    "burn_rate",
    "day_of",
    "is_daylight",
    "replacements_csv",
]

DEFAULT_RATED_LIFE_H = 50_000.0  # a typical LED luminaire's L70 (manufacturers: 50-100 kh)
NIGHT_HOURS_PER_DAY = 11.5  # a year's mean dusk-to-dawn hours near the tropic (Shenzhen)
MAX_HORIZON_YEARS = 30  # past a lamp's whole life: a longer forecast says nothing more
DAY_MS = 86_400_000
MAX_FORECAST_DAYS = 36_600.0  # a century: "never" to a city, and dates end at year 9999


class Diagnosis(enum.StrEnum):
    """A lamp diagnosis; its value is the alarm type it raises."""

    LAMP_FAILURE = "lamp_failure"
    DAY_BURNER = "day_burner"
    LAMP_CYCLING = "lamp_cycling"
    LOW_POWER = "low_power"
    CONTROL_GEAR_FAILURE = "control_gear_failure"


DIAGNOSES = tuple(Diagnosis)


@dataclass(frozen=True, slots=True)
class LampFacts:
    """What the platform knows of a lamp besides its readings (from the registry).

    ``rated_w`` is None when unknown: then ``low_power`` is not checked (a guessed rating
    would call every smaller lamp weak). ``min_w`` is the driver's minimum wattage: a lamp
    dimmed below it still draws it.
    """

    device_id: int
    tenant_id: int
    pole_id: int | None
    lat: float
    lon: float
    tz: str
    rated_w: float | None = None
    min_w: float = 0.0
    rated_life_h: float = DEFAULT_RATED_LIFE_H
    road: str = ""
    district: str = ""


LampFactsLookup = Callable[[int | None, int], "LampFacts | None"]
"""``lamp_facts(tenant, device)``: a lamp's facts, None when the device is no lamp (or is
gone); ``tenant`` is None when the caller does not know it (readings carry no tenant)."""


@dataclass(frozen=True, slots=True)
class DiagnosticSettings:
    """Thresholds and hold times of the diagnostics (defaults documented in
    docs/lighting-diagnostics.md)."""

    dark_w: float = 5.0  # under this a lamp gives no light (a driver's standby is 0.5-2 W)
    failure_hold_s: float = 300.0
    daylight_margin_s: float = 1800.0  # day = sunrise + margin .. sunset - margin
    day_burner_hold_s: float = 900.0
    cycling_switches: int = 6  # lit/dark changes within the window: three on-off cycles
    cycling_window_s: float = 3600.0
    low_power_ratio: float = 0.85  # a healthy LED draws its rated share or more (driver loss)
    low_power_hold_s: float = 900.0
    gear_hold_s: float = 600.0
    settle_s: float = 120.0  # after a switch or level change: fades and driver start-up
    clear_hold_s: float = 300.0  # the condition must stay gone this long before a clear

    def clear_after_s(self, diagnosis: Diagnosis) -> float:
        """How long a raised diagnosis's condition must stay gone before it clears: a day
        burner clears at once (daylight does not wobble, a switch-off is deliberate)."""
        return 0.0 if diagnosis is Diagnosis.DAY_BURNER else self.clear_hold_s

    def hold_s(self, diagnosis: Diagnosis) -> float:
        """How long a diagnosis's condition must hold before it is raised."""
        return {
            Diagnosis.LAMP_FAILURE: self.failure_hold_s,
            Diagnosis.DAY_BURNER: self.day_burner_hold_s,
            Diagnosis.LAMP_CYCLING: 0.0,
            Diagnosis.LOW_POWER: self.low_power_hold_s,
            Diagnosis.CONTROL_GEAR_FAILURE: self.gear_hold_s,
        }[diagnosis]


# Severity, latching and whether a work order is opened, per diagnosis: a dead lamp and gear
# that ignores the controller need a crew; the others are for the lighting engineer's list.
SEVERITY: dict[Diagnosis, Severity] = {
    Diagnosis.LAMP_FAILURE: Severity.MAJOR,
    Diagnosis.DAY_BURNER: Severity.MINOR,
    Diagnosis.LAMP_CYCLING: Severity.MINOR,
    Diagnosis.LOW_POWER: Severity.WARNING,
    Diagnosis.CONTROL_GEAR_FAILURE: Severity.MAJOR,
}
LATCHED = frozenset({Diagnosis.LAMP_FAILURE})
WORK_ORDER: dict[Diagnosis, str] = {
    Diagnosis.LAMP_FAILURE: "Replace the lamp's driver",
    Diagnosis.CONTROL_GEAR_FAILURE: "Replace the lamp's relay or driver: it does not switch off",
}


@dataclass(frozen=True, slots=True)
class DiagnosisEvent:
    """A diagnosis starting (``raised``) or ending (``cleared``) on a lamp at ``ts`` (ms)."""

    change: str  # "raised" | "cleared"
    diagnosis: Diagnosis
    device_id: int
    ts: int
    since: int  # when its condition began (ms)
    details: Mapping[str, float | bool | str]


def is_daylight(facts: LampFacts, ts: int, margin_s: float = 0.0) -> bool:
    """Whether ``ts`` (ms) is between sunrise + margin and sunset - margin at the lamp."""
    lat, lon = position_key(facts.lat, facts.lon)
    morning, evening = day_of(lat, lon, facts.tz, ts // QUARTER_MS)
    margin = int(margin_s * 1000)
    return morning + margin <= ts <= evening - margin


QUARTER_MS = 900_000  # every zone's offset is whole quarters: a quarter is in one local date


@functools.lru_cache(maxsize=8192)
def day_of(lat: float, lon: float, tz: str, quarter: int) -> tuple[int, int]:
    """Sunrise and sunset (UTC ms) of the local day holding the quarter of an hour
    ``quarter`` (UTC ms // 900,000) at a position (cached: pass ``position_key`` values)."""
    day = dt.datetime.fromtimestamp(quarter * QUARTER_MS / 1000, ZoneInfo(tz)).date()
    morning = night_of(lat, lon, tz, day - dt.timedelta(days=1)).sunrise
    return morning, night_of(lat, lon, tz, day).sunset


@dataclass(slots=True)
class _Lamp:
    """One lamp's state: its newest values and each diagnosis's condition."""

    ts: int = -1
    on: bool | None = None
    level: float | None = None
    power: float | None = None
    lit: bool | None = None
    changed: int = -1  # when the switch or level last changed (ms)
    switches: deque[int] = field(default_factory=deque)
    since: dict[Diagnosis, int] = field(default_factory=dict)  # condition true from
    gone: dict[Diagnosis, int] = field(default_factory=dict)  # condition false from (active)
    active: set[Diagnosis] = field(default_factory=set)


class LampDiagnostics:
    """The diagnostics of many lamps; pure logic, no I/O, not thread-safe."""

    def __init__(self, settings: DiagnosticSettings | None = None) -> None:
        self.settings = s = settings or DiagnosticSettings()
        self.lamps: dict[int, _Lamp] = {}
        self._hold_ms = {d: s.hold_s(d) * 1000 for d in DIAGNOSES}
        self._clear_ms = {d: s.clear_after_s(d) * 1000 for d in DIAGNOSES}

    def active(self, device_id: int) -> frozenset[Diagnosis]:
        """The diagnoses raised and not cleared on a lamp."""
        lamp = self.lamps.get(device_id)
        return frozenset(lamp.active) if lamp else frozenset()

    def resume(self, device_id: int, diagnoses: Iterable[Diagnosis]) -> None:
        """Take diagnoses raised before a restart as active, so that they clear when their
        condition is gone (their hold starts again only if they end and come back)."""
        self.lamps.setdefault(device_id, _Lamp()).active.update(diagnoses)

    def retry(self, event: DiagnosisEvent) -> None:
        """An event whose alarm could not be written (the store away for a moment): undo it,
        so that the lamp's next report makes it again."""
        lamp = self.lamps.get(event.device_id)
        if lamp is None:
            return
        if event.change == "raised":
            lamp.active.discard(event.diagnosis)
        else:
            lamp.active.add(event.diagnosis)

    def observe(
        self,
        facts: LampFacts,
        ts: int,
        values: Mapping[str, Value],
        commanded: float | None = None,
    ) -> list[DiagnosisEvent]:
        """Take one report of a lamp (its keys at one moment); return what started or ended.
        ``commanded`` is the level its lighting plan gives it then (None: no plan): a lamp its
        plan lights by day (an SOS hold, an override for road works) is no day burner."""
        lamp = self.lamps.setdefault(facts.device_id, _Lamp())
        if ts < lamp.ts:
            return []  # late: the lamp's state has moved on
        lamp.ts = ts
        self._take(lamp, ts, values)
        return self._judge(facts, lamp, ts, commanded)

    def _take(self, lamp: _Lamp, ts: int, values: Mapping[str, Value]) -> None:
        on, level, power = values.get("on"), values.get("dim"), values.get("power")
        if isinstance(on, bool) and on != lamp.on:
            if lamp.on is not None:
                lamp.changed = ts
            lamp.on = on
        if isinstance(level, int | float) and not isinstance(level, bool):
            if lamp.level is not None and float(level) != lamp.level:
                lamp.changed = ts
            lamp.level = float(level)
        if isinstance(power, int | float) and not isinstance(power, bool):
            lamp.power = float(power)
            lit = lamp.power >= self.settings.dark_w
            if lamp.lit is not None and lit != lamp.lit:
                lamp.switches.append(ts)
            lamp.lit = lit
        window = int(self.settings.cycling_window_s * 1000)
        while lamp.switches and lamp.switches[0] <= ts - window:
            lamp.switches.popleft()

    def conditions(
        self, facts: LampFacts, lamp: _Lamp, ts: int, commanded: float | None = None
    ) -> dict[Diagnosis, bool | None]:
        """Each diagnosis's condition now: True, False, or None when it cannot be told."""
        s = self.settings
        power, level = lamp.power, lamp.level
        switched_on = lamp.on if lamp.on is not None else (level is not None and level > 0)
        commanded_on = switched_on and (level is None or level > 0)
        settled = lamp.changed < 0 or ts - lamp.changed >= s.settle_s * 1000
        out: dict[Diagnosis, bool | None] = dict.fromkeys(DIAGNOSES)
        if power is None:
            return out
        out[Diagnosis.LAMP_FAILURE] = (
            (commanded_on and power < s.dark_w) if settled or not commanded_on else None
        )
        out[Diagnosis.DAY_BURNER] = (
            switched_on
            and power >= s.dark_w
            and not (commanded is not None and commanded > 0)
            and is_daylight(facts, ts, s.daylight_margin_s)
        )
        # once cycling, it lasts until the window holds at most one change (hysteresis)
        needed = 2 if Diagnosis.LAMP_CYCLING in lamp.active else s.cycling_switches
        out[Diagnosis.LAMP_CYCLING] = len(lamp.switches) >= needed
        if facts.rated_w is not None and level is not None:
            need = max(facts.min_w, facts.rated_w * level / 100)
            weak = commanded_on and s.dark_w <= power < s.low_power_ratio * need
            out[Diagnosis.LOW_POWER] = weak if settled or not weak else None
        off = not switched_on or (level is not None and level <= 0)
        gear = off and power >= s.dark_w
        out[Diagnosis.CONTROL_GEAR_FAILURE] = gear if settled or not gear else None
        return out

    def _judge(
        self, facts: LampFacts, lamp: _Lamp, ts: int, commanded: float | None = None
    ) -> list[DiagnosisEvent]:
        events: list[DiagnosisEvent] = []
        for diagnosis, holds in self.conditions(facts, lamp, ts, commanded).items():
            if holds is None:
                continue  # settling or unknown: neither start nor end a diagnosis
            if holds:
                lamp.gone.pop(diagnosis, None)
                since = lamp.since.setdefault(diagnosis, ts)
                if diagnosis not in lamp.active and ts - since >= self._hold_ms[diagnosis]:
                    lamp.active.add(diagnosis)
                    events.append(self._event("raised", diagnosis, facts, lamp, ts, since))
                continue
            since = lamp.since.pop(diagnosis, ts)
            if diagnosis not in lamp.active:
                continue
            gone = lamp.gone.setdefault(diagnosis, ts)
            if ts - gone >= self._clear_ms[diagnosis]:
                lamp.active.discard(diagnosis)
                lamp.gone.pop(diagnosis, None)
                events.append(self._event("cleared", diagnosis, facts, lamp, ts, since))
            else:
                lamp.since[diagnosis] = since  # still active while the clear is held
        return events

    def _event(
        self, change: str, diagnosis: Diagnosis, facts: LampFacts, lamp: _Lamp, ts: int, since: int
    ) -> DiagnosisEvent:
        details: dict[str, float | bool | str] = {}
        if lamp.power is not None:
            details["power"] = lamp.power
        if lamp.level is not None:
            details["level"] = lamp.level
        if lamp.on is not None:
            details["on"] = lamp.on
        if diagnosis is Diagnosis.LAMP_CYCLING:
            details["switches"] = len(lamp.switches)
        if diagnosis is Diagnosis.LOW_POWER and facts.rated_w is not None and lamp.level:
            details["expected_w"] = round(max(facts.min_w, facts.rated_w * lamp.level / 100), 1)
        return DiagnosisEvent(change, diagnosis, facts.device_id, ts, since, details)


# -- burn hours against rated life ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BurnHours:
    """A lamp's burn hours so far (its ``hours`` reading) and its rated life (L70)."""

    device_id: int
    road: str
    district: str
    hours: float
    rated_life_h: float = DEFAULT_RATED_LIFE_H
    hours_per_day: float = NIGHT_HOURS_PER_DAY


@dataclass(frozen=True, slots=True)
class RoadForecast:
    """How many lamps of a road reach their rated life when: ``due_now`` have passed it,
    ``by_year`` counts the rest per calendar year of their forecast date."""

    road: str
    district: str
    lamps: int
    due_now: int
    next_due: dt.date | None
    by_year: tuple[tuple[int, int], ...]
    mean_life_used: float  # mean share of rated life burnt, 0..1+


def burn_hours_forecast(
    lamps: Iterable[BurnHours], *, today: dt.date | None = None, horizon_years: int = 10
) -> list[RoadForecast]:
    """Forecast lamp replacements per road: each lamp is due when its burn hours reach its
    rated life at its burning rate; lamps due beyond ``horizon_years`` are not counted by
    year (``next_due`` may be past it: a century at most). ``today`` defaults to the local
    date. Roads are sorted by district, then road."""
    today = today or dt.date.today()
    roads: dict[tuple[str, str], list[BurnHours]] = defaultdict(list)
    for lamp in lamps:
        roads[(lamp.district, lamp.road)].append(lamp)
    out = []
    last_year = today.year + horizon_years
    for (district, road), members in sorted(roads.items()):
        due_now = 0
        years: dict[int, int] = defaultdict(int)
        dates: list[dt.date] = []
        used = 0.0
        for lamp in members:
            life = max(lamp.rated_life_h, 1.0)
            used += lamp.hours / life
            left = life - lamp.hours
            if left <= 0:
                due_now += 1
                continue
            days = left / max(lamp.hours_per_day, 1e-6)
            due = today + dt.timedelta(days=min(days, MAX_FORECAST_DAYS))
            dates.append(due)
            if due.year <= last_year:
                years[due.year] += 1
        out.append(
            RoadForecast(
                road=road,
                district=district,
                lamps=len(members),
                due_now=due_now,
                next_due=today if due_now else min(dates, default=None),
                by_year=tuple(sorted(years.items())),
                mean_life_used=round(used / len(members), 4),
            )
        )
    return out


def burn_rate(earlier: tuple[int, float] | None, latest: tuple[int, float] | None) -> float | None:
    """Hours a lamp burns a day from two of its ``hours`` readings ``(ts ms, hours)``; None
    when either is missing, they are under a day apart, or the hours did not grow by more than
    0 and at most 24 a day (a counter reset by a new lamp, a stuck or broken counter)."""
    if earlier is None or latest is None or latest[0] - earlier[0] < DAY_MS:
        return None
    rate = (latest[1] - earlier[1]) / ((latest[0] - earlier[0]) / DAY_MS)
    return rate if 0 < rate <= 24 else None


REPLACEMENTS_HEADER = ("district", "road", "lamps", "past_l70", "next_due", "mean_life_used")


def replacements_csv(roads: Iterable[RoadForecast], first_year: int, horizon_years: int) -> str:
    """The forecast as CSV: a row per road, a column of lamps due per year from ``first_year``
    through ``horizon_years`` more (every road has every column, for a spreadsheet)."""
    years = list(range(first_year, first_year + horizon_years + 1))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*REPLACEMENTS_HEADER, *(str(y) for y in years)])
    for r in roads:
        due = dict(r.by_year)
        next_due = r.next_due.isoformat() if r.next_due else ""
        head = [r.district, r.road, r.lamps, r.due_now, next_due, f"{r.mean_life_used:.4f}"]
        writer.writerow([*head, *(due.get(y, 0) for y in years)])
    return out.getvalue()
