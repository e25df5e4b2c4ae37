"""The values of lighting control: programs of dimming steps on an astronomical clock, the groups
of lamps they apply to, the calendar that picks a program for a group on a night, overrides, and
the plan compiled for each lamp. Pure values: ``smartpole.lighting`` computes with them."""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass, field

__all__ = [
    "Anchor",
    "CalendarEntry",
    "Cap",
    "DateRange",
    "Group",
    "Lamp",
    "OneOffDates",
    "Override",
    "PlanStep",
    "Program",
    "PublicHolidays",
    "Reason",
    "RestDays",
    "Rule",
    "Selector",
    "Step",
    "TimeSpec",
    "Weekdays",
    "WorkingDays",
]

MINUTES_PER_DAY = 1440
MAX_OFFSET_MIN = 720  # half a day: any larger offset reaches into another night


class Anchor(enum.StrEnum):
    """What a time spec counts from: the wall clock, or an event of the night."""

    CLOCK = "clock"
    SUNSET = "sunset"
    SUNRISE = "sunrise"
    CIVIL_DUSK = "civil_dusk"
    CIVIL_DAWN = "civil_dawn"
    VIRTUAL_MIDNIGHT = "virtual_midnight"


_SPEC = re.compile(r"^\s*([a-z_]+)\s*(?:([+-])\s*(\d{1,4})\s*(?:min)?)?\s*$")
_CLOCK = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True, slots=True)
class TimeSpec:
    """A time of a night: a clock time (``minutes`` after local midnight; at or after 12:00 on the
    evening, before it on the next morning) or an event of the night ± ``minutes``."""

    anchor: Anchor
    minutes: int = 0

    def __post_init__(self) -> None:
        if self.anchor is Anchor.CLOCK and not 0 <= self.minutes < MINUTES_PER_DAY:
            raise ValueError("a clock time is between 00:00 and 23:59")
        if self.anchor is not Anchor.CLOCK and abs(self.minutes) > MAX_OFFSET_MIN:
            raise ValueError(f"an offset is at most {MAX_OFFSET_MIN} minutes")

    @classmethod
    def parse(cls, text: str) -> TimeSpec:
        """``"22:30"``, ``"sunset"``, ``"sunset+15"``, ``"civil_dawn-10"``,
        ``"virtual_midnight-120"``; ValueError naming what is wrong."""
        clock = _CLOCK.match(text)
        if clock:
            hours, minutes = int(clock[1]), int(clock[2])
            if hours > 23 or minutes > 59:
                raise ValueError(f"{text!r} is not a time of day (HH:MM, 00:00 to 23:59)")
            return cls(Anchor.CLOCK, hours * 60 + minutes)
        spec = _SPEC.match(text)
        if spec is None:
            raise ValueError(f"{text!r} is neither HH:MM nor an event ± minutes (sunset+15)")
        try:
            anchor = Anchor(spec[1])
        except ValueError:
            events = ", ".join(a.value for a in Anchor if a is not Anchor.CLOCK)
            raise ValueError(f"unknown event {spec[1]!r}: one of {events}") from None
        if anchor is Anchor.CLOCK:
            raise ValueError("a clock time is written HH:MM")
        offset = int(spec[3] or 0) * (-1 if spec[2] == "-" else 1)
        return cls(anchor, offset)

    def __str__(self) -> str:
        if self.anchor is Anchor.CLOCK:
            return f"{self.minutes // 60:02d}:{self.minutes % 60:02d}"
        if self.minutes == 0:
            return self.anchor.value
        return f"{self.anchor.value}{self.minutes:+d}"


@dataclass(frozen=True, slots=True)
class Step:
    """From ``at`` on, the lamp dims to ``level`` % of its output, fading over ``fade_s``."""

    at: TimeSpec
    level: float
    fade_s: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.level <= 100:
            raise ValueError("a level is between 0 and 100 (%)")
        if self.fade_s < 0:
            raise ValueError("a fade is 0 seconds or more")


