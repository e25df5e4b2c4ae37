"""Time-of-use prices over stretches of time: how much of an interval falls in each period.

A tariff's periods are clock times of the tenant's local day; an interval (a night, an hour) is
walked from one period boundary to the next in local time, so a period boundary on a day with a
daylight saving change still falls at its clock time.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from smartpole.model.energy import DAY_MINUTES, PERIOD_KINDS, PeriodKind, Tariff

__all__ = ["PricedTime", "TariffClock"]


@dataclass(slots=True)
class PricedTime:
    """Milliseconds spent in each period kind and their price-weighted sum (ms x price/kWh)."""

    ms: dict[PeriodKind, int] = field(default_factory=dict)
    priced: float = 0.0

    @property
    def total_ms(self) -> int:
        """All the milliseconds counted."""
        return sum(self.ms.values())

    def add(self, other: PricedTime) -> None:
        """Fold ``other`` into this one."""
        for kind, ms in other.ms.items():
            self.ms[kind] = self.ms.get(kind, 0) + ms
        self.priced += other.priced

    def price(self) -> float:
        """The mean price per kWh over the time counted (0 if none)."""
        total = self.total_ms
        return self.priced / total if total else 0.0


class TariffClock:
    """A tariff in a time zone: splits intervals of time into its periods."""

    def __init__(self, tariff: Tariff, zone: tzinfo) -> None:
        self.tariff = tariff
        self.zone = zone
        table = tariff.price_table()
        # the minutes where the period changes, and what holds from each on
        self._starts = [m for m in range(DAY_MINUTES) if m == 0 or table[m] != table[m - 1]]
        self._values = [table[m] for m in self._starts]
        # per local day, the instants (ms) its periods start at and the next midnight
        self._days: dict[date, list[int]] = {}
        self._span: tuple[date, date] = (date.min, date.min)
        self._times: list[int] = []
        self._which: list[int] = []
        self._ms: list[tuple[int, ...]] = []
        self._priced: list[float] = []
        # one clock serves concurrent reports (the API's worker threads): its totals grow in place
        self._lock = threading.Lock()

    def _changes(self, day: date) -> list[int]:
        """When each period of the local ``day`` starts (ms), then the next midnight; a start the
        clock skipped (DST) holds for no time."""
        found = self._days.get(day)
        if found is None:
            found = []
            for m in (*self._starts, DAY_MINUTES):
                at = datetime.combine(day + timedelta(days=m // DAY_MINUTES), _clock(m), self.zone)
                ms = round(at.astimezone(UTC).timestamp() * 1000)
                found.append(max(ms, found[-1]) if found else ms)
            self._days[day] = found
        return found

    def split(self, start: int, end: int) -> PricedTime:
        """How the interval ``[start, end)`` (ms) falls into the tariff's periods: the
        difference of two running totals (a year of nights costs two bisections each)."""
        out = PricedTime()
        if end <= start:
            return out
        with self._lock:
            self._cover(start, end)
            (ms_a, priced_a), (ms_b, priced_b) = self._total(start), self._total(end)
        for kind, a, b in zip(PERIOD_KINDS, ms_a, ms_b, strict=True):
            if b > a:
                out.ms[kind] = b - a
        out.priced = priced_b - priced_a
        return out

    def _cover(self, start: int, end: int) -> None:
        """Make the running totals reach from before ``start`` to after ``end``."""
        if self._times and self._times[0] <= start and end < self._times[-1]:
            return
        first = datetime.fromtimestamp(start / 1000, self.zone).date() - timedelta(days=1)
        last = datetime.fromtimestamp(end / 1000, self.zone).date() + timedelta(days=1)
        if self._times:
            # grow by at least the span held: walking a year night by night rebuilds ~log n times
            held = self._span[1] - self._span[0]
            if first < self._span[0]:
                first = min(first, self._span[0] - held)
            if last > self._span[1]:
                last = max(last, self._span[1] + held)
            first, last = min(first, self._span[0]), max(last, self._span[1])
        self._span = (first, last)
        times: list[int] = []
        values: list[int] = []
        day = first
        while day <= last:
            changes = self._changes(day)
            times += changes[:-1]
            values += range(len(self._values))
            day += timedelta(days=1)
        times.append(self._changes(last)[-1])
        self._times, self._which = times, values
        # running totals at each change: ms per kind and ms x price
        kinds = [PERIOD_KINDS.index(kind) for kind, _ in self._values]
        ms, priced = [0, 0, 0], 0.0
        self._ms, self._priced = [tuple(ms)], [priced]
        for i, v in enumerate(values):
            step = times[i + 1] - times[i]
            ms[kinds[v]] += step
            priced += step * self._values[v][1]
            self._ms.append(tuple(ms))
            self._priced.append(priced)

    def _total(self, t: int) -> tuple[tuple[int, ...], float]:
        """The running totals at ``t`` (inside the covered span)."""
        i = bisect.bisect_right(self._times, t) - 1
        kind, price = self._values[self._which[i]]
        ms = list(self._ms[i])
        ms[PERIOD_KINDS.index(kind)] += t - self._times[i]
        return tuple(ms), self._priced[i] + (t - self._times[i]) * price


def _clock(minute: int) -> time:
    """The clock time ``minute`` minutes into a day (1440: midnight)."""
    minute %= DAY_MINUTES
    return time(minute // 60, minute % 60)
