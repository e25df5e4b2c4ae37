"""Lighting plans: nights on the astronomical clock, programs resolved on them, calendars with
China's holidays, overrides and caps, compiled per lamp (pure: no store, no transport)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from smartpole.errors import InvalidInput
from smartpole.lighting.astro import NightKind, night_of
from smartpole.lighting.calendar import Calendar, HolidayCalendar, check_overlaps, china_holidays
from smartpole.lighting.plan import Plan, PlanCache, changed, compile_plans, level_at, members
from smartpole.lighting.programs import resolve_program
from smartpole.model.lighting import (
    CalendarEntry,
    Cap,
    Group,
    Lamp,
    OneOffDates,
    Override,
    PlanStep,
    Program,
    PublicHolidays,
    Reason,
    RestDays,
    Selector,
    Step,
    TimeSpec,
    Weekdays,
    WorkingDays,
)

EVERY_DAY = Weekdays(frozenset(range(7)))
CITY = Group("city", Selector())


def program(name: str, *steps: tuple[str, float]) -> Program:
    return Program(name, tuple(Step(TimeSpec.parse(at), level) for at, level in steps))


def local(ms: int, tz: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(tz))


def ms(text: str, tz: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp() * 1000)


def lamp(lamp_id: str = "L1", lat: float = 22.54, lon: float = 114.06, **kw: object) -> Lamp:
    fields: dict[str, object] = {"pole": "P1", "gateway": "G1", "tz": "Asia/Shanghai", **kw}
    return Lamp(lamp_id, lat=lat, lon=lon, **fields)  # type: ignore[arg-type]


FULL_NIGHT = program("full", ("sunset", 100), ("sunrise", 0))


def test_a_shenzhen_night_runs_from_sunset_to_the_next_sunrise() -> None:
    night = night_of(22.54, 114.06, "Asia/Shanghai", dt.date(2026, 6, 21))
    dusk, dawn = local(night.sunset, "Asia/Shanghai"), local(night.sunrise, "Asia/Shanghai")
    assert (dusk.date(), dusk.hour) == (dt.date(2026, 6, 21), 19)
    assert (dawn.date(), dawn.hour) == (dt.date(2026, 6, 22), 5)
    assert (
        night.sunset < night.civil_dusk < night.virtual_midnight < night.civil_dawn < night.sunrise
    )


@pytest.mark.parametrize(
    ("evening", "hours"),
    [
        pytest.param(dt.date(2026, 3, 28), 6.5, id="spring-forward-night"),
        pytest.param(dt.date(2026, 10, 24), 8.5, id="fall-back-night"),
    ],
)
def test_berlin_clock_steps_follow_dst_on_the_night_of_the_change(
    evening: dt.date, hours: float
) -> None:
    """22:00 on the evening and 05:30 the next morning are wall-clock times either side of
    the change: 7.5 h apart in wall time, 6.5 h (spring) or 8.5 h (autumn) in real time."""
    tz = "Europe/Berlin"
    night = night_of(52.52, 13.40, tz, evening)
    resolved = resolve_program(program("p", ("22:00", 60), ("05:30", 20)), night, tz)
    first, second = resolved[0][0], resolved[1][0]
    assert local(first, tz).strftime("%d %H:%M") == f"{evening.day} 22:00"
    assert local(second, tz).strftime("%d %H:%M") == f"{evening.day + 1} 05:30"
    assert (second - first) / 3_600_000 == hours


def test_a_night_across_the_date_line_is_named_by_its_local_evening() -> None:
    night = night_of(-17.75, 179.9, "Pacific/Fiji", dt.date(2026, 1, 10))
    dusk, dawn = local(night.sunset, "Pacific/Fiji"), local(night.sunrise, "Pacific/Fiji")
    assert dusk.date() == dt.date(2026, 1, 10)
    assert 18 <= dusk.hour <= 19
    assert dawn.date() == dt.date(2026, 1, 11)
    assert 8 < night.length_ms / 3_600_000 < 12


def test_polar_night_in_tromso_lights_the_whole_day_night_after_night() -> None:
    tz, cache = "Europe/Oslo", PlanCache()
    nights = [night_of(69.65, 18.96, tz, dt.date(2026, 12, d)) for d in (20, 21)]
    assert [n.kind for n in nights] == [NightKind.POLAR, NightKind.POLAR]
    assert nights[0].sunrise == nights[1].sunset  # solar noon joins them
    plans = compile_plans(
        [lamp(lat=69.65, lon=18.96, tz=tz)],
        [CITY],
        {"full": FULL_NIGHT},
        Calendar([CalendarEntry("all", "full", "city", EVERY_DAY)]),
        [],
        dt.date(2026, 12, 20),
        2,
        cache,
    )
    plan = plans["L1"]
    for hour in range(0, 48, 3):
        at = (
            nights[0].sunset + 60_000 + hour * 1_800_000
        )  # a minute in: the grid moves noon by seconds
        assert level_at(plan, at)[0] == 100


def test_midsummer_in_tromso_has_no_night_and_the_lamps_stay_off() -> None:
    night = night_of(69.65, 18.96, "Europe/Oslo", dt.date(2026, 6, 21))
    assert night.kind is NightKind.EMPTY
    assert resolve_program(FULL_NIGHT, night, "Europe/Oslo") == ()


def test_helsinki_in_june_has_no_civil_dusk_so_it_falls_back_to_sunset() -> None:
    night = night_of(60.17, 24.94, "Europe/Helsinki", dt.date(2026, 6, 21))
    assert night.kind is NightKind.NORMAL
    assert night.civil_dusk == night.sunset
    resolved = resolve_program(
        program("p", ("civil_dusk", 80), ("sunrise", 0)), night, "Europe/Helsinki"
    )
    assert resolved[0] == (night.sunset, 80.0, 0)


def test_virtual_midnight_moves_with_the_seasons_in_shenzhen() -> None:
    """ "50 % for 4 h around midnight": centred on the middle of the night, not on 00:00."""
    tz = "Asia/Shanghai"
    astrodim = program(
        "astrodim", ("sunset", 100), ("virtual_midnight-120", 50), ("virtual_midnight+120", 100)
    )
    windows = {}
    for month in (6, 12):
        night = night_of(22.54, 114.06, tz, dt.date(2026, month, 21))
        steps = resolve_program(astrodim, night, tz)
        dim, back = steps[1][0], steps[2][0]
        assert back - dim == 4 * 3_600_000
        windows[month] = local(dim, tz)
    # the middle of a winter night comes earlier than a summer one's (sunset ~1 h earlier)
    june = windows[6].hour * 60 + windows[6].minute
    december = windows[12].hour * 60 + windows[12].minute
    assert december < june


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param((("sunset-30", 100), ("sunrise+30", 40)), [100.0, 0.0], id="clamped-to-night"),
        pytest.param((("23:00", 50), ("sunset", 100)), [100.0, 50.0, 0.0], id="ordered-by-time"),
        pytest.param((("sunset", 100), ("sunset", 70)), [70.0, 0.0], id="same-moment-last-wins"),
    ],
)
def test_steps_resolve_clamped_to_the_night_and_in_time_order(
    steps: tuple[tuple[str, float], ...], expected: list[float]
) -> None:
    night = night_of(22.54, 114.06, "Asia/Shanghai", dt.date(2026, 3, 1))
    resolved = resolve_program(program("p", *steps), night, "Asia/Shanghai")
    assert [level for _, level, _ in resolved] == expected
    assert resolved[0][0] == night.sunset
    assert resolved[-1][0] == night.sunrise
    assert [ts for ts, _, _ in resolved] == sorted(ts for ts, _, _ in resolved)


def test_china_2026_spring_festival_and_its_adjusted_working_day() -> None:
    cn = china_holidays()
    assert dt.date(2026, 2, 17) in cn.holidays  # 正月初一
    assert cn.is_working_day(dt.date(2026, 2, 14))  # a Saturday worked (调休)
    assert not cn.is_working_day(dt.date(2026, 2, 16))  # a Monday off
    assert not cn.is_working_day(dt.date(2026, 2, 21))  # a Saturday, in the holiday


def entries_festival_holiday_default() -> list[CalendarEntry]:
    return [
        CalendarEntry("workdays", "default", "city", WorkingDays(), 0),
        CalendarEntry("restdays", "weekend", "city", RestDays(), 0),
        CalendarEntry("holidays", "holiday", "city", PublicHolidays(), 10),
        CalendarEntry(
            "lantern", "festival", "city", OneOffDates(frozenset({dt.date(2026, 2, 17)})), 20
        ),
    ]


@pytest.mark.parametrize(
    ("day", "entry"),
    [
        pytest.param(dt.date(2026, 2, 12), "workdays", id="thursday"),
        pytest.param(dt.date(2026, 2, 14), "workdays", id="adjusted-working-saturday"),
        pytest.param(dt.date(2026, 2, 7), "restdays", id="ordinary-saturday"),
        pytest.param(dt.date(2026, 2, 16), "holidays", id="spring-festival-monday"),
        pytest.param(dt.date(2026, 2, 17), "lantern", id="festival-over-holiday"),
    ],
)
def test_the_highest_priority_entry_that_matches_runs(day: dt.date, entry: str) -> None:
    found = Calendar(entries_festival_holiday_default()).entry_for(frozenset({"city"}), day)
    assert found is not None
    assert found.name == entry


def test_a_tenants_own_holidays_count_like_chinas() -> None:
    own = HolidayCalendar("shenzhen", frozenset({dt.date(2026, 9, 1)}))
    calendar = Calendar(
        [
            CalendarEntry("daily", "default", "city", EVERY_DAY),
            CalendarEntry("local", "holiday", "city", PublicHolidays("shenzhen"), 5),
        ],
        {"shenzhen": own},
    )
    assert calendar.entry_for(frozenset({"city"}), dt.date(2026, 9, 1)).name == "local"  # type: ignore[union-attr]
    assert calendar.entry_for(frozenset({"city"}), dt.date(2026, 9, 2)).name == "daily"  # type: ignore[union-attr]


def test_equal_priorities_that_meet_on_a_date_name_both_entries() -> None:
    calendar = Calendar(
        [
            CalendarEntry("weekend", "a", "city", Weekdays(frozenset({5, 6}))),
            CalendarEntry("holidays", "b", "city", PublicHolidays()),
        ]
    )
    with pytest.raises(InvalidInput) as caught:
        check_overlaps(calendar, dt.date(2026, 1, 1))
    assert "'weekend'" in caught.value.errors[0]["msg"]
    assert "'holidays'" in caught.value.errors[0]["msg"]
    assert caught.value.errors[0]["loc"] == ["calendar", 1, "priority"]


def test_equal_priorities_that_never_meet_are_allowed() -> None:
    check_overlaps(Calendar(entries_festival_holiday_default()), dt.date(2026, 1, 1))


def shenzhen_plans(
    overrides: list[Override], cap: Cap | None = None
) -> tuple[dict[str, Plan], int]:
    lamps = [lamp(cap=cap or Cap())]
    first = dt.date(2026, 3, 2)
    plans = compile_plans(
        lamps,
        [CITY],
        {"full": FULL_NIGHT},
        Calendar([CalendarEntry("all", "full", "city", EVERY_DAY)]),
        overrides,
        first,
        2,
    )
    return plans, night_of(22.54, 114.06, "Asia/Shanghai", first).sunset


def test_an_override_ends_by_itself_mid_night_and_the_program_resumes() -> None:
    _, sunset = shenzhen_plans([])
    until = sunset + 3 * 3_600_000
    plans, _ = shenzhen_plans([Override("storm", "city", 30, until, sunset + 3_600_000)])
    plan = plans["L1"]
    assert level_at(plan, sunset + 2 * 3_600_000) == (30, Reason(override="storm"))
    assert level_at(plan, until + 1) == (100, Reason(program="full", entry="all"))
    assert level_at(plan, sunset + 30 * 3_600_000)[0] == 100  # the next night untouched


def test_a_lamps_clo_cap_scales_every_level() -> None:
    cap = Cap(clo_start=0.8, burn_hours=25_000, rated_hours=50_000)
    assert cap.factor == 0.9
    plans, sunset = shenzhen_plans([], cap)
    assert level_at(plans["L1"], sunset + 60_000)[0] == 90
    assert Cap(clo_start=0.8, burn_hours=80_000, rated_hours=50_000).factor == 1.0


def test_a_fade_moves_the_level_linearly() -> None:
    plan = (PlanStep(0, 100, 0, Reason()), PlanStep(1000, 0, 10, Reason()))
    assert level_at(plan, 6000)[0] == 50
    assert level_at(plan, 11_000)[0] == 0
    assert level_at(plan, -1)[0] == 0


def test_groups_select_by_road_tags_polygon_and_ids() -> None:
    lamps = [
        lamp("A", lat=22.54, lon=114.06, road="深南大道", tags=frozenset({"main"})),
        lamp("B", lat=22.60, lon=114.10, road="深南大道"),
        lamp("C", lat=22.54, lon=114.06, road="红荔路", pole="P9"),
    ]
    square = ((114.0, 22.5), (114.08, 22.5), (114.08, 22.58), (114.0, 22.58))
    found = members(
        [
            Group("road", Selector(roads=frozenset({"深南大道"}))),
            Group("main", Selector(tags=frozenset({"main"}))),
            Group("area", Selector(polygon=square)),
            Group("road-in-area", Selector(roads=frozenset({"深南大道"}), polygon=square)),
            Group("pole", Selector(poles=frozenset({"P9"}))),
            Group("all", Selector()),
        ],
        lamps,
    )
    assert found == {
        "road": {"A", "B"},
        "main": {"A"},
        "area": {"A", "C"},
        "road-in-area": {"A"},
        "pole": {"C"},
        "all": {"A", "B", "C"},
    }


def test_a_change_to_one_roads_calendar_recompiles_only_its_lamps() -> None:
    lamps = [lamp(f"L{i}", road=f"R{i % 3}", lon=114.0 + i * 0.01) for i in range(9)]
    groups = [CITY, Group("R1", Selector(roads=frozenset({"R1"})))]
    programs = {"full": FULL_NIGHT, "festival": program("festival", ("sunset", 100), ("02:00", 60))}
    entries = [CalendarEntry("all", "full", "city", EVERY_DAY)]
    cache, first = PlanCache(), dt.date(2026, 3, 2)
    before = compile_plans(lamps, groups, programs, Calendar(entries), [], first, 3, cache)
    festival = CalendarEntry("fest", "festival", "R1", OneOffDates(frozenset({first})), 5)
    after = compile_plans(
        lamps, groups, programs, Calendar([*entries, festival]), [], first, 3, cache
    )
    assert changed(before, after) == {"L1", "L4", "L7"}
    assert after["L0"] is before["L0"]


def test_the_astro_grid_moves_a_lamps_sunset_by_seconds_only() -> None:
    """Nights are cached on a 0.05° grid: a lamp at the edge of a cell sees its sunset within
    30 s of the one computed at its own position."""
    from smartpole.lighting.astro import position_key

    exact = night_of(22.5249, 114.0749, "Asia/Shanghai", dt.date(2026, 6, 21))
    gridded = night_of(*position_key(22.5249, 114.0749), "Asia/Shanghai", dt.date(2026, 6, 21))
    assert abs(exact.sunset - gridded.sunset) < 30_000
    assert abs(exact.sunrise - gridded.sunrise) < 30_000


def test_an_override_past_the_plan_still_hands_back_to_the_program_at_its_end() -> None:
    until = 2**42
    plans, _ = shenzhen_plans([Override("event", "city", 80, until)])
    plan = plans["L1"]
    first = night_of(22.54, 114.06, "Asia/Shanghai", dt.date(2026, 3, 2))
    assert level_at(plan, first.sunrise + 3_600_000) == (80, Reason(override="event"))
    assert (plan[-1].ts_ms, plan[-1].level) == (until, 0)
    assert plan[-1].reason != Reason(override="event")
