"""Rules: validation with located errors, the default set, and condition evaluation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from smartpole.errors import InvalidInput
from smartpole.hub.aqi import iaqi, level
from smartpole.hub.rules.conditions import Context
from smartpole.hub.rules.documents import default_rules
from smartpole.hub.rules.model import LightAction
from smartpole.hub.rules.parse_conditions import parse_duration
from smartpole.hub.rules.parser import compile_rule

SHANGHAI = ZoneInfo("Asia/Shanghai")


def rule(condition: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A minimal valid rule around a condition."""
    return {
        "name": "r",
        "condition": condition,
        "actions": [{"alarm": {"type": "t", "severity": "minor"}}],
        **extra,
    }


def holds(condition: dict[str, Any], values: dict[str, Any], now: int, **ctx: Any) -> bool:
    """Evaluate a condition once against ``values`` (key -> (ts, value))."""
    compiled = compile_rule(rule(condition))
    state: dict[str, Any] = ctx.pop("state", {})
    return compiled.condition.test(Context(values=values, now=now, state=state, **ctx))


def test_every_problem_is_reported_with_its_location() -> None:
    body = {
        "name": "bad name!",
        "scope": {"kinds": ["toaster"]},
        "condition": {"all": [{"key": "pm25", "op": "~", "value": 1}, {"rate": {"key": "x"}}]},
        "actions": [{"command": {"kind": "lamp", "target": {"within_m": -1}}}, {"page": 1}],
    }
    with pytest.raises(InvalidInput) as info:
        compile_rule(body)
    locs = {tuple(e["loc"]) for e in info.value.errors}
    assert {
        ("name",),
        ("scope", "kinds", 0),
        ("condition", "all", 0, "op"),
        ("condition", "all", 1, "rate", "op"),
        ("actions", 0, "command", "method"),
        ("actions", 0, "command", "target", "within_m"),
        ("actions", 1),
    } <= locs


@pytest.mark.parametrize(
    ("light", "loc"),
    [
        pytest.param({"level": 120}, ("level",), id="level-over-100"),
        pytest.param({"level": True}, ("level",), id="level-not-a-number"),
        pytest.param({"for": "forever"}, ("for",), id="for-not-a-duration"),
        pytest.param({"for": "2d"}, ("for",), id="for-over-a-day"),
        pytest.param({"target": {"within_m": 0}}, ("target", "within_m"), id="no-radius"),
        pytest.param({"target": "street"}, ("target",), id="unknown-target"),
        pytest.param({"dim": 50}, ("dim",), id="unknown-field"),
    ],
)
def test_a_light_action_is_refused_where_it_is_wrong(light: dict[str, Any], loc: Any) -> None:
    body = rule({"key": "pressed", "op": "==", "value": True})
    body["actions"].append({"light": light})
    with pytest.raises(InvalidInput) as info:
        compile_rule(body)
    assert [tuple(e["loc"]) for e in info.value.errors] == [("actions", 1, "light", *loc)]


def test_a_light_action_holds_the_lamps_near_the_device_for_its_time() -> None:
    body = rule({"key": "pressed", "op": "==", "value": True})
    body["actions"].append({"light": {"target": {"within_m": 100}, "level": 80, "for": "15m"}})
    action = compile_rule(body).actions[1]
    assert isinstance(action, LightAction)
    assert (action.level, action.for_ms, action.target, action.radius_m) == (
        80,
        900_000,
        "radius",
        100,
    )


@pytest.mark.parametrize(
    ("text", "ms"),
    [("10m", 600_000), ("30s", 30_000), ("2h", 7_200_000), ("1d", 86_400_000), (90, 90_000)],
)
def test_durations(text: Any, ms: int) -> None:
    assert parse_duration(text) == ms


def test_the_default_rule_set_is_valid() -> None:
    rules = [compile_rule(r) for r in default_rules()]
    names = {r.name for r in rules}
    assert {"pole-tilt", "flood", "manhole-open", "sos"} <= names
    assert not {"lamp-failure", "day-burner"} & names  # the lamp diagnostics raise those
    assert {"aqi-light", "noise-zone-2-night", "device-offline"} <= names


