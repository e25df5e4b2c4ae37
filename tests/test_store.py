"""The time-series store, as a user depends on it, on both engines (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
import pytest
from sqlalchemy import select, text

from helpers import add_device
from pg import PostgresCluster
from smartpole.config import Settings
from smartpole.model.types import Quality, Reading, Value
from smartpole.model.writes import Quarantined, WriteBatch
from smartpole.store import Database, SeriesStore, open_series
from smartpole.store.schema import devices
from smartpole.store.series import Aggregation

BASE = 1_764_000_000_000  # 2025-11-24T16:00:00Z, hour-aligned
HOUR = 3_600_000
MINUTE = 60_000
DAY = 86_400_000
DEC_1 = 1_764_547_200_000  # 2025-12-01T00:00:00Z
JAN_1 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
AGGS: tuple[Aggregation, ...] = ("avg", "min", "max", "sum", "count")


# -- helpers ------------------------------------------------------------------------------
def write(series: SeriesStore, readings: Iterable[Reading], **kwargs: Any) -> Any:
    return series.write(WriteBatch(readings=list(readings), **kwargs))


def last_seen(db: Database, device_id: int) -> int | None:
    with db.engine.connect() as conn:
        return conn.execute(select(devices.c.last_seen).where(devices.c.id == device_id)).scalar()


def numeric(value: Value) -> float:
    assert isinstance(value, int | float)
    return float(value)


def first_wins(readings: Iterable[Reading]) -> list[Reading]:
    """What the store should keep: the first reading of every (device, key, ts)."""
    kept: dict[tuple[int, str, int], Reading] = {}
    for r in readings:
        kept.setdefault((r.device_id, r.key, r.ts), r)
    return list(kept.values())


def by_hand(
    readings: Iterable[Reading],
    device_ids: Sequence[int],
    keys: Sequence[str],
    start: int,
    end: int,
    interval: int,
    agg: Aggregation,
    per_device: bool = True,
) -> dict[int, dict[str, list[tuple[int, float]]]]:
    """The aggregation ``SeriesStore.aggregate`` should return, computed in Python."""
    groups: dict[tuple[int, str, int], list[float]] = defaultdict(list)
    for r in readings:
        if r.device_id not in device_ids or r.key not in keys or not start <= r.ts < end:
            continue
        if not isinstance(r.value, int | float):
            continue  # strings and JSON are not aggregated
        bucket = r.ts - r.ts % interval  # sub-day buckets sit on multiples of the interval
        groups[(r.device_id if per_device else 0, r.key, bucket)].append(float(r.value))
    finish = {
        "avg": lambda v: sum(v) / len(v),
        "min": min,
        "max": max,
        "sum": sum,
        "count": lambda v: float(len(v)),
    }[agg]
    out: dict[int, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for (device_id, key, bucket), values in sorted(groups.items()):
        out[device_id][key].append((bucket, finish(values)))
    return {d: dict(v) for d, v in out.items()}


def assert_same_aggregation(got: dict[Any, Any], want: dict[Any, Any], agg: str = "") -> None:
    """Same devices, keys and buckets; values equal up to float summation order."""
    assert got.keys() == want.keys(), agg
    for device_id, series in want.items():
        assert got[device_id].keys() == series.keys(), (agg, device_id)
        for key, points in series.items():
            got_points = got[device_id][key]
            where = (agg, device_id, key)
            assert [b for b, _ in got_points] == [b for b, _ in points], where
            assert [v for _, v in got_points] == pytest.approx([v for _, v in points]), where


def rollups_by_hand(readings: Iterable[Reading]) -> dict[tuple[int, str, int], tuple[Any, ...]]:
    groups: dict[tuple[int, str, int], list[float]] = defaultdict(list)
    for r in readings:
        if isinstance(r.value, int | float):
            groups[(r.device_id, r.key, r.ts - r.ts % HOUR)].append(float(r.value))
    return {g: (len(v), pytest.approx(sum(v)), min(v), max(v)) for g, v in groups.items()}


def rollups_table(db: Database) -> dict[tuple[int, str, int], tuple[Any, ...]]:
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT device_id, key, hour, cnt, sum, min, max FROM rollups"))
        return {(d, k, h): (c, s, lo, hi) for d, k, h, c, s, lo, hi in rows}


def random_readings(seed: int, start: int, end: int, per_series: int = 120) -> list[Reading]:
    """Numbers, booleans and strings for three devices, unique timestamps, random order."""
    rnd = random.Random(seed)
    out: list[Reading] = []
    for device_id in (1, 2, 3):
        for key in ("temp", "on", "mode"):
            for ts in rnd.sample(range(start, end, 1000), per_series):
                value: Value
                if key == "temp":
                    value = round(rnd.uniform(-20.0, 40.0), 3)
                elif key == "on":
                    value = rnd.random() < 0.3
                else:
                    value = rnd.choice(["eco", "full", "off"])
                out.append(Reading(device_id, key, ts + rnd.randrange(1000), value))
    rnd.shuffle(out)
    return out


def write_in_batches(series: SeriesStore, readings: list[Reading], n: int = 4) -> None:
    size = len(readings) // n + 1
    for i in range(0, len(readings), size):
        write(series, readings[i : i + size])


# -- values -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(21, 21, id="int"),
        pytest.param(-7, -7, id="negative-int"),
        pytest.param(0, 0, id="zero"),
        pytest.param(2**40, 2**40, id="big-int"),
        pytest.param(21.25, 21.25, id="float"),
        pytest.param(2.0, 2, id="whole-float-is-int"),
        pytest.param(True, True, id="true"),
        pytest.param(False, False, id="false"),
        pytest.param("on", "on", id="string"),
        pytest.param("", "", id="empty-string"),
        pytest.param("ünïcødé ✓", "ünïcødé ✓", id="unicode-string"),
        pytest.param({"a": 1, "b": [1, "x", None], "c": {"d": 1.5}}, None, id="json-object"),
        pytest.param([1, "two", False], None, id="json-array"),
    ],
)
def test_value_round_trips_with_its_type(series: SeriesStore, value: Value, expected: Any) -> None:
    expected = value if expected is None else expected
    write(series, [Reading(1, "k", BASE, value)])

    ts, got = series.latest([1])[1]["k"]
    assert (ts, got) == (BASE, expected)
    assert type(got) is type(expected)
    [(hts, hgot)] = series.history(1, ["k"], BASE, BASE + 1)["k"]
    assert (hts, hgot) == (BASE, expected)
    assert type(hgot) is type(expected)


def test_latest_filters_by_device_and_key(series: SeriesStore) -> None:
    write(
        series,
        [Reading(1, "a", BASE, 1), Reading(1, "b", BASE, 2), Reading(2, "a", BASE, 3)],
    )

    assert series.latest([1, 2]) == {1: {"a": (BASE, 1), "b": (BASE, 2)}, 2: {"a": (BASE, 3)}}
    assert series.latest([1, 2], ["b"]) == {1: {"b": (BASE, 2)}}
    assert series.latest([3]) == {}
    assert series.latest([]) == {}


def test_history_is_half_open_oldest_first_and_limited(series: SeriesStore) -> None:
    write(series, [Reading(1, "k", BASE + i * 1000, i) for i in range(10)])

    got = series.history(1, ["k", "other"], BASE + 2000, BASE + 7000)
    assert got == {"k": [(BASE + i * 1000, i) for i in range(2, 7)], "other": []}
    assert series.history(1, ["k"], BASE, BASE + 10_000, limit=3) == {
        "k": [(BASE, 0), (BASE + 1000, 1), (BASE + 2000, 2)]
    }


# -- duplicates ---------------------------------------------------------------------------
def test_second_write_of_same_batch_changes_nothing(series: SeriesStore) -> None:
    readings = random_readings(7, BASE, BASE + 3 * HOUR, per_series=40)
    first = write(series, readings)
    window = (BASE, BASE + 3 * HOUR)
    before = {agg: series.aggregate([1, 2, 3], ["temp", "on"], *window, HOUR, agg) for agg in AGGS}
    latest_before = series.latest([1, 2, 3])
    history_before = series.history(1, ["temp", "on", "mode"], *window)

    again = write(series, readings)

    assert (first.inserted, first.duplicates) == (len(readings), 0)
    assert (again.inserted, again.duplicates) == (0, len(readings))
    for agg in AGGS:
        got = series.aggregate([1, 2, 3], ["temp", "on"], *window, HOUR, agg)
        assert_same_aggregation(got, before[agg])  # a recount may sum in another order
    assert series.latest([1, 2, 3]) == latest_before
    assert series.history(1, ["temp", "on", "mode"], *window) == history_before


def test_duplicate_with_different_value_keeps_first(series: SeriesStore) -> None:
    write(series, [Reading(1, "k", BASE, 10)])

    result = write(series, [Reading(1, "k", BASE, 99)])

    assert (result.inserted, result.duplicates) == (0, 1)
    assert series.history(1, ["k"], BASE, BASE + HOUR) == {"k": [(BASE, 10)]}
    assert series.latest([1]) == {1: {"k": (BASE, 10)}}
    assert series.aggregate([1], ["k"], BASE, BASE + HOUR, HOUR, "sum") == {1: {"k": [(BASE, 10)]}}


def test_duplicate_within_one_batch_keeps_first(series: SeriesStore) -> None:
    stamps = [BASE + i * 1000 for i in range(600)]
    batch = [
        Reading(d, "k", ts, n * 1000 + i)
        for n in range(3)
        for d in (1, 2)
        for i, ts in enumerate(stamps)
    ]
    random.Random(5).shuffle(batch)
    kept = first_wins(batch)

    result = write(series, batch)

    assert (result.inserted, result.duplicates) == (len(kept), len(batch) - len(kept))
    for d in (1, 2):
        want = sorted((r.ts, r.value) for r in kept if r.device_id == d)
        assert series.history(d, ["k"], BASE, BASE + HOUR)["k"] == want
        assert series.latest([d])[d]["k"] == want[-1]
        assert series.aggregate([d], ["k"], BASE, BASE + HOUR, HOUR, "sum") == {
            d: {"k": [(BASE, pytest.approx(sum(numeric(v) for _, v in want)))]}
        }


# -- order --------------------------------------------------------------------------------
def test_out_of_order_readings_are_stored_in_place(series: SeriesStore) -> None:
    stamps = [BASE + i * MINUTE for i in range(30)]
    shuffled = stamps[:]
    random.Random(3).shuffle(shuffled)

    for i in range(0, 30, 7):
        write(series, [Reading(1, "k", ts, (ts - BASE) // MINUTE) for ts in shuffled[i : i + 7]])

    got = series.history(1, ["k"], BASE, BASE + HOUR)["k"]
    assert got == [(ts, (ts - BASE) // MINUTE) for ts in stamps]


def test_latest_never_goes_back_in_time(series: SeriesStore) -> None:
    write(series, [Reading(1, "k", BASE + 10_000, "newest")])

    write(series, [Reading(1, "k", BASE + 5_000, "older"), Reading(1, "k", BASE, "oldest")])

    assert series.latest([1]) == {1: {"k": (BASE + 10_000, "newest")}}
    assert [ts for ts, _ in series.history(1, ["k"], BASE, BASE + HOUR)["k"]] == [
        BASE,
        BASE + 5_000,
        BASE + 10_000,
    ]


def test_latest_is_newest_of_one_batch_whatever_the_order(series: SeriesStore) -> None:
    mid, new, old = (
        Reading(1, "k", BASE + i * 1000, v) for i, v in ((1, "mid"), (2, "new"), (0, "old"))
    )

    write(series, [mid, new, old])

    assert series.latest([1]) == {1: {"k": (BASE + 2000, "new")}}


def test_previous_is_the_newest_value_older_than_the_latest(series: SeriesStore) -> None:
    """What the rules' late readings see of a key whose latest value is younger than them, as
    the hub reads it at start and for a key a new rule reads: a late reading between the two
    newest counts, the key's other devices and keys are apart."""
    write(series, [Reading(1, "k", BASE, "first"), Reading(1, "k", BASE + 10_000, "third")])
    write(series, [Reading(1, "k", BASE + 5_000, "second (late)"), Reading(1, "j", BASE, 1)])
    write(series, [Reading(2, "k", BASE, "only"), Reading(3, "k", BASE, "other device")])

    assert series.previous([1, 2], ["k", "j"]) == {1: {"k": (BASE + 5_000, "second (late)")}}
    assert series.previous([1], []) == {}


