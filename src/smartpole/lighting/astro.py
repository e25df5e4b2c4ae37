"""The night of a position on a date, in its time zone, from astral's NOAA sun.

A night is named by the date of its evening. Its events, as UTC milliseconds:

- ``sunset`` on the evening's date and ``sunrise`` on the next morning: the lamps' night;
- ``civil_dusk``/``civil_dawn`` (the sun 6° below the horizon); where the sun does not sink that
  far (Helsinki in June) they fall back to sunset and sunrise;
- ``virtual_midnight``: halfway between sunset and sunrise (AstroDIM's anchor; it moves with the
  seasons and the position, unlike 00:00).

Polar rules: where the sun does not rise (polar night), the missing evening or morning is the
local solar noon, so consecutive nights join into one that lasts all day. Where the sun does not
set (midnight sun) the night is empty: every event is solar midnight and the lamps stay off.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from astral import Observer
from astral import sun as solar

__all__ = ["Night", "NightKind", "night_of", "position_key"]

HORIZON = -0.833  # sunrise/sunset: the sun's upper limb with refraction
GRID_DEG = 0.05  # about 5 km: within it the sun's times differ by under 15 s


class NightKind(enum.StrEnum):
    """How the sun behaves that night."""

    NORMAL = "normal"
    POLAR = "polar"  # no sunrise on one side of it: the night runs from/to solar noon
    EMPTY = "empty"  # midnight sun: no night at all


@dataclass(frozen=True, slots=True)
class Night:
    """The events of one night at one position (UTC ms); see the module's doc for the rules."""

    date: dt.date
    kind: NightKind
    sunset: int
    civil_dusk: int
    virtual_midnight: int
    civil_dawn: int
    sunrise: int

    @property
    def length_ms(self) -> int:
        """From sunset to sunrise."""
        return self.sunrise - self.sunset


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def position_key(lat: float, lon: float) -> tuple[float, float]:
    """A position rounded to the grid the nights are cached on."""
    return (round(lat / GRID_DEG) * GRID_DEG, round(lon / GRID_DEG) * GRID_DEG)


def _event(
    observer: Observer, day: dt.date, zone: ZoneInfo, civil: bool, rising: bool
) -> int | None:
    """Sunrise/sunset (or civil dawn/dusk) on the local ``day``, None when the sun does not
    cross that line that day."""
    try:
        if civil:
            when = (solar.dawn if rising else solar.dusk)(observer, day, 6.0, zone)
        else:
            when = (solar.sunrise if rising else solar.sunset)(observer, day, zone)
    except ValueError:
        return None
    return _ms(when)


def _noon(observer: Observer, day: dt.date, zone: ZoneInfo) -> int:
    return _ms(solar.noon(observer, day, zone))


@functools.lru_cache(maxsize=200_000)
def night_of(lat: float, lon: float, tz: str, date: dt.date) -> Night:
    """The night whose evening is ``date`` at a position (cached: pass ``position_key`` values)."""
    zone = ZoneInfo(tz)
    observer = Observer(latitude=lat, longitude=lon, elevation=0.0)
    morning = date + dt.timedelta(days=1)
    sunset = _event(observer, date, zone, civil=False, rising=False)
    sunrise = _event(observer, morning, zone, civil=False, rising=True)
    kind = NightKind.NORMAL
    if sunset is None or sunrise is None:
        midnight = solar.midnight(observer, morning, zone)
        if solar.elevation(observer, midnight) > HORIZON:
            # midnight sun: the sun stays up through the night
            at = _ms(midnight)
            return Night(date, NightKind.EMPTY, at, at, at, at, at)
        kind = NightKind.POLAR
        if sunset is None:
            sunset = _noon(observer, date, zone)
        if sunrise is None:
            sunrise = _noon(observer, morning, zone)
    middle = (sunset + sunrise) // 2
    dusk = _event(observer, date, zone, civil=True, rising=False)
    dawn = _event(observer, morning, zone, civil=True, rising=True)
    dusk = dusk if dusk is not None and sunset <= dusk <= middle else sunset
    dawn = dawn if dawn is not None and middle <= dawn <= sunrise else sunrise
    return Night(date, kind, sunset, dusk, middle, dawn, sunrise)
