"""Lamp energy from counters and power, savings against dusk-to-dawn, ToU tariffs and CO2."""

from __future__ import annotations

import bisect
import random
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from smartpole.errors import InvalidInput
from smartpole.lighting.energy import (
    HEADER,
    By,
    Span,
    astral_night,
    bounds,
    counter_energy,
    energy_csv,
    group_energy,
    metered,
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


def raw_scan(
    series: SeriesStore, lamp: int, start: int, end: int, zone: tzinfo, by: By
) -> dict[int, float]:
    """The reference: every raw reading from a week before ``start`` walked one by one, each
    rise in the bucket of the reading that shows it."""
    edges = bounds(start, end, zone, by)
    raw = series.history(lamp, ["energy"], start - 7 * 24 * HOUR, end, 10_000_000)["energy"]
    spans = [
        Span(edges[bisect.bisect_right(edges, ts) - 1] if ts >= start else 0, float(v), float(v))
        for ts, v in raw
        if isinstance(v, int | float)
    ]
    used, _ = counter_energy(spans)
    return {b: kwh for b, kwh in used.items() if b}


def year_of_a_counter(start: int, hours: int, first: float) -> list[tuple[int, float]]:
    """Hourly readings of a 100 W lamp on from 18:00 to 06:00 local (Shanghai), from ``first``
    kWh, with a reset at the January/February boundary, a gap across the end of February and a
    new meter in mid-March."""
    feb1, mar1 = at(SHANGHAI, 2026, 2, 1), at(SHANGHAI, 2026, 3, 1)
    gap = range(mar1 - 30 * HOUR, mar1 + 40 * HOUR)
    mar15 = at(SHANGHAI, 2026, 3, 15, 12)
    points, level = [], first
    for h in range(hours):
        ts = start + h * HOUR
        local = datetime.fromtimestamp(ts / 1000, SHANGHAI).hour
        level += 0.1 if local >= 18 or local < 6 else 0.0
        if ts == feb1:
            level = 0.3  # a firmware reset on the first reading of February
        if ts == mar15:
            level = 0.0  # a new meter
        if ts not in gap:
            points.append((ts, round(level, 4)))
    return points


@pytest.mark.parametrize(
    ("by", "first"),
    [
        pytest.param("month", 5000.0, id="by-month"),
        pytest.param("day", 5000.0, id="by-day"),
        pytest.param("hour", 5000.0, id="by-hour"),
        pytest.param("month", 2.0, id="by-month-a-young-meter"),
    ],
)
def test_reading_at_the_boundaries_gives_the_raw_scan_totals_with_resets_and_gaps(
    series: SeriesStore, by: By, first: float
) -> None:
    start = at(SHANGHAI, 2026, 1, 20)
    write(series, "energy", year_of_a_counter(start - 2 * HOUR, 24 * 70, first))
    window = (at(SHANGHAI, 2026, 1, 25, 7), at(SHANGHAI, 2026, 3, 28, 13))
    energy = read_energy(series, [LAMP], *window, SHANGHAI, by)
    expected = raw_scan(series, LAMP, *window, SHANGHAI, by)
    assert energy[LAMP] == pytest.approx(expected)
    assert all(kwh >= 0 for kwh in energy[LAMP].values())


def test_a_lamp_first_seen_in_the_window_counts_from_its_first_reading(
    series: SeriesStore,
) -> None:
    first = at(SHANGHAI, 2026, 2, 10, 20)
    write(series, "energy", [(first + h * HOUR, 700.0 + h) for h in range(5)])
    start, end = at(SHANGHAI, 2026, 1, 1), at(SHANGHAI, 2026, 4, 1)
    energy = read_energy(series, [LAMP], start, end, SHANGHAI, "month")
    assert energy[LAMP] == {at(SHANGHAI, 2026, 2, 1): pytest.approx(4.0)}


@pytest.mark.parametrize("key", ["energy", "power"])
def test_a_lamp_metered_from_mid_month_is_held_against_the_nights_it_was_metered(
    series: SeriesStore, key: str
) -> None:
    # metered from 20:10 on 10 Feb to 00:50 on 11 Feb (a platform started that evening): the
    # baseline is the night from 20:00 to 01:00, not all of February's 28 nights
    first = at(SHANGHAI, 2026, 2, 10, 20) + 10 * 60_000
    points = [(first + h * HOUR, (700.0 + h * 0.05) if key == "energy" else 50.0) for h in range(5)]
    write(series, key, points)
    start, end = at(SHANGHAI, 2026, 2, 1), at(SHANGHAI, 2026, 3, 1)
    read = metered(series, [LAMP], start, end, SHANGHAI, "month")
    assert read.spans[LAMP] == (at(SHANGHAI, 2026, 2, 10, 20), at(SHANGHAI, 2026, 2, 11, 1))
    tariff = Tariff.parse(TOU)
    [row] = savings(
        read.energy, [place()], start, end, SHANGHAI, "month", tariff, GRID, "tenant",
        night_18_to_6, read.spans,
    )  # fmt: skip
    assert row.baseline_kwh == pytest.approx(0.5)  # 100 W for 5 hours
    assert row.actual_kwh == pytest.approx(sum(read.energy[LAMP].values()))
    [unclipped] = savings(
        read.energy, [place()], start, end, SHANGHAI, "month", tariff, GRID, "tenant",
        night_18_to_6,
    )  # fmt: skip
    assert unclipped.baseline_kwh == pytest.approx(28 * 1.2)  # what the report said before


def test_a_month_without_a_reading_is_not_measured_and_its_energy_lands_after_it(
    series: SeriesStore,
) -> None:
    # silent from mid-January to mid-March: longer than a PostgreSQL partition's month
    jan, mar = at(SHANGHAI, 2026, 1, 15), at(SHANGHAI, 2026, 3, 15)
    write(series, "energy", [(jan, 10.0), (jan + HOUR, 11.0), (mar, 70.0), (mar + HOUR, 71.0)])
    start, end = at(SHANGHAI, 2026, 1, 1), at(SHANGHAI, 2026, 5, 1)
    energy = read_energy(series, [LAMP], start, end, SHANGHAI, "month")
    assert energy[LAMP] == {start: pytest.approx(1.0), at(SHANGHAI, 2026, 3, 1): 60.0}


def test_the_store_finds_the_last_reading_before_each_boundary(series: SeriesStore) -> None:
    jan, mar = at(SHANGHAI, 2026, 1, 15), at(SHANGHAI, 2026, 3, 20)
    write(series, "energy", [(jan, 10.0), (mar, 12.5)])
    series.write(WriteBatch(readings=[Reading(LAMP + 1, "energy", mar, "broken")]))
    marks = [at(SHANGHAI, 2026, m, 1) for m in (1, 2, 3, 4)]
    found = series.values_before([LAMP, LAMP + 1, LAMP + 2], "energy", marks, jan - 1)
    assert found == {LAMP: [None, (jan, 10.0), (jan, 10.0), (mar, 12.5)]}


def test_the_level_before_start_comes_from_as_far_back_as_the_lookback(
    series: SeriesStore,
) -> None:
    start = at(SHANGHAI, 2026, 3, 1)
    write(series, "energy", [(start - 45 * 24 * HOUR, 100.0), (start + 5 * HOUR, 103.0)])
    end = at(SHANGHAI, 2026, 4, 1)
    far = read_energy(series, [LAMP], start, end, SHANGHAI, "month", lookback_ms=60 * 24 * HOUR)
    near = read_energy(series, [LAMP], start, end, SHANGHAI, "month")
    assert far == {LAMP: {start: pytest.approx(3.0)}}
    assert near == {LAMP: {start: 0.0}}  # no level: the first reading only starts the count


def test_the_store_gives_the_lowest_rollup_value_of_each_span(series: SeriesStore) -> None:
    day = at(SHANGHAI, 2026, 5, 10)
    write(series, "energy", [(day + h * HOUR, 50.0 - h) for h in range(10)])
    spans = [(LAMP, day, day + 3 * HOUR), (LAMP, day + 5 * HOUR + 1, day + 24 * HOUR)]
    assert series.lowest("energy", [*spans, (LAMP + 1, day, day + HOUR)]) == [48.0, 41.0, None]


def test_over_a_long_span_power_comes_from_the_hourly_means(series: SeriesStore) -> None:
    start = at(SHANGHAI, 2026, 1, 1)
    write(series, "power", [(start + i * 600_000, 100.0) for i in range(6 * 24 * 40)])
    end = at(SHANGHAI, 2026, 2, 1)
    energy = read_energy(series, [LAMP], start, end, SHANGHAI, "month", raw_power_ms=HOUR)
    assert energy[LAMP] == {start: pytest.approx(0.1 * 24 * 31)}


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


def test_one_tariff_clock_answers_reports_in_many_threads_alike() -> None:
    # the API's worker threads share one clock per tariff while it grows its running totals
    rng = random.Random(7)
    base = at(SHANGHAI, 2026, 1, 1)
    alone = TariffClock(Tariff.parse(TOU), SHANGHAI)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        for _ in range(6):  # a new clock each round: it grows its totals most while young
            shared = TariffClock(Tariff.parse(TOU), SHANGHAI)
            # over ten years, in no order: the clock grows again and again meanwhile
            days = [rng.randrange(3650) for _ in range(200)]
            spans = [(base + d * 24 * HOUR, base + d * 24 * HOUR + 30 * HOUR) for d in days]

            def work(part: list[tuple[int, int]], clock: TariffClock = shared) -> list[float]:
                return [clock.split(a, b).priced for a, b in part]

            with ThreadPoolExecutor(4) as pool:
                chunks = list(pool.map(work, [spans[i::4] for i in range(4)]))
            found = [p for chunk in chunks for p in chunk]
            expected = [alone.split(a, b).priced for i in range(4) for a, b in spans[i::4]]
            assert found == pytest.approx(expected)
    finally:
        sys.setswitchinterval(switch)


@pytest.mark.parametrize(
    ("day", "valley_h"),
    [
        pytest.param(date(2026, 3, 29), 7, id="spring-forward-loses-a-valley-hour"),
        pytest.param(date(2026, 10, 25), 9, id="fall-back-gains-a-valley-hour"),
    ],
)
def test_a_berlin_tariff_day_across_daylight_saving_keeps_its_clock_times(
    day: date, valley_h: int
) -> None:
    two = {
        "name": "two periods",
        "currency": "EUR",
        "periods": [
            {"kind": "valley", "start": "22:00", "end": "06:00", "price": 0.2},
            {"kind": "peak", "start": "06:00", "end": "22:00", "price": 0.4},
        ],
    }
    clock = TariffClock(Tariff.parse(two), BERLIN)
    start = at(BERLIN, day.year, day.month, day.day)
    split = clock.split(start, bounds(start, start + 1, BERLIN, "day")[1])
    assert split.ms == {"valley": valley_h * HOUR, "peak": 16 * HOUR}


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