# -- aggregation --------------------------------------------------------------------------
WINDOWS = [
    pytest.param(BASE, BASE + 6 * HOUR, HOUR, id="rollups-hourly"),
    pytest.param(BASE, BASE + 6 * HOUR, 2 * HOUR, id="rollups-2h"),
    pytest.param(BASE, BASE + 5 * HOUR + 20 * MINUTE, HOUR, id="rollups-with-raw-tail"),
    pytest.param(BASE + 7 * MINUTE, BASE + 6 * HOUR, HOUR, id="raw-unaligned-start"),
    pytest.param(BASE, BASE + 6 * HOUR, 15 * MINUTE, id="raw-15min"),
    pytest.param(BASE + 7 * MINUTE, BASE + 5 * HOUR + 20 * MINUTE, HOUR, id="rollups-cut-ends"),
    pytest.param(BASE + 7 * MINUTE, BASE + 6 * HOUR, 7 * MINUTE, id="raw-7min"),
]


@pytest.mark.parametrize(("start", "end", "interval"), WINDOWS)
def test_aggregate_per_device_matches_hand_computation(
    series: SeriesStore, start: int, end: int, interval: int
) -> None:
    readings = random_readings(42, BASE - HOUR, BASE + 7 * HOUR)
    write_in_batches(series, readings)

    for agg in AGGS:
        got = series.aggregate([1, 2], ["temp", "on", "mode"], start, end, interval, agg)

        want = by_hand(readings, [1, 2], ["temp", "on", "mode"], start, end, interval, agg)
        assert_same_aggregation(got, want, agg)