@dataclass(frozen=True, slots=True)
class Program:
    """A named dimming program: its steps, in the order written."""

    name: str
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class Selector:
    """Which lamps a group holds: the lamps and poles named, plus the lamps that match every kind
    of criterion given (any district listed, any road, all tags, inside the polygon). A selector
    with only ids holds those; one with nothing at all holds every lamp."""

    districts: frozenset[str] = frozenset()
    roads: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    polygon: tuple[tuple[float, float], ...] = ()  # lon/lat, WGS 84
    lamps: frozenset[str] = frozenset()
    poles: frozenset[str] = frozenset()

    @property
    def has_criteria(self) -> bool:
        """Whether it selects lamps by their attributes (not only by id)."""
        return bool(self.districts or self.roads or self.tags or self.polygon)


@dataclass(frozen=True, slots=True)
class Group:
    """A named group of lamps."""

    name: str
    selector: Selector


@dataclass(frozen=True, slots=True)
class Weekdays:
    """Nights whose evening falls on these weekdays (0 Monday .. 6 Sunday)."""

    days: frozenset[int]


@dataclass(frozen=True, slots=True)
class DateRange:
    """Nights whose evening falls between ``start`` and ``end``, both included."""

    start: dt.date
    end: dt.date


@dataclass(frozen=True, slots=True)
class PublicHolidays:
    """Nights whose evening is a public holiday of a holiday calendar (``CN``, or a tenant's)."""

    calendar: str = "CN"


@dataclass(frozen=True, slots=True)
class WorkingDays:
    """Working days of a holiday calendar: Monday to Friday but its holidays, plus its adjusted
    working days (China's 调休: a Saturday or Sunday worked)."""

    calendar: str = "CN"


@dataclass(frozen=True, slots=True)
class RestDays:
    """The days that are not working days of a holiday calendar (weekends and holidays)."""

    calendar: str = "CN"


@dataclass(frozen=True, slots=True)
class OneOffDates:
    """These dates only (a festival, an event)."""

    dates: frozenset[dt.date]


Rule = Weekdays | DateRange | PublicHolidays | WorkingDays | RestDays | OneOffDates


@dataclass(frozen=True, slots=True)
class CalendarEntry:
    """Run ``program`` for ``group`` on the nights ``rule`` matches; the highest priority wins."""

    name: str
    program: str
    group: str
    rule: Rule
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Override:
    """Hold ``group`` at ``level`` from ``start_ms`` to ``until_ms``, then back to its program."""

    name: str
    group: str
    level: float
    until_ms: int
    start_ms: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.level <= 100:
            raise ValueError("a level is between 0 and 100 (%)")
        if self.until_ms <= self.start_ms:
            raise ValueError("an override ends after it starts")


@dataclass(frozen=True, slots=True)
class Cap:
    """What limits a lamp's every level: a maintenance factor, and constant light output (CLO: a
    new LED driven at ``clo_start`` of its rated output, rising linearly with burn hours to all of
    it at ``rated_hours``)."""

    maintenance: float = 1.0
    clo_start: float = 1.0
    burn_hours: float = 0.0
    rated_hours: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.maintenance <= 1 or not 0 < self.clo_start <= 1:
            raise ValueError("a maintenance factor and a CLO start are in (0, 1]")
        if self.burn_hours < 0 or self.rated_hours < 0:
            raise ValueError("burn hours and rated life are 0 or more")

    @property
    def factor(self) -> float:
        """The fraction of a level the driver is given (to 1 %, so that lamps share plans)."""
        clo = 1.0
        if self.clo_start < 1 and self.rated_hours > 0:
            worn = min(1.0, self.burn_hours / self.rated_hours)
            clo = self.clo_start + (1 - self.clo_start) * worn
        return round(self.maintenance * clo, 2)


@dataclass(frozen=True, slots=True)
class Lamp:
    """What compiling a lamp's plan needs to know of it."""

    id: str
    pole: str
    gateway: str
    lat: float
    lon: float
    tz: str
    district: str = ""
    road: str = ""
    tags: frozenset[str] = frozenset()
    cap: Cap = field(default_factory=Cap)


@dataclass(frozen=True, slots=True)
class Reason:
    """What decided a plan step: the program (and the calendar entry that chose it), or an
    override; neither for the dark of a night no entry covers."""

    program: str | None = None
    entry: str | None = None
    override: str | None = None


@dataclass(frozen=True, slots=True)
class PlanStep:
    """At ``ts_ms`` (UTC) the lamp goes to ``level`` % over ``fade_s`` s, because of ``reason``."""

    ts_ms: int
    level: float
    fade_s: int
    reason: Reason
