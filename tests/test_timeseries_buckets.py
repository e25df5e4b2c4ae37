"""Aggregated time series sit on the clock: hourly buckets on clock hours, daily buckets at
the tenant's local midnight (across daylight saving changes too), and the same answer whether
the hourly rollups or the raw readings serve it (both engines)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from fixtures_api import City, make_device

HOUR = 3_600_000
DAY = 86_400_000


def ms(iso: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 time with its offset."""
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def local_midnight(day: str, zone: str) -> int:
    """The instant of ``day``'s midnight in ``zone``."""
    return int(datetime.fromisoformat(day).replace(tzinfo=ZoneInfo(zone)).timestamp() * 1000)


@pytest.fixture
async def lamp(client: httpx.AsyncClient, city: City) -> dict[str, Any]:
    """A lamp of the lighting department."""
    return await make_device(client, city, "lighting", "lamp")


async def upload(
    client: httpx.AsyncClient, lamp: dict[str, Any], points: list[tuple[int, float]]
) -> None:
    """Post ``(ts, power)`` readings over the ThingsBoard HTTP device API."""
    body = [{"ts": ts, "values": {"power": v}} for ts, v in points]
    for i in range(0, len(body), 500):
        r = await client.post(f"/api/v1/{lamp['token']}/telemetry", json=body[i : i + 500])
        assert r.is_success, r.text


async def buckets(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any], **params: Any
) -> list[tuple[int, float]]:
    """``(ts, value)`` of the lamp's ``power`` buckets as the lighting department sees them."""
    r = await client.get(
        f"/api/devices/{lamp['id']}/timeseries",
        params={"keys": "power", **params},
        headers=city.auth("lighting"),
    )
    assert r.status_code == 200, r.text
    return [(p["ts"], p["value"]) for p in r.json()["power"]]


async def set_zone(client: httpx.AsyncClient, city: City, zone: str) -> None:
    r = await client.patch(
        f"/api/tenants/{city.ids['lighting']}", json={"timezone": zone}, headers=city.auth("city")
    )
    assert r.status_code == 200, r.text
    assert r.json()["timezone"] == zone


