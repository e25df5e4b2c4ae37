"""The district's conditions at an instant: sun, weather, traffic, people, air.

Pure functions of (seed, time, place): no state, no order dependence, so any device may ask for
any instant and two runs with one seed agree. Slow random variation (clouds, rain spells, wind)
is smooth value noise over a hashed lattice, not a random walk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from smartpole.hub.aqi import BREAKPOINTS, iaqi

__all__ = ["Ambient", "District", "aqi", "bump", "noise"]

MASK = (1 << 64) - 1


def _hash(seed: int, channel: int, k: int) -> float:
    """A uniform number in [0, 1) for lattice point ``k`` (splitmix64)."""
    z = (seed * 0x9E3779B97F4A7C15 + channel * 0xBF58476D1CE4E5B9 + k * 0x94D049BB133111EB) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return ((z ^ (z >> 31)) & MASK) / 2**64


def noise(seed: int, channel: int, x: float) -> float:
    """Smooth value noise in [0, 1): equal inputs give equal outputs, nearby inputs nearby ones."""
    k = math.floor(x)
    f = x - k
    f = f * f * (3 - 2 * f)  # smoothstep: no kinks at lattice points
    return _hash(seed, channel, k) * (1 - f) + _hash(seed, channel, k + 1) * f


def bump(hour: float, centre: float, width: float) -> float:
    """A Gaussian bump over the hour of day (wrapping at midnight), 1 at ``centre``."""
    d = (hour - centre + 12) % 24 - 12
    return math.exp(-0.5 * (d / width) ** 2)


def aqi(concentrations: dict[str, float]) -> int:
    """The air quality index (HJ 633-2012): the highest individual index of the pollutants given
    (0-500); keys without breakpoints are left out."""
    return round(
        max((iaqi(k, c) for k, c in concentrations.items() if k in BREAKPOINTS), default=0)
    )


@dataclass(frozen=True, slots=True)
class Ambient:
    """Conditions at one instant over the district."""

    t: float  # Unix seconds
    hour: float  # local hour of day, 0-24
    sun: float  # sine of the sun's elevation (negative at night)
    lux: float  # outdoor illuminance (lx)
    temperature: float  # °C
    humidity: float  # %
    pressure: float  # hPa
    wind_speed: float  # m/s
    wind_direction: float  # degrees
    rain: float  # mm/h
    traffic: float  # road traffic, 0 (empty) - 1 (rush hour)
    activity: float  # people about, 0-1

    @property
    def is_dark(self) -> bool:
        """Dark enough for a photocell to switch street lights on (below ~30 lx)."""
        return self.lux < 30


class District:
    """The climate and rhythm of one district (default: subtropical Shenzhen)."""

    def __init__(self, seed: int, lat: float = 22.54, lon: float = 114.05) -> None:
        self.seed = seed
        self.lat = lat
        self.lon = lon
        self.utc_offset_h = round(lon / 15)  # Shenzhen: UTC+8

    def sun(self, t: float) -> float:
        """Sine of the sun's elevation at ``t`` (a textbook approximation, within a degree)."""
        day = (t / 86_400) % 365.25
        decl = math.radians(-23.44) * math.cos(2 * math.pi * (day + 10) / 365.25)
        solar_hour = (t / 3600 + self.lon / 15) % 24
        ha = math.radians(15 * (solar_hour - 12))
        lat = math.radians(self.lat)
        return math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(ha)

    def at(self, t: float) -> Ambient:
        """Conditions at Unix time ``t``."""
        s = self.seed
        hour = (t / 3600 + self.utc_offset_h) % 24
        sun = self.sun(t)
        # Rain comes in spells of hours: wet when slow noise passes a threshold.
        wet = noise(s, 1, t / 10_800)
        rain = max(0.0, (wet - 0.72) / 0.28) ** 2 * 40 * (0.5 + noise(s, 2, t / 900))
        cloud = min(1.0, 0.2 + 0.6 * noise(s, 3, t / 14_400) + rain / 10)
        if sun > 0:
            lux = 110_000 * sun * (1 - 0.75 * cloud)
        else:  # civil twilight fades to street darkness
            lux = max(0.0, 400 * (1 + sun / 0.105)) if sun > -0.105 else 0.0
        season = math.cos(2 * math.pi * ((t / 86_400) % 365.25 - 200) / 365.25)  # 1 in July
        temperature = (
            23.5
            + 5.5 * season
            + 3.5 * math.sin(2 * math.pi * (hour - 9) / 24)  # warmest mid-afternoon
            + 2 * (noise(s, 4, t / 43_200) - 0.5)
            - min(4.0, rain / 5)
        )
        humidity = min(100.0, 72 + 10 * season - 2.2 * (temperature - 25) + rain * 2)
        pressure = 1009 - 6 * season + 6 * (noise(s, 5, t / 86_400) - 0.5) - rain / 10
        wind = 1.2 + 5 * noise(s, 6, t / 7200) ** 2 + rain / 6
        direction = (360 * noise(s, 7, t / 21_600) + 120) % 360
        traffic = min(
            1.0,
            0.06
            + 0.85 * bump(hour, 8.5, 1.1)
            + 0.9 * bump(hour, 18.2, 1.4)
            + 0.55 * bump(hour, 13, 3.5),
        )
        activity = min(1.0, 0.04 + 0.5 * bump(hour, 12.5, 3) + 0.75 * bump(hour, 20, 2.2))
        return Ambient(
            t=t,
            hour=hour,
            sun=sun,
            lux=lux,
            temperature=temperature,
            humidity=max(20.0, humidity),
            pressure=pressure,
            wind_speed=wind,
            wind_direction=direction,
            rain=rain,
            traffic=traffic,
            activity=activity,
        )
