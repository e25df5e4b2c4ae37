"""Which calendar entry runs for a group on a night: of the entries whose group the lamp is in
and whose rule matches the night's date (its evening), the highest priority wins."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import yaml

from smartpole.errors import InvalidInput
from smartpole.model.lighting import (
    CalendarEntry,
    DateRange,
    OneOffDates,
    PublicHolidays,
    RestDays,
    Rule,
    Weekdays,
    WorkingDays,
)

__all__ = ["Calendar", "HolidayCalendar", "check_overlaps", "china_holidays"]

CHECK_DAYS = 366


@dataclass(frozen=True, slots=True)
class HolidayCalendar:
    """A holiday calendar: its days off and its adjusted working days (weekend days worked)."""

    name: str
    holidays: frozenset[dt.date]
    workdays: frozenset[dt.date] = frozenset()

    def is_working_day(self, day: dt.date) -> bool:
        """Monday to Friday but a holiday, or an adjusted working day."""
        return day in self.workdays or (day.weekday() < 5 and day not in self.holidays)


def _days(span: Sequence[Any]) -> Iterable[dt.date]:
    start, end = span
    return (start + dt.timedelta(days=i) for i in range((end - start).days + 1))


@functools.cache
def china_holidays() -> HolidayCalendar:
    """China's public holidays and adjusted working days (``holidays_cn.yaml``, from the State
    Council General Office's yearly notices)."""
    text = (files("smartpole.lighting") / "holidays_cn.yaml").read_text(encoding="utf-8")
    years = yaml.safe_load(text)["years"].values()
    holidays = frozenset(day for year in years for span in year["holidays"] for day in _days(span))
    workdays = frozenset(day for year in years for day in year["workdays"])
    return HolidayCalendar("CN", holidays, workdays)


def _holiday_calendar(calendars: Mapping[str, HolidayCalendar], name: str) -> HolidayCalendar:
    found = calendars.get(name)
    if found is None:
        raise InvalidInput(f"no holiday calendar {name!r}")
    return found


def rule_matches(rule: Rule, day: dt.date, calendars: Mapping[str, HolidayCalendar]) -> bool:
    """Whether a rule matches the night whose evening is ``day``."""
    match rule:
        case Weekdays(days):
            return day.weekday() in days
        case DateRange(start, end):
            return start <= day <= end
        case OneOffDates(dates):
            return day in dates
        case PublicHolidays(name):
            return day in _holiday_calendar(calendars, name).holidays
        case WorkingDays(name):
            return _holiday_calendar(calendars, name).is_working_day(day)
        case RestDays(name):
            return not _holiday_calendar(calendars, name).is_working_day(day)
    raise AssertionError(rule)  # pragma: no cover - the union is exhausted above


class Calendar:
    """The entries of a tenant's calendar, with its holiday calendars (``CN`` always)."""

    def __init__(
        self,
        entries: Sequence[CalendarEntry],
        holidays: Mapping[str, HolidayCalendar] | None = None,
    ) -> None:
        self.entries = tuple(entries)
        self.holidays: dict[str, HolidayCalendar] = {"CN": china_holidays(), **(holidays or {})}
        self._by_group: dict[str, list[CalendarEntry]] = {}
        for entry in sorted(self.entries, key=lambda e: -e.priority):
            self._by_group.setdefault(entry.group, []).append(entry)
        self._order = {entry: i for i, entry in reversed(list(enumerate(self.entries)))}
        self._cache: dict[tuple[frozenset[str], dt.date], CalendarEntry | None] = {}

    def entry_for(self, groups: frozenset[str], day: dt.date) -> CalendarEntry | None:
        """The entry that runs for a lamp in ``groups`` on the night of ``day`` (None: no entry;
        equal priorities in different groups: the first written wins)."""
        key = (groups, day)
        if key not in self._cache:
            found = []
            for group in groups:
                # the group's entries run highest priority first: its first match is its best
                for entry in self._by_group.get(group, ()):
                    if rule_matches(entry.rule, day, self.holidays):
                        found.append(entry)
                        break
            best = max(found, key=lambda e: (e.priority, -self._order[e]), default=None)
            self._cache[key] = best
        return self._cache[key]


def check_overlaps(calendar: Calendar, first: dt.date, days: int = CHECK_DAYS) -> None:
    """InvalidInput naming both entries where two of equal priority for the same group both
    match a date among the ``days`` from ``first``."""
    errors: list[dict[str, Any]] = []
    entries = calendar.entries
    for i, one in enumerate(entries):
        for j in range(i + 1, len(entries)):
            other = entries[j]
            if one.group != other.group or one.priority != other.priority:
                continue
            both = next(
                (
                    day
                    for day in (first + dt.timedelta(days=k) for k in range(days))
                    if rule_matches(one.rule, day, calendar.holidays)
                    and rule_matches(other.rule, day, calendar.holidays)
                ),
                None,
            )
            if both is not None:
                errors.append(
                    {
                        "loc": ["calendar", j, "priority"],
                        "msg": f"entries {one.name!r} and {other.name!r} both apply to group"
                        f" {one.group!r} on {both.isoformat()} with priority {one.priority}",
                    }
                )
    if errors:
        raise InvalidInput(errors[0]["msg"], errors=errors)
