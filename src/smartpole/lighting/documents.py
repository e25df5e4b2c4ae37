"""Lighting documents: programs, groups, a tenant's holidays and its calendar, written as YAML or
JSON; every problem collected with its location (and, in YAML, its line); written back as YAML.

    programs:
      - name: default
        steps:
          - {at: sunset, level: 100}
          - {at: "virtual_midnight-120", level: 50, fade_s: 300}
          - {at: sunrise, level: 0}
    groups:
      - {name: shennan, roads: [深南大道]}
    holidays:
      - {name: shenzhen, dates: [2026-09-01], workdays: []}
    calendar:
      - {name: weekend, program: default, group: shennan, weekdays: [sat, sun]}
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import shapely
import yaml

from smartpole.errors import InvalidInput
from smartpole.lighting.calendar import Calendar, HolidayCalendar, check_overlaps
from smartpole.model.documents import is_yaml, locate_lines, parse_document
from smartpole.model.lighting import (
    CalendarEntry,
    DateRange,
    Group,
    OneOffDates,
    Program,
    PublicHolidays,
    RestDays,
    Rule,
    Selector,
    Step,
    TimeSpec,
    Weekdays,
    WorkingDays,
)

__all__ = ["LightingDocument", "lighting_body", "lighting_yaml", "parse_lighting", "read_lighting"]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RULE_KEYS = ("weekdays", "from", "holidays", "working_days", "rest_days", "dates")
SELECTOR_KEYS = ("districts", "roads", "tags", "lamps", "poles")


@dataclass(frozen=True, slots=True)
class LightingDocument:
    """A tenant's lighting: its programs, groups, own holiday calendars and calendar entries."""

    programs: tuple[Program, ...] = ()
    groups: tuple[Group, ...] = ()
    holidays: tuple[HolidayCalendar, ...] = ()
    calendar: tuple[CalendarEntry, ...] = ()

    def calendar_of(self) -> Calendar:
        """The calendar of its entries, with China's holidays and its own."""
        return Calendar(self.calendar, {h.name: h for h in self.holidays})


