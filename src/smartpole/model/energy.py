"""Lighting energy values: where a lamp is, time-of-use tariffs, the grid's emission factor.

A :class:`Tariff` cannot exist invalid: its periods cover the 24 hours of a day exactly once
and no price is negative; every problem is reported at once, with its location, as
:class:`~smartpole.errors.InvalidInput`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from smartpole.errors import InvalidInput

__all__ = [
    "DAY_MINUTES",
    "PERIOD_KINDS",
    "GridFactor",
    "LampPlace",
    "Level",
    "PeriodKind",
    "Tariff",
    "TariffPeriod",
    "clock_minutes",
]

DAY_MINUTES = 1440
PeriodKind = Literal["peak", "flat", "valley"]
PERIOD_KINDS: tuple[PeriodKind, ...] = ("peak", "flat", "valley")
Level = Literal["lamp", "pole", "road", "district", "tenant"]


@dataclass(frozen=True, slots=True)
class LampPlace:
    """A lamp, the pole, road and district it belongs to, its rated power and position (from
    the registry); the baseline burns ``rated_w`` from dusk to dawn at (``lat``, ``lon``)."""

    device_id: int
    pole_id: int
    road: str
    district: str
    rated_w: float
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class GridFactor:
    """The grid's emission factor in kg CO2 per kWh and the document it comes from."""

    kg_per_kwh: float
    source: str

    def __post_init__(self) -> None:
        if not math.isfinite(self.kg_per_kwh) or self.kg_per_kwh < 0:
            raise InvalidInput(
                "an emission factor is a finite number of kg CO2/kWh, 0 or more",
                errors=[{"loc": ["kg_per_kwh"], "msg": "must be a finite number >= 0"}],
            )


def clock_minutes(text: str) -> int:
    """``"07:30"`` -> 450; ``"24:00"`` -> 1440 (a period's end). ValueError if not a clock time."""
    hours, sep, minutes = text.partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError(f"{text!r} is not a clock time HH:MM")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or value > DAY_MINUTES:
        raise ValueError(f"{text!r} is not a clock time between 00:00 and 24:00")
    return value


@dataclass(frozen=True, slots=True)
class TariffPeriod:
    """Minutes ``[start, end)`` of the local day at ``price`` per kWh; ``end < start`` wraps
    past midnight (a valley from 23:00 to 07:00)."""

    kind: PeriodKind
    start: int
    end: int
    price: float

    def minutes(self) -> range | tuple[range, range]:
        """The minutes of the day this period holds (two runs when it wraps)."""
        if self.start < self.end:
            return range(self.start, self.end)
        return (range(self.start, DAY_MINUTES), range(self.end))


@dataclass(frozen=True, slots=True)
class Tariff:
    """A tenant's time-of-use tariff: periods covering the day once, prices in ``currency``."""

    name: str
    currency: str
    periods: tuple[TariffPeriod, ...]

    def __post_init__(self) -> None:
        errors = _problems(self.periods)
        if errors:
            raise InvalidInput(
                f"tariff {self.name!r}: " + "; ".join(e["msg"] for e in errors), errors=errors
            )

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Tariff:
        """A tariff from its document (``{"name", "currency", "periods": [{"kind", "start":
        "HH:MM", "end": "HH:MM", "price"}]}``); InvalidInput naming each problem's place."""
        errors: list[dict[str, Any]] = []
        periods: list[TariffPeriod] = []
        raw = body.get("periods")
        if not isinstance(raw, list) or not raw:
            raise InvalidInput(
                "a tariff needs a list of periods",
                errors=[{"loc": ["periods"], "msg": "must be a non-empty list"}],
            )
        for i, item in enumerate(raw):
            loc: list[Any] = ["periods", i]
            if not isinstance(item, dict):
                errors.append({"loc": loc, "msg": "must be an object"})
                continue
            kind, price = item.get("kind"), item.get("price")
            bounds: list[int] = []
            for field in ("start", "end"):
                try:
                    bounds.append(clock_minutes(str(item.get(field))))
                except ValueError as err:
                    errors.append({"loc": [*loc, field], "msg": str(err)})
            if kind not in PERIOD_KINDS:
                errors.append({"loc": [*loc, "kind"], "msg": "must be peak, flat or valley"})
            if isinstance(price, bool) or not isinstance(price, int | float):
                errors.append({"loc": [*loc, "price"], "msg": "must be a number"})
            elif len(bounds) == 2 and kind in PERIOD_KINDS:
                periods.append(TariffPeriod(kind, bounds[0] % DAY_MINUTES, bounds[1], price))
        if errors:
            raise InvalidInput("; ".join(e["msg"] for e in errors), errors=errors)
        return cls(str(body.get("name", "")), str(body.get("currency", "CNY")), tuple(periods))

    def price_table(self) -> tuple[tuple[PeriodKind, float], ...]:
        """Each minute of the day's period kind and price (1440 entries)."""
        table: list[tuple[PeriodKind, float]] = [("flat", 0.0)] * DAY_MINUTES
        for p in self.periods:
            for run in _runs(p):
                for m in run:
                    table[m] = (p.kind, p.price)
        return tuple(table)


def _runs(p: TariffPeriod) -> tuple[range, ...]:
    runs = p.minutes()
    return runs if isinstance(runs, tuple) else (runs,)


def _problems(periods: tuple[TariffPeriod, ...]) -> list[dict[str, Any]]:
    """Every problem of a tariff's periods, each with its location."""
    errors: list[dict[str, Any]] = []
    owner: list[int | None] = [None] * DAY_MINUTES
    for i, p in enumerate(periods):
        loc: list[Any] = ["periods", i]
        if not math.isfinite(p.price) or p.price < 0:
            errors.append({"loc": [*loc, "price"], "msg": f"price {p.price} must be >= 0"})
        if not (0 <= p.start < DAY_MINUTES and 0 <= p.end <= DAY_MINUTES) or p.start == p.end:
            errors.append({"loc": loc, "msg": "a period runs from one clock time to another"})
            continue
        for run in _runs(p):
            for m in run:
                other = owner[m]
                if other is not None:
                    at = f"{m // 60:02}:{m % 60:02}"
                    errors.append(
                        {"loc": loc, "msg": f"period {i} overlaps period {other} at {at}"}
                    )
                    break
                owner[m] = i
            else:
                continue
            break
    hole = next((m for m, o in enumerate(owner) if o is None), None)
    if hole is not None:
        errors.append(
            {
                "loc": ["periods"],
                "msg": f"the periods leave {hole // 60:02}:{hole % 60:02} uncovered: "
                "they must cover 24 h",
            }
        )
    return errors
