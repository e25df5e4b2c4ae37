"""District forecasts: the model choice (pure) and the API over real ingest and rollups."""

from __future__ import annotations

import math
import random
import statistics
from typing import Any

import httpx
import pytest

from fixtures_api import City, make_device, make_pole
from smartpole.app import Platform
from smartpole.hub.analytics.forecast import MIN_HOURS, fit

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
HOUR = 3_600_000
DAY = 24 * HOUR


def curve(hour: int, rng: random.Random) -> float:
    """A daily PM2.5 cycle with noise."""
    return 35 + 12 * math.sin(2 * math.pi * (hour % 24) / 24) + rng.gauss(0, 1)


def test_a_daily_cycle_is_forecast_within_the_noise() -> None:
    rng = random.Random(1)
    history = [curve(h, rng) for h in range(14 * 24)]
    out = fit(history, 24)
    truth = [35 + 12 * math.sin(2 * math.pi * (h % 24) / 24) for h in range(14 * 24, 15 * 24)]
    error = statistics.fmean(abs(f - t) for f, t in zip(out["forecast"], truth, strict=True))
    assert error < 2.0
    assert out["mae"] <= out["baseline_mae"]
    assert len(out["forecast"]) == 24


def test_holt_winters_wins_when_the_level_moves() -> None:
    rng = random.Random(2)
    history = [curve(h, rng) + 0.2 * h for h in range(10 * 24)]  # a rising level
    out = fit(history, 6)
    assert out["model"].startswith("river.time_series.HoltWinters")
    assert set(out["params"]) == {"alpha", "beta", "gamma", "seasonality"}


def test_two_days_are_needed() -> None:
    with pytest.raises(ValueError, match="need 48 hours"):
        fit([1.0] * (MIN_HOURS - 1), 3)


# -- API -----------------------------------------------------------------------------------
async def upload(client: httpx.AsyncClient, token: str, entries: list[dict[str, Any]]) -> None:
    """Upload timestamped readings through the HTTP device API."""
    for i in range(0, len(entries), 500):
        r = await client.post(f"/api/v1/{token}/telemetry", json=entries[i : i + 500])
        assert r.status_code == 200, r.text


async def forecast(client: httpx.AsyncClient, city: City, tenant: str, **q: Any) -> httpx.Response:
    """Ask for a forecast as the tenant."""
    return await client.get("/api/analytics/forecast", params=q, headers=city.auth(tenant))


async def test_the_api_forecasts_district_pm25_from_the_rollups(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    rng = random.Random(3)
    for i in range(2):
        pole = await make_pole(client, city, f"F-{i}", district="Futian")
        air = await make_device(client, city, "city", "air", pole)
        entries = [
            {"ts": T0 + h * HOUR + m * 60_000, "values": {"pm25": round(curve(h, rng), 1)}}
            for h in range(4 * 24)
            for m in (0, 30)
        ]
        await upload(client, air["token"], entries)
    await platform.pipeline.drain()
    platform.forecasts.clock = lambda: T0 + 4 * DAY + 20 * 60_000
    r = await forecast(client, city, "city", district="Futian", key="pm25", hours=6)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["fitted_on"] == {"start": T0, "end": T0 + 4 * DAY, "hours": 96}
    assert body["source"] == "mean of air.pm25 over 2 devices"
    assert body["library"].startswith("river ")
    assert [p["ts"] for p in body["forecast"]] == [T0 + 4 * DAY + h * HOUR for h in range(6)]
    truth = [35 + 12 * math.sin(2 * math.pi * h / 24) for h in range(6)]
    for point, expected in zip(body["forecast"], truth, strict=True):
        assert point["value"] == pytest.approx(expected, abs=4)
    r = await forecast(client, city, "telecom", district="Futian", key="pm25")
    assert r.status_code == 409  # telecom sees none of these sensors


async def test_lamp_energy_is_the_district_total_in_kwh(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    for i in range(2):
        pole = await make_pole(client, city, f"L-{i}", district="Futian")
        lamp = await make_device(client, city, "lighting", "lamp", pole)
        night = [h for h in range(3 * 24) if h % 24 < 6 or h % 24 >= 18]  # lit 18:00-06:00
        entries = [
            {"ts": T0 + h * HOUR, "values": {"power": 100.0 if h in night else 0.5}}
            for h in range(3 * 24)
        ]
        await upload(client, lamp["token"], entries)
    await platform.pipeline.drain()
    platform.forecasts.clock = lambda: T0 + 3 * DAY
    r = await forecast(client, city, "lighting", district="Futian", key="energy", hours=24)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["unit"] == "kWh"
    values = [p["value"] for p in body["forecast"]]
    assert values[2] == pytest.approx(0.2, abs=0.02)  # 02:00: two lamps at 100 W
    assert values[12] == pytest.approx(0.001, abs=0.02)  # noon: standby


@pytest.mark.parametrize(
    ("query", "status"),
    [
        pytest.param({"district": "Futian", "key": "rain"}, 422, id="unknown-key"),
        pytest.param({"district": "Futian", "hours": 100}, 422, id="too-many-hours"),
        pytest.param({"district": "Nowhere"}, 409, id="no-data"),
    ],
)
async def test_a_forecast_that_cannot_be_made_is_a_problem(
    client: httpx.AsyncClient, city: City, query: dict[str, Any], status: int
) -> None:
    r = await forecast(client, city, "city", **query)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
