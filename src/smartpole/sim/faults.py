"""Fault and event injection: which faults exist, how often they start, how long they last.

A rate is the expected number of starts per device per simulated hour. At each report the
chance that a fault starts is ``min(1, rate x hours since the last report)``: rate 1 with
hourly reports starts it on every device at once; rate 0 turns it off.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["DEFAULT_RATES", "FAULTS", "LAMP_FAULTS", "LAMP_FAULT_RATES", "FaultRates"]

FAULTS: dict[str, str] = {
    "lamp_failure": "a lamp's driver dies: switched on, draws next to nothing, gives no light",
    "day_burner": "a lamp's relay sticks: full power around the clock",
    "tilt_drift": "a pole starts to lean, a fraction of a degree per hour",
    "flood": "water rises 20-60 cm at a flood sensor, then drains",
    "manhole_open": "a manhole cover is lifted (for two hours on average)",
    "sos": "someone presses an emergency button; a call of 1-5 minutes follows",
    "offline": "a device goes silent (a pole: its gateway drops the connection) for ~15 min",
    "late": "a pole's gateway buffers 3-12 reports, then sends them at once (late readings)",
    "lost_plan": "a pole's gateway forgets its lighting plan: its lamps stay at their last level",
}

# Per device per simulated hour: a 500-pole district shows a few events an hour.
DEFAULT_RATES: dict[str, float] = {
    "lamp_failure": 0.0005,
    "day_burner": 0.0002,
    "tilt_drift": 0.0002,
    "flood": 0.005,
    "manhole_open": 0.005,
    "sos": 0.01,
    "offline": 0.002,
    "late": 0.002,
    "lost_plan": 0.0005,
}

# The lamp diagnostics' faults (#15 L5: docs/lighting-diagnostics.md), a block of their own.
# day_burner against gear_failure: a day burner's controller keeps the lamp on and says so
# (photocell or clock wrong); a gear failure's controller switches it off and says so, but the
# relay is welded and the lamp burns on (seen by day, when it should be off).
LAMP_FAULTS: dict[str, str] = {
    "lamp_cycling": "a lamp's driver overheats: dark 4 of every 10 minutes while switched on",
    "low_power": "a lamp's LED strings fail: it draws 40-70 % of what its level needs",
    "gear_failure": "a lamp's relay welds: switched off (and reporting off), it burns on",
}
LAMP_FAULT_RATES: dict[str, float] = {
    "lamp_cycling": 0.0002,
    "low_power": 0.0002,
    "gear_failure": 0.0001,
}
FAULTS.update(LAMP_FAULTS)
DEFAULT_RATES.update(LAMP_FAULT_RATES)

OFFLINE_MEAN_S = 900.0


@dataclass(slots=True)
class FaultRates:
    """The rate of every fault; ``parse`` reads ``NAME=RATE`` options."""

    rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RATES))

    @classmethod
    def parse(cls, specs: list[str], defaults: bool = True) -> FaultRates:
        """Rates from ``["lamp_failure=0.1", "none", "all=0.5", ...]`` over the defaults.

        ``none`` sets every rate to 0 (then later items turn some on); ``all=R`` sets every one.
        """
        out = cls() if defaults else cls(dict.fromkeys(FAULTS, 0.0))
        for spec in specs:
            if spec == "none":
                out.rates = dict.fromkeys(FAULTS, 0.0)
                continue
            name, sep, value = spec.partition("=")
            try:
                rate = float(value)
            except ValueError:
                rate = -1.0
            if not sep or rate < 0:
                raise ValueError(f"fault {spec!r}: expected NAME=RATE with RATE >= 0")
            if name == "all":
                out.rates = dict.fromkeys(FAULTS, rate)
            elif name in FAULTS:
                out.rates[name] = rate
            else:
                raise ValueError(f"unknown fault {name!r}; one of: all, {', '.join(FAULTS)}")
        return out

    def starts(self, name: str, dt_s: float, rng: random.Random) -> bool:
        """Whether fault ``name`` starts in a step of ``dt_s`` simulated seconds."""
        rate = self.rates.get(name, 0.0)
        return rate > 0 and dt_s > 0 and rng.random() < min(1.0, rate * dt_s / 3600)

    def offline_for(self, rng: random.Random) -> float:
        """How long an outage lasts (simulated seconds)."""
        return rng.expovariate(1 / OFFLINE_MEAN_S)

    def late_reports(self, rng: random.Random) -> int:
        """How many reports a gateway holds back before sending them together."""
        return rng.randint(3, 12)
