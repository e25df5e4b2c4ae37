"""Time-of-use prices over stretches of time: how much of an interval falls in each period.

A tariff's periods are clock times of the tenant's local day; an interval (a night, an hour) is
walked from one period boundary to the next in local time, so a period boundary on a day with a
daylight saving change still falls at its clock time.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo

from smartpole.model.energy import DAY_MINUTES, PeriodKind, Tariff

__all__ = ["PricedTime", "TariffClock"]

MINUTE_MS = 60_000


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

    def split(self, start: int, end: int) -> PricedTime:
        """How the interval ``[start, end)`` (ms) falls into the tariff's periods."""
        out = PricedTime()
        t = start
        while t < end:
            local = datetime.fromtimestamp(t / 1000, self.zone)
            minute = local.hour * 60 + local.minute
            i = bisect.bisect_right(self._starts, minute) - 1
            kind, price = self._values[i]
            nxt = self._starts[i + 1] if i + 1 < len(self._starts) else DAY_MINUTES
            day = local.date() + timedelta(days=nxt // DAY_MINUTES)
            at = time((nxt % DAY_MINUTES) // 60, nxt % 60)
            boundary = datetime.combine(day, at, self.zone).astimezone(UTC).timestamp()
            # a boundary the clock skipped (DST) or at t itself still moves on by a minute
            stop = min(end, max(round(boundary * 1000), t + MINUTE_MS - t % MINUTE_MS))
            out.ms[kind] = out.ms.get(kind, 0) + stop - t
            out.priced += (stop - t) * price
            t = stop
        return out
