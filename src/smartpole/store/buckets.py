"""Buckets of aggregated time series, aligned to the clock and the calendar.

A bucket of ``interval`` ms is where a user expects it, whatever the window's start:

- shorter than a day: at multiples of ``interval`` since the epoch (UTC), so hours are clock
  hours in every whole-hour time zone and 15-minute buckets start at :00, :15, :30, :45;
- whole days: at midnight in the tenant's time zone (a day is 23 or 25 hours across a daylight
  saving change);
- several days: every ``n`` days counted from Monday 1970-01-05, local midnight, so 7-day
  buckets are weeks from Monday.

The first and last buckets may be cut by the window: they count only the readings in
``[start, end)`` but keep their aligned start as their label. The boundaries are runs of equal
steps (one run, or one more per daylight saving change); :meth:`Buckets.label` turns them into
SQL that maps a timestamp to its bucket's start, so the store aggregates in the database.
"""

from __future__ import annotations

import itertools
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from smartpole.errors import InvalidInput

__all__ = ["DAY_MS", "HOUR_MS", "MAX_BUCKETS", "Buckets", "Run", "time_zone"]

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
MAX_BUCKETS = 100_000
# multi-day buckets count days from a Monday, so 7-day buckets are calendar weeks
WEEK_ORIGIN = date(1970, 1, 5)


def time_zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA time zone ``name`` (``Asia/Shanghai``); InvalidInput if there is none."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as err:
        raise InvalidInput(
            f"unknown time zone {name!r}: use an IANA name such as Asia/Shanghai", timezone=name
        ) from err


@dataclass(frozen=True, slots=True)
class Run:
    """``count`` consecutive buckets of ``step`` ms, the first starting at ``first``."""

    first: int
    step: int
    count: int

    @property
    def end(self) -> int:
        """Where the run's last bucket ends."""
        return self.first + self.step * self.count


@dataclass(frozen=True, slots=True)
class Buckets:
    """The buckets of ``interval`` ms that cover ``[start, end)``."""

    start: int
    end: int
    interval: int
    runs: tuple[Run, ...]

    @classmethod
    def of(cls, start: int, end: int, interval: int, zone: tzinfo = UTC) -> Buckets:
        """Align buckets to the clock (see the module); InvalidInput for an interval of a day
        or more that is not whole days, or a window of more than :data:`MAX_BUCKETS`."""
        if interval <= 0 or end <= start:
            raise InvalidInput("need end > start and a positive interval", start=start, end=end)
        if interval >= DAY_MS and interval % DAY_MS:
            raise InvalidInput(
                f"an interval of a day or more must be whole days ({DAY_MS} ms each)",
                interval=interval,
            )
        # a day is at most 25 hours: past this, there are too many buckets to make them
        longest = interval + HOUR_MS if interval >= DAY_MS else interval
        if (end - start) // longest > MAX_BUCKETS:
            raise _too_many(start, end, interval)
        if interval < DAY_MS:
            first = start - start % interval
            runs: tuple[Run, ...] = (Run(first, interval, -(-(end - first) // interval)),)
        else:
            runs = _runs(_midnights(start, end, interval // DAY_MS, zone))
        out = cls(start, end, interval, runs)
        if out.count > MAX_BUCKETS:
            raise _too_many(start, end, interval)
        return out

    @property
    def count(self) -> int:
        """How many buckets cover the window."""
        return sum(r.count for r in self.runs)

    @property
    def hour_aligned(self) -> bool:
        """Every boundary is on a whole hour: hourly rollups fall each in one bucket."""
        return all(r.first % HOUR_MS == 0 and r.step % HOUR_MS == 0 for r in self.runs)

    def label(self, column: str) -> str:
        """SQL mapping ``column`` (ms, within the window) to the start of its bucket."""

        def within(r: Run) -> str:
            # parenthesized: a negative first (1970-01-01 east of UTC) must not read as -- comment
            return f"({r.first}) + (({column} - ({r.first})) / {r.step}) * {r.step}"

        if len(self.runs) == 1:
            return within(self.runs[0])
        cases = " ".join(f"WHEN {column} < {r.end} THEN {within(r)}" for r in self.runs[:-1])
        return f"CASE {cases} ELSE {within(self.runs[-1])} END"


def _too_many(start: int, end: int, interval: int) -> InvalidInput:
    return InvalidInput(
        f"more than {MAX_BUCKETS} buckets: widen the interval or narrow the window",
        start=start,
        end=end,
        interval=interval,
    )


def _midnight(day: date, zone: tzinfo) -> int:
    """The instant (ms) of ``day``'s local midnight (where midnight is skipped, the first
    instant after it)."""
    local = datetime(day.year, day.month, day.day, tzinfo=zone)
    return round(local.astimezone(UTC).timestamp()) * 1000


def _midnights(start: int, end: int, days: int, zone: tzinfo) -> list[int]:
    """Local midnights every ``days`` days (from :data:`WEEK_ORIGIN` when more than one) from
    the one at or before ``start`` to the first at or after ``end``.

    Where such a midnight is not a date (before year 1, after 9999: the last hours of 9999
    east of UTC, or buckets of millennia), the window's own start or end stands for it.
    """
    try:
        day = datetime.fromtimestamp(start / 1000, zone).date()
        if days > 1:
            day -= timedelta(days=(day - WEEK_ORIGIN).days % days)
        out = [_midnight(day, zone)]
        while out[0] > start:  # a skipped midnight can land after start: step back
            day -= timedelta(days=days)
            out[0:0] = [_midnight(day, zone)]
    except (OverflowError, ValueError):
        return [start, end]
    while out[-1] < end:
        try:
            day += timedelta(days=days)
            instant = _midnight(day, zone)
        except (OverflowError, ValueError):
            out.append(end)
            break
        if instant > out[-1]:  # a day a zone skipped (Samoa, 2011-12-30) adds no bucket
            out.append(instant)
    return out


def _runs(bounds: list[int]) -> tuple[Run, ...]:
    """Boundaries ``b0 < b1 < …`` as runs of equal steps."""
    runs: list[Run] = []
    for lo, hi in itertools.pairwise(bounds):
        if runs and runs[-1].step == hi - lo:
            last = runs[-1]
            runs[-1] = Run(last.first, last.step, last.count + 1)
        else:
            runs.append(Run(lo, hi - lo, 1))
    return tuple(runs)