async def test_hourly_buckets_start_on_clock_hours_whatever_the_window_start(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    t = ms("2026-03-10T10:00:00+00:00")
    await upload(client, lamp, [(t + m * 60_000, 1) for m in (10, 50, 80, 125, 170)])

    got = await buckets(
        client, city, lamp, start=t + 30 * 60_000, end=t + 150 * 60_000, agg="count"
    )

    # 10:30-12:30: the 10:00 bucket holds only 10:50, the 12:00 one only 12:05
    assert got == [(t, 1), (t + HOUR, 1), (t + 2 * HOUR, 1)]


async def test_the_default_window_has_clock_hour_buckets(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    now = int(datetime.now().timestamp() * 1000)
    await upload(client, lamp, [(now - i * 20 * 60_000, 1) for i in range(1, 10)])

    got = await buckets(client, city, lamp, agg="count", interval=HOUR)

    assert got
    assert all(ts % HOUR == 0 for ts, _ in got)
    assert sum(v for _, v in got) == 9


async def test_a_tenant_starts_in_the_hub_time_zone(client: httpx.AsyncClient, city: City) -> None:
    r = await client.get(f"/api/tenants/{city.ids['lighting']}", headers=city.auth("lighting"))

    assert r.json()["timezone"] == "Asia/Shanghai"


async def test_daily_buckets_start_at_midnight_in_shanghai(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    # 23:30 on the 10th and 00:30 on the 11th, Beijing time: two days, though one UTC day
    await upload(
        client,
        lamp,
        [(ms("2026-03-10T23:30:00+08:00"), 2), (ms("2026-03-11T00:30:00+08:00"), 3)],
    )

    got = await buckets(
        client,
        city,
        lamp,
        start=ms("2026-03-09T00:00:00+00:00"),
        end=ms("2026-03-13T00:00:00+00:00"),
        interval=DAY,
        agg="sum",
    )

    zone = "Asia/Shanghai"
    assert got == [(local_midnight("2026-03-10", zone), 2), (local_midnight("2026-03-11", zone), 3)]


@pytest.mark.parametrize(
    ("days", "hours"),
    [
        pytest.param(("2026-03-28", "2026-03-29", "2026-03-30"), (24, 23, 24), id="spring"),
        pytest.param(("2026-10-24", "2026-10-25", "2026-10-26"), (24, 25, 24), id="autumn"),
    ],
)
async def test_daily_buckets_follow_a_daylight_saving_change(
    client: httpx.AsyncClient,
    city: City,
    lamp: dict[str, Any],
    days: tuple[str, ...],
    hours: tuple[int, ...],
) -> None:
    zone = "Europe/Berlin"
    await set_zone(client, city, zone)
    first, end = local_midnight(days[0], zone), local_midnight(days[-1], zone) + DAY
    await upload(client, lamp, [(ts, 1) for ts in range(first + HOUR // 2, end, HOUR)])

    got = await buckets(client, city, lamp, start=first, end=end, interval=DAY, agg="count")

    assert got == [(local_midnight(d, zone), n) for d, n in zip(days, hours, strict=True)]


async def test_weekly_buckets_start_on_monday(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    # Wednesday 2026-03-11 and the Monday after, Beijing time
    await upload(
        client, lamp, [(ms("2026-03-11T12:00:00+08:00"), 1), (ms("2026-03-16T00:10:00+08:00"), 1)]
    )

    got = await buckets(
        client,
        city,
        lamp,
        start=ms("2026-03-10T00:00:00+08:00"),
        end=ms("2026-03-20T00:00:00+08:00"),
        interval=7 * DAY,
        agg="count",
    )

    zone = "Asia/Shanghai"
    assert got == [(local_midnight("2026-03-09", zone), 1), (local_midnight("2026-03-16", zone), 1)]


@pytest.mark.parametrize(
    ("interval", "zone"),
    [
        pytest.param(HOUR, "Asia/Shanghai", id="hourly"),
        pytest.param(DAY, "Europe/Berlin", id="daily-berlin"),
        pytest.param(DAY, "Asia/Kolkata", id="daily-half-hour-zone"),
        pytest.param(15 * 60_000, "Asia/Shanghai", id="quarter-hours"),
    ],
)
async def test_rollup_served_and_raw_buckets_agree(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any], interval: int, zone: str
) -> None:
    await set_zone(client, city, zone)
    base = ms("2026-03-27T00:00:00+00:00")
    points = [(base + i * 7 * 60_000, float((i * 37) % 101)) for i in range(4 * 24 * 60 // 7)]
    await upload(client, lamp, points)
    # a window cut mid-hour at both ends: rollups serve its whole hours, raw readings the rest
    start, end = base + 13 * 60_000 + 5 * HOUR, base + 3 * DAY + 41 * 60_000
    by_bucket: dict[int, list[float]] = defaultdict(list)
    for ts, v in points:
        if start <= ts < end:
            by_bucket[bucket_start(ts, interval, zone)].append(v)

    for agg, fold in (("count", len), ("sum", sum), ("min", min), ("max", max)):
        got = await buckets(client, city, lamp, start=start, end=end, interval=interval, agg=agg)

        assert got == [(b, pytest.approx(fold(vs))) for b, vs in sorted(by_bucket.items())]


def bucket_start(ts: int, interval: int, zone: str) -> int:
    """Where the bucket holding ``ts`` starts, by the documented rule, in plain Python."""
    if interval < DAY:
        return ts - ts % interval
    local = datetime.fromtimestamp(ts / 1000, ZoneInfo(zone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return int(midnight.timestamp() * 1000)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"interval": DAY + HOUR}, id="a-day-and-an-hour"),
        pytest.param({"interval": 36 * HOUR}, id="a-day-and-a-half"),
        pytest.param({"interval": 1000, "start": 0, "end": 200_000_000}, id="200000-buckets"),
        pytest.param({"interval": DAY, "start": 0, "end": 100_001 * DAY}, id="100001-days"),
    ],
)
async def test_intervals_past_whole_days_or_too_many_buckets_are_refused(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any], params: dict[str, Any]
) -> None:
    for url in (f"/api/devices/{lamp['id']}/timeseries", "/api/telemetry/aggregate"):
        r = await client.get(
            url, params={"keys": "power", "agg": "avg", **params}, headers=city.auth("lighting")
        )

        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"


async def test_a_hundred_thousand_buckets_are_served(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    t = ms("2026-03-10T10:00:00+00:00")
    await upload(client, lamp, [(t + 5_000, 1)])

    got = await buckets(
        client, city, lamp, interval=1000, start=t, end=t + 100_000_000, agg="count"
    )

    assert got == [(t + 5_000, 1)]


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "Asia", "../etc/passwd", ""])
async def test_an_unknown_time_zone_is_refused(
    client: httpx.AsyncClient, city: City, zone: str
) -> None:
    r = await client.post(
        "/api/tenants", json={"name": "police", "timezone": zone}, headers=city.auth("city")
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    r = await client.patch(
        f"/api/tenants/{city.ids['lighting']}", json={"timezone": zone}, headers=city.auth("city")
    )
    assert r.status_code == 422, r.text


async def test_a_tenant_is_created_with_its_time_zone(
    client: httpx.AsyncClient, city: City
) -> None:
    body = {"name": "police", "timezone": "Asia/Urumqi"}
    r = await client.post("/api/tenants", json=body, headers=city.auth("city"))

    assert r.status_code == 201, r.text
    assert r.json()["timezone"] == "Asia/Urumqi"
    listed = (await client.get("/api/tenants", headers=city.auth("city"))).json()
    assert {t["name"]: t["timezone"] for t in listed}["police"] == "Asia/Urumqi"


def test_days_are_not_a_fixed_length_in_berlin() -> None:
    # the premise of the daylight saving test, checked once
    zone = ZoneInfo("Europe/Berlin")
    day = datetime(2026, 3, 29, tzinfo=zone)
    assert (day + timedelta(days=1)).timestamp() - day.timestamp() == 23 * 3600


@pytest.mark.parametrize(
    ("start", "end", "interval"),
    [
        pytest.param(0, 30 * DAY, DAY, id="from-1970-east-of-utc"),
        pytest.param(0, 300 * DAY, 7 * DAY, id="weeks-from-1970"),
        pytest.param(253_402_300_798_999, 253_402_300_799_999, DAY, id="last-second-of-9999"),
        pytest.param(0, 253_402_300_799_999, 1000 * 365 * DAY, id="millennia"),
    ],
)
async def test_windows_at_the_ends_of_time_are_answered(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any], start: int, end: int, interval: int
) -> None:
    # Shanghai's 1970-01-01 midnight is before the epoch; its 10000-01-01 is no date
    got = await buckets(client, city, lamp, start=start, end=end, interval=interval, agg="count")
    assert got == []
