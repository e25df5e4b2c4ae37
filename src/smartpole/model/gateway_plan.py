"""A pole gateway's lighting plan as it travels: the ``lightingPlan`` shared attribute.

The platform writes it (``smartpole.lighting.push``) and a gateway reads it (the simulator's, or
a device maker's firmware following ``docs/lighting-gateways.md``), so the shape lives here, below
both. Lamps with the same steps share one list (``plans``) and name it by index (``lamps``): the
lamps of one gateway usually run the same program, and a plan of 50 lamps for 7 nights stays
a few kilobytes.

    {"v": 1, "hash": "3f2a...", "generated": 1765000000000, "validUntil": 1765600000000,
     "base": 1765030000000,
     "plans": [[[0, 100, 60], [15000, 70, 0], ...]],
     "lamps": {"FT-0001-lamp": 0, "FT-0002-lamp": 0}}

A step is ``[seconds after base, level %, fade s]``, the seconds with a fraction down to the
millisecond where the moment has one (a sunset): counting from one base moment keeps a step to
a dozen bytes (50 lamps with 50 different plans for 7 nights: under 40 kB, where absolute
milliseconds made 49 kB, close to the usual 64 KiB MQTT limit).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "PLAN_ATTRIBUTE",
    "PLAN_VERSION",
    "GatewayPlan",
    "Steps",
    "plan_attribute",
    "plan_level",
    "read_plan_attribute",
]

PLAN_ATTRIBUTE = "lightingPlan"
PLAN_VERSION = 1
Steps = tuple[tuple[int, float, int], ...]  # (ts_ms UTC, level %, fade_s), in time order


@dataclass(frozen=True, slots=True)
class GatewayPlan:
    """The steps of every lamp behind one gateway (by sub-device name), valid until a moment."""

    gateway: str
    generated_ms: int
    valid_until_ms: int
    lamps: Mapping[str, Steps]

    @property
    def hash(self) -> str:
        """A digest of the lamps' steps: equal plans have equal hashes, whenever generated."""
        body = orjson.dumps(
            {name: list(steps) for name, steps in self.lamps.items()},
            option=orjson.OPT_SORT_KEYS,
        )
        return hashlib.sha256(body).hexdigest()[:16]


def plan_attribute(plan: GatewayPlan) -> dict[str, Any]:
    """The plan as the JSON value of the ``lightingPlan`` shared attribute."""
    index: dict[Steps, int] = {}
    for steps in plan.lamps.values():
        index.setdefault(steps, len(index))
    # on a whole second, so that clock-time steps count whole seconds from it
    base = min((s[0][0] for s in index if s), default=plan.generated_ms) // 1000 * 1000
    return {
        "v": PLAN_VERSION,
        "hash": plan.hash,
        "generated": plan.generated_ms,
        "validUntil": plan.valid_until_ms,
        "base": base,
        "plans": [
            [[_seconds(ts - base), _number(level), fade] for ts, level, fade in s] for s in index
        ],
        "lamps": {name: index[steps] for name, steps in sorted(plan.lamps.items())},
    }


def _seconds(ms: int) -> float | int:
    """Milliseconds as seconds: whole ones as an integer, else with their fraction."""
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def _number(level: float) -> float | int:
    """A whole level as an integer: ``70`` rather than ``70.0`` on the wire."""
    return int(level) if level == int(level) else level


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    return value


def read_plan_attribute(value: Any, gateway: str = "") -> GatewayPlan:
    """Parse a ``lightingPlan`` attribute (ValueError naming the first problem and where)."""
    if not isinstance(value, dict):
        raise ValueError(f"{PLAN_ATTRIBUTE}: expected an object, got {type(value).__name__}")
    if value.get("v") != PLAN_VERSION:
        raise ValueError(f"v: this reader knows version {PLAN_VERSION}, got {value.get('v')!r}")
    plans, lamps = value.get("plans"), value.get("lamps")
    if not isinstance(plans, list) or not isinstance(lamps, dict):
        raise ValueError("plans must be a list and lamps an object")
    base = _int(value.get("base"), "base")
    parsed: list[Steps] = []
    for i, steps in enumerate(plans):
        if not isinstance(steps, list):
            raise ValueError(f"plans[{i}]: expected a list of steps")
        out: list[tuple[int, float, int]] = []
        for j, step in enumerate(steps):
            where = f"plans[{i}][{j}]"
            if not isinstance(step, list) or len(step) != 3:
                raise ValueError(f"{where}: expected [seconds after base, level, fade_s]")
            if isinstance(step[0], bool) or not isinstance(step[0], int | float):
                raise ValueError(f"{where}: the moment is a number of seconds after base")
            ts = base + round(step[0] * 1000)
            level, fade = step[1], _int(step[2], where)
            if isinstance(level, bool) or not isinstance(level, int | float):
                raise ValueError(f"{where}: the level is a number")
            if not 0 <= level <= 100 or fade < 0:
                raise ValueError(f"{where}: a level is 0-100 and a fade 0 s or more")
            if out and ts < out[-1][0]:
                raise ValueError(f"{where}: steps are in time order")
            out.append((ts, float(level), fade))
        parsed.append(tuple(out))
    named: dict[str, Steps] = {}
    for name, i in lamps.items():
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(parsed):
            raise ValueError(f"lamps.{name}: expected an index into plans, got {i!r}")
        named[name] = parsed[i]
    return GatewayPlan(
        gateway,
        _int(value.get("generated"), "generated"),
        _int(value.get("validUntil"), "validUntil"),
        named,
    )


def plan_level(steps: Steps, ts_ms: int) -> float:
    """The level at ``ts_ms`` (fades linear from the level before; 0 % before the first step):
    the same arithmetic as ``smartpole.lighting.plan.level_at``, for a gateway's own clock."""
    i = bisect.bisect_right(steps, ts_ms, key=lambda step: step[0])
    if i == 0:
        return 0.0
    ts, level, fade_s = steps[i - 1]
    elapsed = ts_ms - ts
    if fade_s and elapsed < fade_s * 1000:
        before = steps[i - 2][1] if i >= 2 else 0.0
        return round(before + (level - before) * elapsed / (fade_s * 1000), 1)
    return level
