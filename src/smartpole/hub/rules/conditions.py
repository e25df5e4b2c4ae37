"""Conditions of a rule and their evaluation against one device's latest values.

A condition is a small tree: thresholds, rates, missing data and time windows at the leaves,
``all``/``any``/``not`` above them, ``for`` (hold for a duration) and ``hold`` (keep holding
for a while after it stops) on any node. A threshold may have a separate ``clear`` value
(hysteresis): once it holds, it stops only when the value crosses back past ``clear``. Evaluation is
pure: the caller passes the device's values, the time and a per-(rule, device) state dict in
which stateful nodes (``for``, rates) keep what must survive between batches and restarts.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any, cast

from astral import LocationInfo
from astral.sun import sun

from smartpole.hub.aqi import iaqi
from smartpole.model.types import Value

__all__ = [
    "ANY_KEY",
    "All",
    "Any_",
    "Condition",
    "Context",
    "For",
    "Hold",
    "Missing",
    "Not",
    "Offline",
    "Rate",
    "Threshold",
    "Window",
]

OPS = (">", ">=", "<", "<=", "==", "!=", "between")
# What a condition reads when any reading wakes it; a control character keeps it apart from
# every key a device can send (key_problem refuses them), "*" included.
ANY_KEY = "\x00any"
Values = Mapping[str, tuple[int, Value]]


@dataclass
class Context:
    """What one evaluation sees: the device's latest ``(ts, value)`` per key, its last-seen
    time, the time of evaluation (ms), where its pole is and the rule's state for it; when the
    platform started and whether the rule held at its last evaluation."""

    values: Values
    now: int
    state: dict[str, Any]
    seen: int | None = None
    lat: float | None = None
    lon: float | None = None
    tz: tzinfo = UTC
    started: int = 0  # when this process started (ms): its own downtime is no device's outage
    holding: bool = False  # the rule held at its last evaluation (its alarm stands)


class Condition:
    """A node of a condition tree; ``id`` keys its state, ``keys`` what readings matter."""

    id: str = ""
    timed: bool = False  # may change with time alone (needs the periodic check)

    def keys(self) -> set[str]:
        """The telemetry keys whose readings may change this condition."""
        return set()

    def test(self, ctx: Context) -> bool:
        """Whether the condition holds now (updating state as it goes)."""
        raise NotImplementedError


def _number(value: Value) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return None


_ORDER: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def compare(op: str, left: Value, right: Any) -> bool:
    """``left op right``; numbers compare as numbers, anything else only by (in)equality."""
    if op == "between":
        x = _number(left)
        return x is not None and right[0] <= x <= right[1]
    if op in ("==", "!="):
        if isinstance(right, bool) or isinstance(left, bool):
            same = _number(left) == _number(right) if not isinstance(right, str) else False
        elif isinstance(right, int | float) and isinstance(left, int | float):
            same = math.isclose(left, right, rel_tol=0, abs_tol=1e-9)
        else:
            same = left == right
        return same if op == "==" else not same
    x, y = _number(left), _number(right)
    if x is None or y is None:
        return False
    if op == ">":
        return x > y
    if op == ">=":
        return x >= y
    if op == "<":
        return x < y
    return x <= y


@dataclass
class Threshold(Condition):
    """``key op value``; ``aqi`` compares the pollutant's individual AQI (HJ 633-2012).

    With ``clear`` (hysteresis), once the threshold holds it keeps holding while
    ``key op clear`` does: ``water_level >= 15, clear 12`` raises at 15 and ends below 12.
    """

    key: str
    op: str
    value: Any
    aqi: bool = False
    clear: Any = None
    id: str = ""

    def keys(self) -> set[str]:
        """Only the key it compares."""
        return {self.key}

    def __post_init__(self) -> None:
        # The common threshold (a number against a number, no AQI, no hysteresis) is decided
        # by one comparison, its operator and bounds resolved here rather than per reading.
        self._plain: tuple[Callable[[float, float], bool], float] | None = None
        self._between: tuple[float, float] | None = None
        if self.aqi or self.clear is not None:
            return
        if self.op in _ORDER and _is_number(self.value):
            self._plain = (_ORDER[self.op], float(self.value))
        elif (
            self.op == "between"
            and isinstance(self.value, list | tuple)
            and len(self.value) == 2
            and all(_is_number(v) for v in self.value)
        ):
            self._between = (float(self.value[0]), float(self.value[1]))

    def test(self, ctx: Context) -> bool:
        """False when the device never sent the key."""
        found = ctx.values.get(self.key)
        if found is None:
            return False
        value = found[1]
        kind = type(value)
        if kind is float or kind is int:  # not bool: True compares as 1.0 below
            number = cast(float, value)
            if self._plain is not None:
                return self._plain[0](number, self._plain[1])
            if self._between is not None:
                return self._between[0] <= number <= self._between[1]
        if self.aqi:
            x = _number(value)
            if x is None:
                return False
            value = iaqi(self.key, x)
        if self.clear is None:
            return compare(self.op, value, self.value)
        # a node's state is written only when it has something to remember: a rule that
        # never held has no state to store (10⁵ such pairs in a city)
        mine = ctx.state.get(self.id)
        on = mine is not None and bool(mine.get("on"))
        holds = compare(self.op, value, self.clear if on else self.value)
        if holds and not on:
            ctx.state[self.id] = {"on": True}
        elif on and not holds:
            ctx.state[self.id] = {}
        return holds


@dataclass
class Rate(Condition):
    """Change of ``key`` per ``per_ms`` between its last two readings, compared to ``value``."""

    key: str
    op: str
    value: Any
    per_ms: int = 60_000
    id: str = ""

    def keys(self) -> set[str]:
        """Only the key whose rate it watches."""
        return {self.key}

    def test(self, ctx: Context) -> bool:
        """Holds from the reading that shows the rate until the next one."""
        found = ctx.values.get(self.key)
        if found is None:
            return False
        ts, value = found
        x = _number(value)
        if x is None:
            return False
        mine = ctx.state.setdefault(self.id, {})
        last = mine.get("last")
        if last is None or ts > last[0]:
            mine["prev"], mine["last"] = last, [ts, x]
        prev, last = mine.get("prev"), mine["last"]
        if prev is None or last[0] <= prev[0]:
            return False
        rate = (last[1] - prev[1]) / (last[0] - prev[0]) * self.per_ms
        return compare(self.op, rate, self.value)


@dataclass
class Missing(Condition):
    """No reading (of ``key``, or of any key) for ``after_ms``."""

    key: str | None
    after_ms: int
    id: str = ""
    timed: bool = True

    def keys(self) -> set[str]:
        """Its key, or every key (:data:`ANY_KEY`) when any reading counts."""
        return {self.key or ANY_KEY}

    def test(self, ctx: Context) -> bool:
        """Counts from the last reading, or from when the hub first looked at the device."""
        if self.key is None:
            last = ctx.seen
        else:
            found = ctx.values.get(self.key)
            last = None if found is None else found[0]
        mine = ctx.state.setdefault(self.id, {})
        if last is None:
            # After a restart the latest values are gone: the remembered last reading counts.
            last = mine.get("last") or mine.setdefault("watching", ctx.now)
        elif last - mine.get("last", 0) >= self.after_ms // 10:
            mine["last"] = last  # coarse, so that a steady stream of readings is not a write each
        return ctx.now - last >= self.after_ms


@dataclass
class Offline(Condition):
    """The device's last presence record says it is offline (``online`` false: its session
    ended) and it was not heard from after that record, on any node."""

    id: str = ""
    timed: bool = True  # a device heard from on another node is back without a reading here

    def keys(self) -> set[str]:
        """The presence key the endpoints record."""
        return {"online"}

    def test(self, ctx: Context) -> bool:
        """False for a device that never had a session (HTTP) or was heard from since."""
        found = ctx.values.get("online")
        if found is None or not compare("==", found[1], False):
            return False
        return ctx.seen is None or ctx.seen <= found[0]


@dataclass
class For(Condition):
    """``inner`` has held without a break for at least ``ms``.

    With ``from_start`` (a condition on ``offline``), the time before this process started
    does not count until the rule holds: the platform's own downtime is not the device's
    outage, and a gateway reconnects within seconds of a restart. A rule that held before the
    restart goes on holding (its alarm stays as it is).
    """

    inner: Condition
    ms: int
    id: str = ""
    timed: bool = True
    from_start: bool = False

    def keys(self) -> set[str]:
        """The inner condition's keys."""
        return self.inner.keys()

    def test(self, ctx: Context) -> bool:
        """Remembers since when the inner condition holds, in the state."""
        mine = ctx.state.get(self.id)
        if not self.inner.test(ctx):
            if mine:
                mine.pop("since", None)
            return False
        if mine is None:
            mine = ctx.state[self.id] = {}
        since = mine.setdefault("since", ctx.now)
        if self.from_start and not ctx.holding:
            since = max(since, ctx.started)
        return bool(ctx.now - since >= self.ms)


