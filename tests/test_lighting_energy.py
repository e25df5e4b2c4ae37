"""Lamp energy from counters and power, savings against dusk-to-dawn, ToU tariffs and CO2."""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from smartpole.errors import InvalidInput
from smartpole.lighting.energy import (
    HEADER,
    Span,
    astral_night,
    bounds,
    counter_energy,
    energy_csv,
    group_energy,
    monthly_report,
    power_energy,
    read_energy,
    savings,
)
from smartpole.lighting.tariffs import TariffClock
from smartpole.model.energy import GridFactor, LampPlace, Tariff
from smartpole.model.types import Reading
from smartpole.model.writes import WriteBatch
from smartpole.store import SeriesStore

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
HOUR = 3_600_000
LAMP = 7
# China's national grid average, 2022 (MEE and NBS, published 2024): see docs/lighting-energy.md
GRID = GridFactor(0.5366, "MEE/NBS 2024 announcement: 2022 national grid average")
TOU = {
    "name": "Shanghai general industrial and commercial (example)",
    "currency": "CNY",
    "periods": [
        {"kind": "valley", "start": "22:00", "end": "06:00", "price": 0.30},
        {"kind": "flat", "start": "06:00", "end": "08:00", "price": 0.70},
        {"kind": "peak", "start": "08:00", "end": "11:00", "price": 1.20},
        {"kind": "flat", "start": "11:00", "end": "18:00", "price": 0.70},
        {"kind": "peak", "start": "18:00", "end": "22:00", "price": 1.20},
    ],
}


def at(zone: tzinfo, *when: int) -> int:
    """Local wall time to ms."""
    return round(datetime(*when, tzinfo=zone).timestamp() * 1000)  # type: ignore[misc]


def write(series: SeriesStore, key: str, points: list[tuple[int, float]]) -> None:
    series.write(WriteBatch(readings=[Reading(LAMP, key, ts, v) for ts, v in points]))


def night_18_to_6(lat: float, lon: float, zone: tzinfo, day: date) -> tuple[int, int]:
    """A fixed night, so the baseline is simple arithmetic."""
    return at(zone, day.year, day.month, day.day, 18), at(
        zone, day.year, day.month, day.day, 18
    ) + 12 * HOUR


def place(lamp: int = LAMP, road: str = "Nanjing Rd", district: str = "Huangpu") -> LampPlace:
    return LampPlace(lamp, 100 + lamp, road, district, 100.0, 31.23, 121.47)


# -- counters -------------------------------------------------------------------------------