@pytest.mark.parametrize(
    ("op", "value", "reading", "expected"),
    [
        pytest.param(">", 5, 5.1, True, id="gt"),
        pytest.param(">=", 5, 5, True, id="ge"),
        pytest.param("<", 5, 5, False, id="lt"),
        pytest.param("<=", 5, 5, True, id="le"),
        pytest.param("==", True, True, True, id="eq-bool"),
        pytest.param("!=", "ok", "fault", True, id="ne-str"),
        pytest.param("between", [1, 2], 1.5, True, id="between"),
        pytest.param("between", [1, 2], 2.5, False, id="outside"),
    ],
)
def test_threshold_operators(op: str, value: Any, reading: Any, expected: bool) -> None:
    assert holds({"key": "k", "op": op, "value": value}, {"k": (1, reading)}, 1) is expected


def test_rate_of_change_compares_the_last_two_readings() -> None:
    cond = {"rate": {"key": "water_level", "op": ">", "value": 5, "per": "1m"}}
    state: dict[str, Any] = {}
    assert not holds(cond, {"water_level": (0, 10)}, 0, state=state)
    assert not holds(cond, {"water_level": (60_000, 12)}, 60_000, state=state)  # +2/min
    assert holds(cond, {"water_level": (90_000, 16)}, 90_000, state=state)  # +8/min


def test_missing_data_counts_from_the_last_reading() -> None:
    cond = {"missing": {"key": "pm25", "after": "10m"}}
    assert not holds(cond, {"pm25": (0, 10)}, 9 * 60_000)
    assert holds(cond, {"pm25": (0, 10)}, 10 * 60_000)


def test_offline_and_boolean_combinations() -> None:
    cond = {"all": [{"offline": True}, {"not": {"key": "maintenance", "op": "==", "value": True}}]}
    assert holds(cond, {"online": (0, False)}, 0)
    assert not holds(cond, {"online": (0, False), "maintenance": (0, True)}, 0)
    assert holds(
        {"any": [{"key": "a", "op": ">", "value": 1}, {"offline": True}]}, {"a": (0, 2)}, 0
    )


def _ms(year: int, month: int, day: int, hour: int, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).timestamp() * 1000)


@pytest.mark.parametrize(
    ("hour", "expected"),
    [
        pytest.param(23, True, id="23h"),
        pytest.param(3, True, id="3h"),
        pytest.param(12, False, id="noon"),
    ],
)
def test_clock_window_wraps_past_midnight(hour: int, expected: bool) -> None:
    cond = {"window": {"from": "22:00", "to": "06:00"}}
    assert holds(cond, {}, _ms(2026, 6, 1, hour), tz=SHANGHAI) is expected


def test_sun_window_follows_the_pole_position_and_season() -> None:
    cond = {"window": {"from": "sunset", "to": "sunrise"}}
    shenzhen = {"lat": 22.54, "lon": 114.05, "tz": SHANGHAI}
    # Shenzhen sunset is about 19:10 in June and 17:50 in December.
    assert not holds(cond, {}, _ms(2026, 6, 21, 18, 30), **shenzhen)
    assert holds(cond, {}, _ms(2026, 12, 21, 18, 30), **shenzhen)
    assert holds(cond, {}, _ms(2026, 12, 22, 5, 0), **shenzhen)


def test_duration_needs_the_condition_to_hold_without_a_break() -> None:
    compiled = compile_rule(rule({"key": "pm25", "op": ">", "value": 75, "for": "10m"}))
    state: dict[str, Any] = {}

    def at(now: int, value: float) -> bool:
        ctx = Context(values={"pm25": (now, value)}, now=now, state=state, tz=UTC)
        return compiled.condition.test(ctx)

    assert not at(0, 80)
    assert not at(5 * 60_000, 70)  # a break resets it
    assert not at(6 * 60_000, 80)
    assert at(16 * 60_000, 90)


@pytest.mark.parametrize(
    ("pm25", "aqi", "lvl"),
    [(35, 50, 1), (75, 100, 2), (95, 125, 3), (150, 200, 4), (250, 300, 5), (600, 500, 6)],
)
def test_pm25_individual_aqi_by_hj_633(pm25: float, aqi: float, lvl: int) -> None:
    assert iaqi("pm25", pm25) == pytest.approx(aqi)
    assert level(iaqi("pm25", pm25)) == lvl