@dataclass
class Hold(Condition):
    """``inner`` held, and has not stopped holding for ``ms`` yet: a minimum hold that keeps a
    flapping condition (water at the mark, a loose contact) from clearing and raising again."""

    inner: Condition
    ms: int
    id: str = ""
    timed: bool = True

    def keys(self) -> set[str]:
        """The inner condition's keys."""
        return self.inner.keys()

    def test(self, ctx: Context) -> bool:
        """Remembers whether it holds and since when the inner condition does not, in the
        state (written only on those changes, not on every reading)."""
        mine = ctx.state.get(self.id)
        if self.inner.test(ctx):
            if mine is None or mine.get("off") is not None or not mine.get("on"):
                ctx.state[self.id] = {"on": True}
            return True
        if mine is None or not mine.get("on"):
            return False
        off = mine.setdefault("off", ctx.now)
        if ctx.now - off < self.ms:
            return True
        mine.clear()
        return False


@dataclass
class _Group(Condition):
    """Parts combined by ``all`` or ``any``; every part is evaluated (no short cut), so that
    each keeps its state current."""

    parts: list[Condition]
    id: str = ""

    def __post_init__(self) -> None:
        self.timed = any(p.timed for p in self.parts)

    def keys(self) -> set[str]:
        """Every part's keys."""
        return set().union(*(p.keys() for p in self.parts))

    def results(self, ctx: Context) -> list[bool]:
        """Every part's result."""
        return [p.test(ctx) for p in self.parts]


