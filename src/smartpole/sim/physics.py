"""Device models: what each kind of device on a pole measures, driven by physics, not noise.

This module holds the base ``Model``, the lamp and the environment sensors; ``equipment``
the rest of a pole's devices; ``models`` the table of all of them by kind.

A model is pure: ``report(ambient)`` advances it to the ambient's instant and returns catalog
keys with in-range values; ``command`` and ``update`` apply server-side RPC and shared
attributes; ``inject`` starts a fault. Every model draws from its own ``random.Random`` seeded
by (seed, device name), so a district replays identically for a seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, ClassVar

from smartpole.model.types import DeviceKind, Value
from smartpole.sim.environment import Ambient, aqi, bump

__all__ = [
    "MAINS_V",
    "Air",
    "Lamp",
    "Model",
    "Noise",
    "Report",
    "Site",
    "UnknownMethod",
    "Weather",
    "clamp",
    "count",
    "flag",
    "level_of",
    "settle",
]

Report = dict[str, Value]
MAINS_V = 220.0


class UnknownMethod(ValueError):
    """The device does not implement the RPC method."""


@dataclass(frozen=True, slots=True)
class Site:
    """Where a device is: its pole's place and how busy the spot is (0.6-1.4)."""

    lat: float = 22.54
    lon: float = 114.05
    height_m: float = 10.0
    busy: float = 1.0


def settle(old: float, target: float, dt: float, tau: float) -> float:
    """First-order lag: ``old`` moves toward ``target`` with time constant ``tau`` seconds."""
    return target + (old - target) * math.exp(-max(dt, 0.0) / tau)


def clamp(x: float, lo: float, hi: float) -> float:
    """``x`` held within [lo, hi]."""
    return lo if x < lo else hi if x > hi else x


def count(rng: random.Random, mean: float) -> int:
    """A Poisson-like count (normal approximation; exact enough for counters)."""
    return max(0, round(rng.gauss(mean, math.sqrt(mean)))) if mean > 0 else 0


def level_of(params: Any, *names: str) -> float:
    """A 0-100 level from RPC params given as a number or ``{"level": n}``-style object."""
    value = params
    if isinstance(params, dict):
        value = next((params[n] for n in names if n in params), None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a level 0-100 in {names[0]!r}, got {params!r}")
    return clamp(float(value), 0, 100)


def flag(params: Any, *names: str) -> bool:
    """A true/false from RPC params given as a bool or ``{"on": true}``-style object."""
    value = params
    if isinstance(params, dict):
        value = next((params[n] for n in names if n in params), None)
    if not isinstance(value, bool | int):
        raise ValueError(f"expected true/false in {names[0]!r}, got {params!r}")
    return bool(value)


class Model:
    """A simulated device. Subclasses set ``kind`` and may override the hooks."""

    kind: ClassVar[DeviceKind]
    faults: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, seed: int, site: Site | None = None) -> None:
        self.name = name
        self.site = site or Site()
        self.rng = random.Random(f"{seed}:{name}")  # noqa: S311 - a simulation
        self.t: float | None = None
        self.boot_t: float | None = None

    def report(self, amb: Ambient) -> Report:
        """Advance to ``amb.t`` and return this instant's readings."""
        if self.boot_t is None:
            self.boot_t = amb.t
        # A command's immediate report can come a moment after a scheduled one: never go back.
        dt = 0.0 if self.t is None else max(0.0, amb.t - self.t)
        self.t = amb.t if self.t is None else max(self.t, amb.t)
        return self.step(dt, amb)

    def step(self, dt: float, amb: Ambient) -> Report:
        """Advance ``dt`` seconds and measure (per kind)."""
        raise NotImplementedError

    def draw_w(self) -> float:
        """Electrical draw at the device's gateway port (W)."""
        return 0.0

    def command(self, method: str, params: Any, amb: Ambient) -> dict[str, Any]:
        """Apply a server-side RPC; returns the reply. ``UnknownMethod`` if not supported."""
        if method == "reboot":
            self.boot_t = amb.t
            return {"rebooted": True}
        raise UnknownMethod(method)

    def update(self, values: dict[str, Any], amb: Ambient) -> None:
        """Apply shared attributes the platform pushed (keys the device does not use are kept
        by the platform only)."""

    def inject(self, fault: str, amb: Ambient) -> bool:
        """Start fault ``fault`` if this kind has it; True if it started."""
        return False

    @property
    def uptime(self) -> int:
        """Seconds since (re)boot."""
        return 0 if self.t is None or self.boot_t is None else int(self.t - self.boot_t)