@pytest.mark.parametrize(("start", "end", "interval"), WINDOWS)
def test_aggregate_fleet_wide_matches_hand_computation(
    series: SeriesStore, start: int, end: int, interval: int
) -> None:
    readings = random_readings(43, BASE - HOUR, BASE + 7 * HOUR)
    write_in_batches(series, readings)

    for agg in AGGS:
        got = series.aggregate([1, 2, 3], ["temp", "on"], start, end, interval, agg, False)

        want = by_hand(readings, [1, 2, 3], ["temp", "on"], start, end, interval, agg, False)
        assert_same_aggregation(got, want, agg)


def test_aggregate_of_empty_window_or_bad_arguments_is_empty(series: SeriesStore) -> None:
    write(series, [Reading(1, "k", BASE, 1)])

    assert series.aggregate([1], ["k"], BASE + HOUR, BASE + 2 * HOUR, HOUR, "sum") == {}
    assert series.aggregate([1], ["k"], BASE, BASE, HOUR, "sum") == {}
    assert series.aggregate([1], ["k"], BASE, BASE + HOUR, 0, "sum") == {}
    assert series.aggregate([], ["k"], BASE, BASE + HOUR, HOUR, "sum") == {}
    assert series.aggregate([1], [], BASE, BASE + HOUR, HOUR, "sum") == {}