@dataclass
class All(_Group):
    """Every part holds."""

    def test(self, ctx: Context) -> bool:
        """Whether every part holds."""
        return all(self.results(ctx))


@dataclass
class Any_(_Group):
    """At least one part holds."""

    def test(self, ctx: Context) -> bool:
        """Whether at least one part holds."""
        return any(self.results(ctx))


@dataclass
class Not(Condition):
    """The part does not hold."""

    inner: Condition
    id: str = ""

    def __post_init__(self) -> None:
        self.timed = self.inner.timed

    def keys(self) -> set[str]:
        """The inner condition's keys."""
        return self.inner.keys()

    def test(self, ctx: Context) -> bool:
        """The negation of the inner condition."""
        return not self.inner.test(ctx)


@dataclass(frozen=True, slots=True)
class TimePoint:
    """A time of day: a clock time, or sunrise/sunset moved by an offset."""

    minutes: int = 0  # clock time in minutes after midnight, or the offset from the sun event
    sun: str | None = None  # "sunrise" | "sunset"


@lru_cache(maxsize=4096)
def _sun_times(lat: float, lon: float, day: date) -> tuple[datetime, datetime]:
    # Rounded coordinates share one entry: a few hundred metres move sunset by a second.
    s = sun(LocationInfo(latitude=lat, longitude=lon).observer, date=day)
    return s["sunrise"], s["sunset"]