class Lamp(Model):
    """An LED street lamp: photocell on at dusk, commands override until the next dawn/dusk.

    Power is the LED's rated watts times the dim level plus the driver's loss; the energy
    counter and operating hours only grow. Faults: ``lamp_failure`` (dead driver),
    ``day_burner`` (the controller keeps it on), ``lamp_cycling`` (thermal cut-out: dark 4 of
    every 10 minutes), ``low_power`` (power at 40-70 %) and ``gear_failure`` (welded relay:
    reported off, burning on).
    """

    kind = DeviceKind.LAMP
    faults = ("lamp_failure", "day_burner", "lamp_cycling", "low_power", "gear_failure")
    CYCLE_S = 600.0  # a cycling lamp's period: lit 6 minutes, dark 4

    def __init__(self, name: str, seed: int, site: Site | None = None) -> None:
        super().__init__(name, seed, site)
        self.rated_w = {8.0: 60.0, 10.0: 90.0, 12.0: 150.0}.get(self.site.height_m, 120.0)
        self.on = False
        self.level = 100.0
        self.override: bool | None = None  # the darkness at the time of the command
        self.planned = False  # its gateway sets the level from a plan: no photocell
        self.commanded = False  # a command since the plan's last step: it holds until the next
        self.failed = False
        self.burning = False  # day burner: relay welded shut
        self.cycling = False  # thermal cut-out trips and resets
        self.weak = 1.0  # share of its power a failing LED string still draws
        self.welded = False  # gear failure: the relay does not open when switched off
        self._cycle = 0.0
        self.energy = self.rng.uniform(50, 3000)  # kWh since installation
        self.hours = self.energy * 1000 / self.rated_w
        self.temperature = 25.0
        self.volts = MAINS_V + self.rng.gauss(0, 2)
        self._power = 0.0

    def _auto(self, amb: Ambient) -> None:
        if self.planned:
            return
        if self.override is not None and self.override != amb.is_dark:
            self.override = None  # the next dusk or dawn ends a manual override
        if self.override is None:
            self.on = amb.is_dark
            # the usual program: full until midnight, 60% in the small hours
            self.level = 60.0 if 0 <= amb.hour < 5 else 100.0

    def step(self, dt: float, amb: Ambient) -> Report:
        self._auto(amb)
        self._cycle = (self._cycle + dt) % self.CYCLE_S
        cut_out = self.cycling and self._cycle >= 0.6 * self.CYCLE_S
        lit = (self.on or self.burning or self.welded) and not self.failed and not cut_out
        level = 100.0 if self.burning else self.level
        led = self.rated_w * level / 100 if lit else 0.0
        if lit:
            power = (led + 3.0 + 0.07 * led) * self.weak  # driver: fixed plus proportional loss
        else:
            dead = self.on and (self.failed or cut_out)
            power = 1.5 if dead else 0.4  # failed driver / standby
        power *= 1 + self.rng.gauss(0, 0.01)
        self.energy += power * dt / 3.6e6
        if self.on or self.burning or self.welded:
            self.hours += dt / 3600
        self._power = power
        pf = 0.82 + 0.15 * level / 100 if lit else 0.5
        volts = self.volts + self.rng.gauss(0, 0.8)
        self.temperature = settle(self.temperature, amb.temperature + 0.3 * led, dt, 900)
        return {
            "on": self.on or self.burning,
            "dim": round(level if self.on or self.burning else self.level),
            "power": round(power, 2),
            "voltage": round(volts, 1),
            "current": round(power / (volts * pf), 3),
            "power_factor": round(pf, 3),
            "energy": round(self.energy, 4),
            "hours": round(self.hours, 3),
            "temperature": round(self.temperature, 1),
            "lux": round(amb.lux + (0.25 * led if lit else 0.0), 1),
        }

    def draw_w(self) -> float:
        return self._power

    def command(self, method: str, params: Any, amb: Ambient) -> dict[str, Any]:
        if method == "setDim":
            self.level = level_of(params, "level", "dim", "value")
            self.on = self.level > 0
        elif method == "setOn":
            self.on = flag(params, "on", "value", "state")
        elif method == "reboot":
            self.override = None
            return super().command(method, params, amb)
        elif method == "getState":
            return {"on": self.on, "dim": round(self.level)}
        else:
            raise UnknownMethod(method)
        self.override = amb.is_dark
        self.commanded = True
        return {"on": self.on, "dim": round(self.level)}

    def follow(self, level: float, step: bool) -> None:
        """Take a level from the gateway's plan: at a new ``step`` always, else (within a
        fade, or after a command) only when no command came since the step began."""
        if step:
            self.commanded = False
        elif self.commanded:
            return
        self.planned = True
        self.level = clamp(level, 0, 100)
        self.on = self.level > 0
        self.override = None

    def update(self, values: dict[str, Any], amb: Ambient) -> None:
        if "dim" in values:
            self.command("setDim", values["dim"], amb)
        if "on" in values:
            self.command("setOn", values["on"], amb)

    def inject(self, fault: str, amb: Ambient) -> bool:
        if fault == "lamp_failure" and not self.failed:
            self.failed = True
            return True
        if fault == "day_burner" and not self.burning:
            self.burning = True
            return True
        if fault == "lamp_cycling" and not self.cycling:
            self.cycling = True
            return True
        if fault == "low_power" and self.weak == 1.0:
            self.weak = self.rng.uniform(0.4, 0.7)
            return True
        if fault == "gear_failure" and not self.welded:
            self.welded = True
            return True
        return False