class _Reader:
    """Reads a document's parts, noting each problem at its location instead of stopping."""

    def __init__(self) -> None:
        self.errors: list[dict[str, Any]] = []

    def err(self, loc: list[Any], msg: str) -> None:
        self.errors.append({"loc": loc, "msg": msg})

    def items(self, doc: dict[str, Any], key: str) -> list[tuple[int, dict[str, Any]]]:
        value = doc.get(key, [])
        if not isinstance(value, list):
            self.err([key], "must be a list")
            return []
        out = []
        seen: dict[str, int] = {}
        for i, item in enumerate(value):
            if not (isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"]):
                self.err([key, i, "name"], "each item is an object with a name")
            elif item["name"] in seen:
                first = seen[item["name"]]
                self.err([key, i, "name"], f"{item['name']!r} is already the name of item {first}")
            else:
                seen[item["name"]] = i
                out.append((i, item))
        return out

    def strs(self, value: Any, loc: list[Any]) -> frozenset[str]:
        if value is None:
            return frozenset()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.err(loc, "must be a list of strings")
            return frozenset()
        return frozenset(value)

    def date(self, value: Any, loc: list[Any]) -> dt.date | None:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            self.err(loc, f"{value!r} is not a date (YYYY-MM-DD)")
            return None

    def dates(self, value: Any, loc: list[Any]) -> frozenset[dt.date]:
        if not isinstance(value, list):
            self.err(loc, "must be a list of dates")
            return frozenset()
        found = (self.date(v, [*loc, i]) for i, v in enumerate(value))
        return frozenset(d for d in found if d is not None)

    def program(self, item: dict[str, Any], loc: list[Any]) -> Program | None:
        steps = item.get("steps")
        if not isinstance(steps, list) or not steps:
            self.err([*loc, "steps"], "a program has a list of steps")
            return None
        out = []
        for i, raw in enumerate(steps):
            here = [*loc, "steps", i]
            if not isinstance(raw, dict):
                self.err(here, "a step is an object: at, level, fade_s")
                continue
            at: TimeSpec | None = None
            try:
                at = TimeSpec.parse(str(raw.get("at", "")))
            except ValueError as err:
                self.err([*here, "at"], str(err))
            level, fade = raw.get("level"), raw.get("fade_s", 0)
            if (
                isinstance(level, bool)
                or not isinstance(level, int | float)
                or not 0 <= level <= 100
            ):
                self.err([*here, "level"], "a level is a number from 0 to 100 (%)")
                level = None
            if isinstance(fade, bool) or not isinstance(fade, int) or fade < 0:
                self.err([*here, "fade_s"], "a fade is a whole number of seconds, 0 or more")
                fade = None
            if at is not None and level is not None and fade is not None:
                out.append(Step(at, float(level), fade))
        return Program(item["name"], tuple(out))

    def selector(self, item: dict[str, Any], loc: list[Any]) -> Selector:
        sets = {key: self.strs(item.get(key), [*loc, key]) for key in SELECTOR_KEYS}
        polygon: tuple[tuple[float, float], ...] = ()
        raw = item.get("polygon")
        try:
            if isinstance(raw, str):
                shape = shapely.from_wkt(raw)
                if not isinstance(shape, shapely.Polygon):
                    raise ValueError("not a POLYGON")
                polygon = tuple((float(x), float(y)) for x, y in shape.exterior.coords)
            elif raw is not None:
                polygon = tuple((float(lon), float(lat)) for lon, lat in raw)
                if len(polygon) < 3:
                    raise ValueError("fewer than 3 points")
        except (ValueError, TypeError, shapely.errors.ShapelyError) as err:
            self.err([*loc, "polygon"], f"a polygon is WKT or a list of [lon, lat] ({err})")
            polygon = ()
        return Selector(polygon=polygon, **sets)

    def rule(self, item: dict[str, Any], loc: list[Any], calendars: set[str]) -> Rule | None:
        given = [key for key in RULE_KEYS if key in item]
        if len(given) != 1:
            self.err(loc, f"an entry has exactly one rule: one of {', '.join(RULE_KEYS)}")
            return None
        key = given[0]
        value = item[key]
        if key == "weekdays":
            names = self.strs(value, [*loc, key])
            wrong = sorted(names - set(WEEKDAYS))
            if wrong:
                self.err([*loc, key], f"unknown weekdays {wrong}: {', '.join(WEEKDAYS)}")
            return Weekdays(frozenset(WEEKDAYS.index(n) for n in names if n in WEEKDAYS))
        if key == "from":
            start = self.date(value, [*loc, "from"])
            end = self.date(item.get("to"), [*loc, "to"])
            if start and end and end < start:
                self.err([*loc, "to"], "the range ends before it starts")
            return DateRange(start, end) if start and end else None
        if key == "dates":
            return OneOffDates(self.dates(value, [*loc, key]))
        if value not in calendars:
            self.err([*loc, key], f"no holiday calendar {value!r} (CN, or one of the tenant's)")
            return None
        kinds: dict[str, type[PublicHolidays | WorkingDays | RestDays]] = {
            "holidays": PublicHolidays,
            "working_days": WorkingDays,
            "rest_days": RestDays,
        }
        return kinds[key](value)


def parse_lighting(doc: Any, today: dt.date | None = None) -> LightingDocument:
    """A lighting document's values, or InvalidInput with every problem located (``loc``);
    entries of equal priority for one group that can meet within the 366 nights from ``today``
    are a problem."""
    if not isinstance(doc, dict):
        raise InvalidInput("expected an object with programs, groups, holidays and calendar")
    read = _Reader()
    programs = [read.program(item, ["programs", i]) for i, item in read.items(doc, "programs")]
    groups = [
        Group(item["name"], read.selector(item, ["groups", i]))
        for i, item in read.items(doc, "groups")
    ]
    holidays = [
        HolidayCalendar(
            item["name"],
            read.dates(item.get("dates", []), ["holidays", i, "dates"]),
            read.dates(item.get("workdays", []), ["holidays", i, "workdays"]),
        )
        for i, item in read.items(doc, "holidays")
    ]
    program_names = {p.name for p in programs if p is not None}
    group_names = {g.name for g in groups}
    calendars = {"CN", *(h.name for h in holidays)}
    entries = []
    for i, item in read.items(doc, "calendar"):
        loc: list[Any] = ["calendar", i]
        if item.get("program") not in program_names:
            read.err([*loc, "program"], f"no program {item.get('program')!r}")
        if item.get("group") not in group_names:
            read.err([*loc, "group"], f"no group {item.get('group')!r}")
        priority = item.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            read.err([*loc, "priority"], "a priority is a whole number")
            priority = 0
        rule = read.rule(item, loc, calendars)
        if rule is not None:
            entries.append(
                CalendarEntry(
                    item["name"], str(item.get("program")), str(item.get("group")), rule, priority
                )
            )
    document = LightingDocument(
        tuple(p for p in programs if p is not None), tuple(groups), tuple(holidays), tuple(entries)
    )
    if not read.errors:
        try:
            check_overlaps(document.calendar_of(), today or dt.date.today())
        except InvalidInput as err:
            read.errors.extend(err.errors)
    if read.errors:
        raise InvalidInput(
            f"{len(read.errors)} problem(s) in the lighting document", errors=read.errors
        )
    return document


def read_lighting(text: bytes, content_type: str, today: dt.date | None = None) -> LightingDocument:
    """A lighting document from JSON or YAML text; YAML problems carry their ``line``."""
    try:
        return parse_lighting(parse_document(text, content_type), today)
    except InvalidInput as err:
        if is_yaml(content_type):
            locate_lines(err, text)
        raise


def _rule_body(rule: Rule) -> dict[str, Any]:
    match rule:
        case Weekdays(days):
            return {"weekdays": [WEEKDAYS[d] for d in sorted(days)]}
        case DateRange(start, end):
            return {"from": start, "to": end}
        case OneOffDates(dates):
            return {"dates": sorted(dates)}
        case PublicHolidays(name):
            return {"holidays": name}
        case WorkingDays(name):
            return {"working_days": name}
        case RestDays(name):
            return {"rest_days": name}
    raise AssertionError(rule)  # pragma: no cover - the union is exhausted above


def lighting_body(document: LightingDocument) -> dict[str, Any]:
    """The document as plain data, in the shape ``parse_lighting`` reads (empty parts left out)."""
    body: dict[str, Any] = {}
    body["programs"] = [
        {
            "name": p.name,
            "steps": [{"at": str(s.at), "level": s.level, "fade_s": s.fade_s} for s in p.steps],
        }
        for p in document.programs
    ]
    groups = []
    for g in document.groups:
        item: dict[str, Any] = {"name": g.name}
        for key in SELECTOR_KEYS:
            if getattr(g.selector, key):
                item[key] = sorted(getattr(g.selector, key))
        if g.selector.polygon:
            item["polygon"] = [list(point) for point in g.selector.polygon]
        groups.append(item)
    body["groups"] = groups
    body["holidays"] = [
        {"name": h.name, "dates": sorted(h.holidays), "workdays": sorted(h.workdays)}
        for h in document.holidays
    ]
    body["calendar"] = [
        {
            "name": e.name,
            "program": e.program,
            "group": e.group,
            "priority": e.priority,
            **_rule_body(e.rule),
        }
        for e in document.calendar
    ]
    return {key: value for key, value in body.items() if value}


def lighting_yaml(document: LightingDocument) -> str:
    """The document written as YAML."""
    return str(yaml.safe_dump(lighting_body(document), sort_keys=False, allow_unicode=True))