@dataclass
class Window(Condition):
    """The time is between ``start`` and ``end`` (local time; wraps past midnight).

    Sun events use the pole's position (astral); a pole without one, or a latitude where the
    sun does not set that day, falls back to 06:00 and 18:00.
    """

    start: TimePoint
    end: TimePoint
    id: str = ""
    timed: bool = True

    def _at(self, p: TimePoint, day: date, ctx: Context) -> datetime:
        midnight = datetime(day.year, day.month, day.day, tzinfo=ctx.tz)
        if p.sun is None:
            return midnight + timedelta(minutes=p.minutes)
        base: datetime | None = None
        if ctx.lat is not None and ctx.lon is not None:
            try:
                rise, set_ = _sun_times(round(ctx.lat, 2), round(ctx.lon, 2), day)
                base = rise if p.sun == "sunrise" else set_
            except ValueError:  # polar day or night
                base = None
        if base is None:
            base = midnight + timedelta(hours=6 if p.sun == "sunrise" else 18)
        return base.astimezone(ctx.tz) + timedelta(minutes=p.minutes)

    def test(self, ctx: Context) -> bool:
        """Whether ``now`` falls in today's window or in the one that began yesterday."""
        now = datetime.fromtimestamp(ctx.now / 1000, tz=ctx.tz)
        for day in (now.date() - timedelta(days=1), now.date()):
            start = self._at(self.start, day, ctx)
            end = self._at(self.end, day, ctx)
            if end <= start:
                end = self._at(self.end, day + timedelta(days=1), ctx)
            if start <= now < end:
                return True
        return False


def number_tree(root: Condition) -> Condition:
    """Give every node of the tree a stable id (its pre-order position) for its state."""
    counter = 0

    def walk(node: Condition) -> None:
        nonlocal counter
        node.id = f"n{counter}"
        counter += 1
        for child in _children(node):
            walk(child)

    walk(root)
    return root


def _children(node: Condition) -> list[Condition]:
    if isinstance(node, All | Any_):
        return node.parts
    if isinstance(node, Not | For | Hold):
        return [node.inner]
    return []


def has_state(root: Condition) -> bool:
    """Whether some node keeps state between evaluations (durations, holds, rates, missing
    data, thresholds with a clear value)."""
    return (
        isinstance(root, For | Hold | Rate | Missing)
        or (isinstance(root, Threshold) and root.clear is not None)
        or any(has_state(c) for c in _children(root))
    )


def has_offline(root: Condition) -> bool:
    """Whether the tree reads the device's presence (``offline``)."""
    return isinstance(root, Offline) or any(has_offline(c) for c in _children(root))


def is_clocked(root: Condition) -> bool:
    """Whether the tree may change with time alone whatever its state (missing data, presence,
    time windows), so that the timer checks it for every device it watches."""
    return isinstance(root, Missing | Offline | Window) or any(
        is_clocked(c) for c in _children(root)
    )


def compile_waits(root: Condition) -> Callable[[Mapping[str, Any]], bool]:
    """Whether time alone may change the tree's result, given a (rule, device) state, as one
    flat test of the state: a clocked tree always waits; any other waits when some ``for`` is
    counting since its part began to hold (a ``since``) or some ``hold`` since its part
    stopped (an ``off``), and otherwise changes only with a reading."""
    if is_clocked(root):
        return lambda state: True
    marks: list[tuple[str, str]] = []

    def walk(node: Condition) -> None:
        if isinstance(node, For | Hold):
            marks.append((node.id, "since" if isinstance(node, For) else "off"))
        for child in _children(node):
            walk(child)

    walk(root)
    if not marks:
        return lambda state: False
    if len(marks) == 1:
        [(node, mark)] = marks
        return lambda state: mark in state.get(node, ())
    return lambda state: any(mark in state.get(node, ()) for node, mark in marks)


def is_timed(root: Condition) -> bool:
    """Whether the tree may change with time alone (``for``, missing data, time windows)."""
    return root.timed or any(is_timed(c) for c in _children(root))