def test_rollups_stay_exact_after_duplicate_writes(database: Database) -> None:
    series = open_series(database)
    try:
        readings = random_readings(11, BASE, BASE + 4 * HOUR, per_series=60)
        write(series, readings[:300])
        # Old readings again (with other values), new ones, and duplicates inside the batch.
        replay = [Reading(r.device_id, r.key, r.ts, 1000.0) for r in readings[100:200]]
        batch = replay + readings[300:] + readings[300:320]
        result = write(series, batch)
        all_written = readings[:300] + batch

        kept = first_wins(all_written)
        assert result.inserted == len(readings) - 300
        assert result.duplicates == len(batch) - result.inserted
        assert rollups_table(database) == rollups_by_hand(kept)
        for agg in AGGS:
            got = series.aggregate([1, 2, 3], ["temp", "on"], BASE, BASE + 4 * HOUR, HOUR, agg)
            want = by_hand(kept, [1, 2, 3], ["temp", "on"], BASE, BASE + 4 * HOUR, HOUR, agg)
            assert_same_aggregation(got, want, agg)
    finally:
        series.close()  # type: ignore[attr-defined]


@pytest.mark.postgres
def test_rollups_stay_exact_when_two_nodes_write_the_same_hour(
    pg_cluster: PostgresCluster, pg_template: str
) -> None:
    """Node A holds a reading of an hour in memory (not yet flushed) when node B commits a batch
    with that reading again and a new one: the hour counts each reading once (a broker may
    deliver a message again to another node). Several nodes share PostgreSQL only; an SQLite
    file has one writer."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    database = Database(Settings(db=pg_cluster.create_database(name, pg_template)).database_url)
    a = open_series(database, flush_ms=60_000, node="a")
    b = open_series(database, flush_ms=60_000, node="b")
    try:
        first, second = Reading(1, "temp", BASE + 10, 20.0), Reading(1, "temp", BASE + 20, 30.0)
        write(a, [first])
        result = write(b, [first, second])
        assert (result.inserted, result.duplicates) == (1, 1)
        b.flush()
        a.flush()
        assert rollups_table(database) == rollups_by_hand([first, second])
    finally:
        a.close()  # type: ignore[attr-defined]
        b.close()  # type: ignore[attr-defined]
        database.dispose()
        pg_cluster.drop_database(name)


def test_rollups_stay_exact_after_out_of_order_writes(database: Database) -> None:
    series = open_series(database)
    try:
        readings = random_readings(12, BASE, BASE + 4 * HOUR, per_series=60)
        write_in_batches(series, readings)
        # Late readings into hours already rolled up, with new extremes.
        late = [
            Reading(1, "temp", BASE + HOUR + 1, -99.5),
            Reading(1, "temp", BASE + HOUR + 2, 99.5),
            Reading(2, "temp", BASE + 3, 0.25),
            Reading(3, "on", BASE + 2 * HOUR + 5, True),
        ]
        write(series, late)
        kept = first_wins(readings + late)

        assert rollups_table(database) == rollups_by_hand(kept)
        for agg in AGGS:
            got = series.aggregate([1, 2, 3], ["temp", "on"], BASE, BASE + 4 * HOUR, HOUR, agg)
            want = by_hand(kept, [1, 2, 3], ["temp", "on"], BASE, BASE + 4 * HOUR, HOUR, agg)
            assert_same_aggregation(got, want, agg)
    finally:
        series.close()  # type: ignore[attr-defined]


def test_aggregate_ignores_strings_and_json_under_a_numeric_key(series: SeriesStore) -> None:
    write(
        series,
        [
            Reading(1, "k", BASE, 4),
            Reading(1, "k", BASE + 1, "n/a"),
            Reading(1, "k", BASE + 2, {"err": 1}),
            Reading(1, "k", BASE + 3, 6),
        ],
    )

    for start in (BASE, BASE - 1):  # rollups and raw scan
        assert series.aggregate([1], ["k"], start, BASE + HOUR, HOUR, "count") == {
            1: {"k": [(BASE, 2)]}
        }
        assert series.aggregate([1], ["k"], start, BASE + HOUR, HOUR, "avg") == {
            1: {"k": [(BASE, 5)]}
        }


# -- retention ----------------------------------------------------------------------------
def keys_left(series: SeriesStore, device_id: int, keys: Sequence[str]) -> dict[str, list[int]]:
    got = series.history(device_id, keys, BASE - 30 * DAY, BASE + DAY)
    return {k: [ts for ts, _ in v] for k, v in got.items()}


def test_retention_rule_purges_only_that_keys_expired_readings(series: SeriesStore) -> None:
    old, recent = BASE - 3 * DAY, BASE - HOUR
    write(series, [Reading(1, k, ts, 1) for k in ("short", "other") for ts in (old, recent)])
    series.set_retention("short", 1)

    deleted = series.purge(BASE)

    assert deleted == 1
    assert keys_left(series, 1, ["short", "other"]) == {
        "short": [recent],
        "other": [old, recent],
    }


def test_default_retention_purges_keys_without_a_rule(database: Database) -> None:
    series = open_series(database, default_retention_days=2)
    try:
        stamps = (BASE - 3 * DAY, BASE - DAY - HOUR, BASE - HOUR)
        keys = ("forever", "short", "other")
        write(series, [Reading(1, k, ts, 1) for k in keys for ts in stamps])
        series.set_retention("forever", 0)
        series.set_retention("short", 1)

        deleted = series.purge(BASE)

        assert deleted == 3
        assert keys_left(series, 1, keys) == {
            "forever": list(stamps),
            "short": [BASE - HOUR],
            "other": [BASE - DAY - HOUR, BASE - HOUR],
        }
    finally:
        series.close()  # type: ignore[attr-defined]


def test_retention_rule_can_be_returned_to_default(series: SeriesStore) -> None:
    series.set_retention("k", 5)
    series.set_retention("k", 7)
    assert series.retention_rules() == {"k": 7}

    series.set_retention("k", None)

    assert series.retention_rules() == {}
    write(series, [Reading(1, "k", BASE - 30 * DAY, 1)])
    assert series.purge(BASE) == 0  # default of this store: keep forever


def test_purge_keeps_latest_and_hourly_aggregates(series: SeriesStore) -> None:
    old = BASE - 10 * DAY
    write(series, [Reading(1, "k", old + i * MINUTE, i) for i in range(5)])
    series.set_retention("k", 1)

    assert series.purge(BASE) == 5

    assert series.history(1, ["k"], old, BASE) == {"k": []}
    assert series.latest([1]) == {1: {"k": (old + 4 * MINUTE, 4)}}
    hour = old - old % HOUR
    assert series.aggregate([1], ["k"], hour, hour + HOUR, HOUR, "sum") == {1: {"k": [(hour, 10)]}}


# -- quarantine ---------------------------------------------------------------------------
def test_quarantined_values_are_kept_apart_and_counted(series: SeriesStore) -> None:
    batch = WriteBatch(
        readings=[Reading(1, "temp", BASE, 20)],
        quarantined=[
            Quarantined(Reading(1, "temp", BASE + 1000, "hot"), Quality.WRONG_TYPE, "not a number"),
            Quarantined(Reading(1, "temp", BASE + 2000, 900), Quality.OUT_OF_RANGE, "above 85"),
            Quarantined(Reading(2, "hum", BASE, {"v": 1}), Quality.WRONG_TYPE, "x" * 400),
        ],
    )

    result = series.write(batch)

    assert (result.inserted, result.duplicates, result.quarantined) == (1, 0, 3)
    assert series.quarantine_counts([1, 2, 3]) == {1: 2, 2: 1}
    assert series.quarantine_counts([]) == {}
    got = series.quarantined(1)
    assert [(q["key"], q["ts"], q["value"], q["quality"], q["reason"]) for q in got] == [
        ("temp", BASE + 2000, 900, "out_of_range", "above 85"),
        ("temp", BASE + 1000, "hot", "wrong_type", "not a number"),
    ]
    assert all(isinstance(q["received"], int) for q in got)
    [other] = series.quarantined(2)
    assert (other["value"], other["reason"]) == ({"v": 1}, "x" * 300)
    # Good data does not see them.
    assert series.latest([1, 2]) == {1: {"temp": (BASE, 20)}}
    assert series.history(1, ["temp"], BASE, BASE + HOUR) == {"temp": [(BASE, 20)]}


def test_quarantined_lists_newest_first_up_to_limit(series: SeriesStore) -> None:
    series.write(
        WriteBatch(
            quarantined=[
                Quarantined(Reading(1, "k", BASE + i, i), Quality.OUT_OF_RANGE, "range")
                for i in range(5)
            ]
        )
    )

    assert [q["ts"] for q in series.quarantined(1, limit=2)] == [BASE + 4, BASE + 3]


# -- last seen ----------------------------------------------------------------------------
def test_last_seen_follows_the_newest_receive_time(database: Database, series: SeriesStore) -> None:
    device = add_device(database)
    other = add_device(database)
    assert last_seen(database, device) is None

    series.write(WriteBatch(seen={device: BASE + 1000}))
    assert last_seen(database, device) == BASE + 1000

    series.write(WriteBatch(readings=[Reading(device, "k", BASE, 1)], seen={device: BASE + 5000}))
    assert last_seen(database, device) == BASE + 5000
    assert last_seen(database, other) is None


def test_last_seen_never_goes_back(database: Database, series: SeriesStore) -> None:
    device = add_device(database)
    series.write(WriteBatch(seen={device: BASE + 5000}))

    series.write(WriteBatch(seen={device: BASE + 1000}))

    assert last_seen(database, device) == BASE + 5000


def test_last_seen_of_unknown_device_is_ignored(database: Database, series: SeriesStore) -> None:
    result = series.write(WriteBatch(readings=[Reading(999, "k", BASE, 1)], seen={999: BASE}))

    assert result.inserted == 1
    assert series.latest([999]) == {999: {"k": (BASE, 1)}}


# -- failures -----------------------------------------------------------------------------
def test_failed_batch_writes_nothing_and_store_keeps_working(
    database: Database, series: SeriesStore
) -> None:
    device = add_device(database)
    bad = WriteBatch(
        readings=[Reading(1, "k", BASE, 1), Reading(2**63, "k", BASE, 2)],  # id overflows
        quarantined=[Quarantined(Reading(1, "k", BASE + 1, "x"), Quality.WRONG_TYPE, "type")],
        seen={device: BASE},
    )

    # SQLite cannot bind the id; PostgreSQL rejects it as out of range for ``integer``.
    with pytest.raises((OverflowError, psycopg.DataError)):
        series.write(bad)

    assert series.latest([1]) == {}
    assert series.history(1, ["k"], BASE, BASE + HOUR) == {"k": []}
    assert series.quarantine_counts([1]) == {}
    assert last_seen(database, device) is None
    assert series.aggregate([1], ["k"], BASE, BASE + HOUR, HOUR, "count") == {}
    # The next batch goes through.
    result = write(series, [Reading(1, "k", BASE, 1)], seen={device: BASE})
    assert result.inserted == 1
    assert series.latest([1]) == {1: {"k": (BASE, 1)}}
    assert last_seen(database, device) == BASE


# -- schema and engines -------------------------------------------------------------------
def test_upgrade_twice_is_harmless(database: Database, series: SeriesStore) -> None:
    write(series, [Reading(1, "k", BASE, 1)])

    revision = database.upgrade()

    assert revision == database.head() == database.revision()
    assert series.latest([1]) == {1: {"k": (BASE, 1)}}
    write(series, [Reading(1, "k", BASE + 1, 2)])
    assert series.history(1, ["k"], BASE, BASE + HOUR) == {"k": [(BASE, 1), (BASE + 1, 2)]}


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
@pytest.mark.parametrize(
    ("boundary", "months", "ahead"),
    [
        pytest.param(
            DEC_1, ("readings_202511", "readings_202512"), "readings_202601", id="nov-dec"
        ),
        pytest.param(
            JAN_1, ("readings_202512", "readings_202601"), "readings_202602", id="dec-jan"
        ),
    ],
)
def test_readings_of_two_months_land_in_two_partitions(
    database: Database, series: SeriesStore, boundary: int, months: tuple[str, str], ahead: str
) -> None:
    stamps = [boundary - DAY, boundary - 1, boundary, boundary + DAY]

    write(series, [Reading(1, "k", ts, i) for i, ts in enumerate(stamps)])

    with database.engine.connect() as conn:
        placed = dict(
            conn.execute(
                text("SELECT tableoid::regclass::text, count(*) FROM readings GROUP BY 1")
            ).all()
        )
        children = conn.execute(
            text(
                "SELECT inhrelid::regclass::text FROM pg_inherits"
                " WHERE inhparent = 'readings'::regclass ORDER BY 1"
            )
        ).scalars()
        # the month after the newest is made ahead, so that no batch waits for (or races on) it
        assert list(children) == [*months, ahead]
    assert placed == {months[0]: 2, months[1]: 2}
    got = series.history(1, ["k"], boundary - 2 * DAY, boundary + 2 * DAY)
    assert got == {"k": [(ts, i) for i, ts in enumerate(stamps)]}