class Air(Model):
    """Air quality: traffic-driven NO2, CO and particles, photochemical O3 by afternoon sun;
    wind disperses, rain washes out, everything lags the cause by tens of minutes."""

    kind = DeviceKind.AIR

    def __init__(self, name: str, seed: int, site: Site | None = None) -> None:
        super().__init__(name, seed, site)
        self.c: dict[str, float] = {}

    def targets(self, amb: Ambient) -> dict[str, float]:
        """Equilibrium concentrations for these conditions (catalog units)."""
        disperse = 1.6 / (0.6 + 0.35 * amb.wind_speed)
        washout = 1 / (1 + amb.rain / 4)
        road = amb.traffic * self.site.busy
        pm25 = (12 + 45 * road) * disperse * washout
        sunlit = max(0.0, amb.sun) * bump(amb.hour, 14.5, 3.5)
        return {
            "pm25": pm25,
            "pm10": pm25 * 1.65 + 8 * washout,
            "no2": (14 + 70 * road) * disperse,
            "o3": 25 + 170 * sunlit * (1 - 0.45 * road) * washout,
            "co": (0.35 + 1.2 * road) * disperse,
            "so2": 4 + 6 * road * disperse,
        }

    def step(self, dt: float, amb: Ambient) -> Report:
        now: dict[str, float] = {}
        for key, target in self.targets(amb).items():
            old = self.c.get(key, target)
            value = settle(old, target, dt, 1800) * (1 + self.rng.gauss(0, 0.03))
            self.c[key] = max(0.0, value)
            now[key] = round(self.c[key], 2 if key == "co" else 1)
        return {**now, "aqi": aqi(now)}


class Weather(Model):
    """A weather station: the district's weather plus this spot's small differences."""

    kind = DeviceKind.WEATHER

    def __init__(self, name: str, seed: int, site: Site | None = None) -> None:
        super().__init__(name, seed, site)
        self.offset = self.rng.gauss(0, 0.4)  # shade, asphalt, height above ground

    def step(self, dt: float, amb: Ambient) -> Report:
        g = self.rng.gauss
        return {
            "temperature": round(amb.temperature + self.offset + g(0, 0.1), 1),
            "humidity": round(clamp(amb.humidity + g(0, 1), 0, 100), 1),
            "pressure": round(amb.pressure + g(0, 0.2), 1),
            "wind_speed": round(max(0.0, amb.wind_speed * (1 + g(0, 0.25))), 1),
            "wind_direction": round((amb.wind_direction + g(0, 20)) % 360),
            "rain": round(amb.rain, 1),
            "illuminance": round(amb.lux * (1 + g(0, 0.02))),
        }


class Noise(Model):
    """A sound level meter: traffic noise by day, quiet nights, rain on the pavement."""

    kind = DeviceKind.NOISE

    def step(self, dt: float, amb: Ambient) -> Report:
        laeq = 44 + 26 * amb.traffic * self.site.busy**0.5 + min(6.0, amb.rain / 3)
        laeq = clamp(laeq + self.rng.gauss(0, 1.2), 30, 110)
        return {
            "laeq": round(laeq, 1),
            "lamax": round(min(140.0, laeq + 6 + self.rng.expovariate(1 / 6)), 1),
        }
