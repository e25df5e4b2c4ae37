"""Conditions of a rule body (thresholds, rates, missing data, offline, time windows and their
combinations), checked and built into the condition tree of :mod:`smartpole.hub.rules.conditions`.
"""

from __future__ import annotations

import re
from typing import Any

from smartpole.hub.aqi import BREAKPOINTS
from smartpole.hub.rules.conditions import (
    OPS,
    All,
    Any_,
    Condition,
    For,
    Hold,
    Missing,
    Not,
    Offline,
    Rate,
    Threshold,
    TimePoint,
    Window,
    has_offline,
)
from smartpole.hub.rules.problems import Loc, Problems
from smartpole.model.types import key_label, key_problem

__all__ = ["ConditionParser", "parse_duration"]

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, None: 1000, "m": 60_000, "min": 60_000, "h": 3_600_000}
_CLOCK_RE = re.compile(r"^(\d{1,2}):(\d{2})$")
_SUN_RE = re.compile(r"^(sunrise|sunset)\s*(?:([+-])\s*(\d+)\s*(m|min|h)?)?$")


def parse_duration(value: Any) -> int:
    """Milliseconds of ``"10m"``, ``"30s"``, ``"2h"``, ``"1d"``, ``"500ms"`` or seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like '10m'")
    if isinstance(value, int | float):
        ms = int(value * 1000)
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        unit = m.group(2)
        ms = int(float(m.group(1)) * (86_400_000 if unit == "d" else _UNIT_MS[unit]))
    else:
        raise ValueError(f"{value!r} is not a duration like '10m', '30s', '2h'")
    if ms <= 0:
        raise ValueError("a duration must be positive")
    return ms


CLEAR_HELP = {
    ">": "for > and >= a number at or below the value",
    ">=": "for > and >= a number at or below the value",
    "<": "for < and <= a number at or above the value",
    "<=": "for < and <= a number at or above the value",
    "between": "for between [low, high] around the value's range",
}


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _clears(op: str, value: Any, clear: Any) -> bool:
    """Whether ``clear`` widens the threshold (hysteresis), so that what raised it holds."""
    if op == "between":
        return (
            isinstance(clear, list)
            and len(clear) == 2
            and all(_is_number(c) for c in clear)
            and isinstance(value, list)
            and len(value) == 2
            and clear[0] <= value[0]
            and clear[1] >= value[1]
        )
    if not _is_number(clear) or not _is_number(value):
        return False
    if op in (">", ">="):
        return bool(clear <= value)
    if op in ("<", "<="):
        return bool(clear >= value)
    return False


def _time_point(value: Any) -> TimePoint:
    text = str(value).strip().lower()
    if m := _CLOCK_RE.match(text):
        h, mi = int(m.group(1)), int(m.group(2))
        if h < 24 and mi < 60:
            return TimePoint(minutes=h * 60 + mi)
    if m := _SUN_RE.match(text):
        offset = int(m.group(3) or 0) * (60 if m.group(4) == "h" else 1)
        return TimePoint(minutes=-offset if m.group(2) == "-" else offset, sun=m.group(1))
    raise ValueError(f"{value!r} is not a time like '22:00', 'sunset' or 'sunrise-30m'")


class ConditionParser:
    """Reads the ``condition`` of a rule body into a condition tree, noting each problem."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        self.err = problems.err

    def condition(self, body: Any, loc: Loc) -> Condition:
        """A condition at ``loc``, wrapped in its ``for`` and ``hold`` when it has them."""
        node = self._bare(body, loc)
        if isinstance(body, dict) and "for" in body:
            try:
                node = For(node, parse_duration(body["for"]), from_start=has_offline(node))
            except ValueError as e:
                self.err([*loc, "for"], str(e))
        if isinstance(body, dict) and "hold" in body:
            try:
                node = Hold(node, parse_duration(body["hold"]))
            except ValueError as e:
                self.err([*loc, "hold"], str(e))
        return node

    def _bare(self, body: Any, loc: Loc) -> Condition:
        never = Threshold("_", "==", None)
        if not isinstance(body, dict):
            self.err(loc, "a condition is an object")
            return never
        forms = [f for f in ("key", "rate", "missing", "offline", "all", "any", "not", "window")]
        present = [f for f in forms if f in body]
        if len(present) != 1:
            self.err(loc, f"needs exactly one of {', '.join(forms)}; found {present or 'none'}")
            return never
        form = present[0]
        allowed = {form, "for", "hold"} | (
            {"op", "value", "aqi", "clear"} if form == "key" else set()
        )
        for extra in sorted(set(body) - allowed):
            self.err([*loc, extra], f"not allowed in a {form!r} condition")
        if form == "key":
            return self._threshold(body, loc)
        if form in ("all", "any"):
            parts = body[form]
            if not isinstance(parts, list) or not parts:
                self.err([*loc, form], "must be a non-empty list of conditions")
                return never
            built = [self.condition(p, [*loc, form, i]) for i, p in enumerate(parts)]
            return All(built) if form == "all" else Any_(built)
        if form == "not":
            return Not(self.condition(body["not"], [*loc, "not"]))
        if form == "offline":
            if body["offline"] is not True:
                self.err([*loc, "offline"], "write 'offline: true'")
            return Offline()
        if form == "rate":
            return self._rate(body["rate"], [*loc, "rate"])
        if form == "missing":
            return self._missing(body["missing"], [*loc, "missing"])
        return self._window(body["window"], [*loc, "window"])

    def _key(self, key: Any, loc: Loc) -> str:
        problem = key_problem(key)
        if problem is not None or not isinstance(key, str):
            self.err(loc, f"must be a telemetry key: {key_label(key)} {problem}")
            return "_"
        return key

    def _op_value(self, body: dict[str, Any], loc: Loc) -> tuple[str, Any]:
        op, value = body.get("op"), body.get("value")
        if op not in OPS:
            self.err([*loc, "op"], f"must be one of {' '.join(OPS)}")
            return "==", value
        if "value" not in body:
            self.err([*loc, "value"], "is required")
        elif op == "between":
            ok = (
                isinstance(value, list)
                and len(value) == 2
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
                and value[0] <= value[1]
            )
            if not ok:
                self.err([*loc, "value"], "between takes [low, high] numbers, low <= high")
        elif op not in ("==", "!=") and (
            not isinstance(value, int | float) or isinstance(value, bool)
        ):
            self.err([*loc, "value"], f"{op} compares with a number")
        return str(op), value

    def _threshold(self, body: dict[str, Any], loc: Loc) -> Condition:
        key = self._key(body["key"], [*loc, "key"])
        op, value = self._op_value(body, loc)
        aqi = body.get("aqi", False)
        if aqi is not False and (aqi is not True or key not in BREAKPOINTS):
            self.err([*loc, "aqi"], f"aqi: true works on {', '.join(BREAKPOINTS)} only")
        clear = body.get("clear")
        if clear is not None and not _clears(op, value, clear):
            self.err([*loc, "clear"], CLEAR_HELP.get(op, "no clear value for == and !="))
        return Threshold(key, op, value, aqi=aqi is True, clear=clear)

    def _rate(self, body: Any, loc: Loc) -> Condition:
        if not isinstance(body, dict):
            self.err(loc, "must be an object {key, op, value, per}")
            return Threshold("_", "==", None)
        op, value = self._op_value(body, loc)
        per = 60_000
        try:
            per = parse_duration(body.get("per", "1m"))
        except ValueError as e:
            self.err([*loc, "per"], str(e))
        return Rate(self._key(body.get("key"), [*loc, "key"]), op, value, per)

    def _missing(self, body: Any, loc: Loc) -> Condition:
        if not isinstance(body, dict):
            self.err(loc, "must be an object {after, key?}")
            return Threshold("_", "==", None)
        key = body.get("key")
        after = 600_000
        try:
            after = parse_duration(body.get("after"))
        except ValueError as e:
            self.err([*loc, "after"], str(e))
        return Missing(None if key is None else self._key(key, [*loc, "key"]), after)

    def _window(self, body: Any, loc: Loc) -> Condition:
        points = []
        for end in ("from", "to"):
            try:
                points.append(_time_point(body[end] if isinstance(body, dict) else None))
            except (ValueError, KeyError) as e:
                self.err([*loc, end], str(e).strip("'"))
                points.append(TimePoint())
        return Window(points[0], points[1])