def test_a_counter_reset_mid_day_counts_before_and_after_the_drop_once(
    series: SeriesStore,
) -> None:
    day = at(SHANGHAI, 2026, 5, 10)
    before = [(day + h * HOUR, 100.0 + h * 0.5) for h in range(12)]  # 100 .. 105.5
    after = [(day + h * HOUR + HOUR // 2, (h - 12) * 0.25) for h in range(12, 24)]  # 0 .. 2.75
    write(series, "energy", [(day - HOUR, 99.5), *before, *after])
    energy = read_energy(series, [LAMP], day, day + 24 * HOUR, SHANGHAI, "day")
    assert energy[LAMP][day] == pytest.approx(0.5 + 5.5 + 2.75)


def test_a_counter_that_drops_between_buckets_never_goes_negative() -> None:
    spans = [Span(0, 10, 12), Span(1, 12.5, 13), Span(2, 0.2, 1.0), Span(3, 1.0, 1.5)]
    used, level = counter_energy(spans)
    assert used == {0: 2.0, 1: 1.0, 2: pytest.approx(0.8), 3: 0.5}
    assert level == 1.5


def test_a_gap_across_midnight_lands_on_the_day_the_next_reading_is_seen(
    series: SeriesStore,
) -> None:
    evening = at(SHANGHAI, 2026, 5, 10, 20)
    write(
        series, "energy", [(evening, 10.0), (evening + 2 * HOUR, 10.5), (evening + 6 * HOUR, 12.5)]
    )
    day1, day2 = at(SHANGHAI, 2026, 5, 10), at(SHANGHAI, 2026, 5, 11)
    energy = read_energy(series, [LAMP], day1, day2 + 24 * HOUR, SHANGHAI, "day")
    assert energy[LAMP] == {day1: pytest.approx(0.5), day2: pytest.approx(2.0)}


@pytest.mark.parametrize(
    ("day", "hours"),
    [
        pytest.param(date(2026, 3, 29), 23, id="spring-forward-23h"),
        pytest.param(date(2026, 10, 25), 25, id="fall-back-25h"),
        pytest.param(date(2026, 6, 1), 24, id="summer-24h"),
    ],
)
def test_a_berlin_day_across_daylight_saving_holds_its_own_hours(
    series: SeriesStore, day: date, hours: int
) -> None:
    start = at(BERLIN, day.year, day.month, day.day)
    # 1 kWh an hour, read on every hour from the hour before the day to the next midnight
    write(series, "energy", [(start + h * HOUR, 50.0 + h) for h in range(-1, 30)])
    edges = bounds(start, start + 1, BERLIN, "day")
    assert edges[1] - edges[0] == hours * HOUR
    energy = read_energy(series, [LAMP], start, edges[1], BERLIN, "day")
    assert energy[LAMP] == {start: pytest.approx(hours)}


def test_months_split_at_midnight_in_shanghai_not_utc(series: SeriesStore) -> None:
    jan31 = at(SHANGHAI, 2026, 1, 31, 23, 30)
    feb1 = at(SHANGHAI, 2026, 2, 1, 0, 30)  # still January 31 in UTC
    write(series, "energy", [(jan31 - HOUR, 1.0), (jan31, 2.0), (feb1, 5.0)])
    start, end = at(SHANGHAI, 2026, 1, 1), at(SHANGHAI, 2026, 3, 1)
    energy = read_energy(series, [LAMP], start, end, SHANGHAI, "month")
    assert energy[LAMP] == {start: pytest.approx(1.0), at(SHANGHAI, 2026, 2, 1): pytest.approx(3.0)}


# -- power ----------------------------------------------------------------------------------


def test_a_lamp_without_a_counter_integrates_its_power(series: SeriesStore) -> None:
    t0 = at(SHANGHAI, 2026, 5, 10, 17)
    steady = [(t0 + i * 300_000, 100.0) for i in range(25)]  # 100 W for 2 h, every 5 min
    after_gap = [(t0 + 5 * HOUR, 100.0), (t0 + 5 * HOUR + 300_000, 100.0)]
    write(series, "power", [*steady, *after_gap])
    day = at(SHANGHAI, 2026, 5, 10)
    energy = read_energy(series, [LAMP], day, day + 24 * HOUR, SHANGHAI, "day")
    # the 3 h gap adds nothing; the last two readings add their 5 minutes
    assert energy[LAMP][day] == pytest.approx(0.2 + 100 * 300_000 / 3.6e9)


def test_power_between_two_readings_is_a_trapezoid_split_at_the_hour() -> None:
    edges = [0, HOUR, 2 * HOUR]
    used = power_energy([(HOUR // 2, 0.0), (HOUR + HOUR // 2, 200.0)], edges, 2 * HOUR)
    assert used == {0: pytest.approx(0.025), HOUR: pytest.approx(0.075)}


# -- tariffs, savings, CO2 ------------------------------------------------------------------


def test_time_of_use_splits_a_night_between_peak_and_valley() -> None:
    clock = TariffClock(Tariff.parse(TOU), SHANGHAI)
    split = clock.split(at(SHANGHAI, 2026, 5, 10, 20), at(SHANGHAI, 2026, 5, 11, 2))
    assert split.ms == {"peak": 2 * HOUR, "valley": 4 * HOUR}
    assert split.priced / HOUR == pytest.approx(2 * 1.2 + 4 * 0.3)


def test_savings_compare_actual_with_rated_power_dusk_to_dawn() -> None:
    day = at(SHANGHAI, 2026, 5, 10)
    tariff = Tariff.parse(TOU)
    [row] = savings(
        {LAMP: {day: 0.6}},
        [place()],
        day,
        day + 24 * HOUR,
        SHANGHAI,
        "day",
        tariff,
        GRID,
        "district",
        night_18_to_6,
    )
    # a day holds the end of the night before (00-06) and the start of its own (18-24)
    assert (row.group, row.baseline_kwh, row.actual_kwh) == ("Huangpu", pytest.approx(1.2), 0.6)
    noon = day + 12 * HOUR  # noon to noon: exactly one night, a 100 W lamp at half power
    [night] = savings(
        {LAMP: {at(SHANGHAI, 2026, 5, 1): 0.6}},
        [place()],
        noon,
        noon + 24 * HOUR,
        SHANGHAI,
        "month",
        tariff,
        GRID,
        "tenant",
        night_18_to_6,
    )
    assert night.saved_kwh == pytest.approx(0.6)
    assert night.saved_pct == pytest.approx(50.0)
    assert night.saved_co2_kg == pytest.approx(0.6 * 0.5366)
    assert night.baseline_cost == pytest.approx(0.1 * (4 * 1.2 + 8 * 0.3))  # peak to 22:00
    assert night.saved_cost == pytest.approx(0.72 / 2)


def test_energy_adds_up_per_pole_road_district_and_tenant() -> None:
    places = [place(1), place(2, road="Fuzhou Rd"), place(3, district="Jing'an")]
    energy = {1: {0: 1.0}, 2: {0: 2.0}, 3: {0: 4.0}}
    assert group_energy(energy, places, "district") == {"Huangpu": {0: 3.0}, "Jing'an": {0: 4.0}}
    assert group_energy(energy, places, "road")["Huangpu/Fuzhou Rd"] == {0: 2.0}
    assert group_energy(energy, places, "tenant") == {"tenant": {0: 7.0}}


def test_the_monthly_report_has_a_row_per_district_road_and_the_tenant() -> None:
    month = at(SHANGHAI, 2026, 5, 1)
    text = monthly_report(
        {1: {month: 10.0}, 2: {month: 20.0}},
        [place(1), place(2, road="Fuzhou Rd")],
        date(2026, 5, 1),
        SHANGHAI,
        Tariff.parse(TOU),
        GRID,
        night_18_to_6,
    )
    lines = text.splitlines()
    assert lines[0] == ",".join(HEADER)
    assert [line.split(",")[:3] for line in lines[1:]] == [
        ["Huangpu", "2026-05", "30.000"],
        ["Huangpu/Fuzhou Rd", "2026-05", "20.000"],
        ["Huangpu/Nanjing Rd", "2026-05", "10.000"],
        ["tenant", "2026-05", "30.000"],
    ]
    assert lines[1].split(",")[3] == "74.400"  # 2 lamps x 100 W x 12 h x 31 nights
    assert energy_csv([], SHANGHAI, "day") == ",".join(HEADER) + "\n"


def _bad(periods: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": "bad", "currency": "CNY", "periods": periods}


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        pytest.param(
            _bad(
                [
                    {"kind": "peak", "start": "00:00", "end": "13:00", "price": 1},
                    {"kind": "valley", "start": "12:00", "end": "24:00", "price": 0.3},
                ]
            ),
            ["periods", 1],
            "overlaps period 0 at 12:00",
            id="overlap",
        ),
        pytest.param(
            _bad([{"kind": "peak", "start": "00:00", "end": "20:00", "price": 1}]),
            ["periods"],
            "20:00 uncovered",
            id="hole",
        ),
        pytest.param(
            _bad([{"kind": "flat", "start": "00:00", "end": "24:00", "price": -0.1}]),
            ["periods", 0, "price"],
            "must be >= 0",
            id="negative-price",
        ),
        pytest.param(
            _bad([{"kind": "shoulder", "start": "00:00", "end": "24:00", "price": 1}]),
            ["periods", 0, "kind"],
            "peak, flat or valley",
            id="unknown-kind",
        ),
        pytest.param(
            _bad([{"kind": "flat", "start": "7am", "end": "24:00", "price": 1}]),
            ["periods", 0, "start"],
            "not a clock time",
            id="not-a-clock-time",
        ),
    ],
)
def test_a_bad_tariff_is_refused_naming_the_problem(
    body: dict[str, Any], loc: list[Any], words: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        Tariff.parse(body)
    assert any(e["loc"] == loc and words in e["msg"] for e in caught.value.errors), (
        caught.value.errors
    )


def test_a_negative_emission_factor_is_refused() -> None:
    with pytest.raises(InvalidInput):
        GridFactor(-0.5, "nowhere")


@pytest.mark.parametrize(
    ("lat", "day", "hours"),
    [
        pytest.param(31.23, date(2026, 6, 21), (9, 10), id="shanghai-midsummer"),
        pytest.param(31.23, date(2026, 12, 21), (13, 14), id="shanghai-midwinter"),
        pytest.param(78.2, date(2026, 6, 21), None, id="svalbard-midnight-sun"),
    ],
)
def test_the_default_night_runs_from_sunset_to_the_next_sunrise(
    lat: float, day: date, hours: tuple[int, int] | None
) -> None:
    dark = astral_night(lat, 121.47 if lat < 60 else 15.6, SHANGHAI, day)
    if hours is None:
        assert dark is None
    else:
        assert dark is not None
        assert hours[0] * HOUR < dark[1] - dark[0] < hours[1] * HOUR


def test_energy_by_hour_puts_each_rise_in_its_hour(series: SeriesStore) -> None:
    t0 = at(SHANGHAI, 2026, 5, 10, 18)
    write(series, "energy", [(t0 + i * 600_000, 1.0 + 0.01 * i) for i in range(13)])
    energy = read_energy(series, [LAMP], t0, t0 + 2 * HOUR, SHANGHAI, "hour")
    # the hour's first reading opens the count; the next hour counts from the last one
    assert energy[LAMP] == {t0: pytest.approx(0.05), t0 + HOUR: pytest.approx(0.06)}


def test_a_lamp_burning_by_day_is_priced_at_that_hour_and_saves_nothing() -> None:
    noon = at(SHANGHAI, 2026, 5, 10, 12)
    [row] = savings(
        {LAMP: {noon: 0.1}}, [place()], noon, noon + HOUR, SHANGHAI, "hour",
        Tariff.parse(TOU), GRID, "lamp", night_18_to_6,
    )  # fmt: skip
    assert (row.baseline_kwh, row.actual_cost) == (0.0, pytest.approx(0.07))
    assert row.saved_kwh == pytest.approx(-0.1)


def test_a_lamp_that_reported_nothing_is_not_counted_as_a_saving() -> None:
    day = at(SHANGHAI, 2026, 5, 10)
    rows = savings(
        {1: {day: 0.6}}, [place(1), place(2)], day, day + 24 * HOUR, SHANGHAI, "day",
        Tariff.parse(TOU), GRID, "lamp", night_18_to_6,
    )  # fmt: skip
    assert [(r.group, r.baseline_kwh) for r in rows] == [("1", pytest.approx(1.2))]
