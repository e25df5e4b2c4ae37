"""Anomaly detection: the seasonal baseline (pure), its snapshot, and alarms from real ingest,
scored in the platform's process or in a worker process (``anomaly_worker``)."""

from __future__ import annotations

import math
import os
import random
import signal
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from river import stats

from fixtures_api import City, make_device, make_pole, started
from smartpole.app import Platform
from smartpole.hub.analytics.anomaly import AnomalyService
from smartpole.hub.analytics.detector import SERIES_BYTES, Detector, ew_update
from smartpole.store import Database

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
MIN = 60_000
DAY = 1440 * MIN


def pm25(ts: int, rng: random.Random) -> float:
    """A diurnal PM2.5 curve (worst in the evening rush) with sensor noise."""
    hour = (ts % DAY) / (60 * MIN)
    return 30 + 15 * math.sin(2 * math.pi * (hour - 12) / 24) + rng.gauss(0, 1.5)


def learned(days: int = 4, every: int = 5 * MIN) -> tuple[Detector, int]:
    """A detector that has seen ``days`` of the curve; returns it and the next timestamp."""
    d = Detector()
    rng = random.Random(1)
    ts = T0
    while ts < T0 + days * DAY:
        d.update(1, "pm25", ts, pm25(ts, rng), 1.0)
        ts += every
    return d, ts


def test_a_slot_mean_is_river_ewmean() -> None:
    river_mean = stats.EWMean(fading_factor=0.5)
    mean, n = 0.0, 0
    for x in [1, 3, 5, 4, 6, 8, 7, 9, 11]:
        river_mean.update(x)
        mean = ew_update(mean, n, x, 0.5)
        n += 1
        assert mean == pytest.approx(river_mean.get())


def test_a_spike_after_a_learned_diurnal_pattern_scores_high() -> None:
    d, ts = learned()
    usual = pm25(ts, random.Random(3))
    assert d.score(1, "pm25", ts, usual, 1.0) < 3  # type: ignore[operator]
    assert d.score(1, "pm25", ts, usual + 40, 1.0) > d.threshold  # type: ignore[operator]


def test_normal_readings_over_a_day_score_low() -> None:
    d, ts = learned()
    rng = random.Random(2)
    scores = [d.score(1, "pm25", t, pm25(t, rng), 1.0) for t in range(ts, ts + DAY, 10 * MIN)]
    assert max(s for s in scores if s is not None) < d.threshold / 2


def test_the_evening_peak_is_normal_at_night_it_is_not() -> None:
    d, ts = learned()
    evening = ts - ts % DAY + 18 * 60 * MIN  # the peak hour: 45 is usual
    night = ts - ts % DAY + 6 * 60 * MIN  # the trough: 15 is usual
    assert d.score(1, "pm25", evening, 45.0, 1.0) < 3  # type: ignore[operator]
    assert d.score(1, "pm25", night, 45.0, 1.0) > d.threshold  # type: ignore[operator]


def test_nothing_is_scored_while_the_baseline_warms_up() -> None:
    d, ts = learned(days=1)
    assert d.score(1, "pm25", ts, 500.0, 1.0) is None
    assert d.update(1, "pm25", ts, 500.0, 1.0) is None


def test_consecutive_odd_readings_raise_and_calm_ones_clear() -> None:
    d, ts = learned()
    changes = []
    for i, value in enumerate([200.0, 200.0, 200.0, 200.0]):
        event = d.update(1, "pm25", ts + i * 5 * MIN, value, 1.0)
        changes.append(event.change if event else None)
    assert changes == [None, None, "raised", None]
    rng = random.Random(4)
    ts += 4 * 5 * MIN
    calm = [
        d.update(1, "pm25", ts + i * 5 * MIN, pm25(ts + i * 5 * MIN, rng), 1.0) for i in range(3)
    ]
    assert [e.change if e else None for e in calm] == [None, None, "cleared"]


def test_a_lasting_fault_stays_anomalous_for_hours() -> None:
    d, ts = learned()
    events = [d.update(1, "pm25", ts + i * 5 * MIN, 150.0, 1.0) for i in range(72)]  # 6 hours
    assert [e.change for e in events if e] == ["raised"]


def test_the_least_recently_updated_series_is_forgotten_beyond_the_limit() -> None:
    d = Detector(max_series=100)
    for device in range(150):
        d.update(device, "power", T0, 10.0, 1.0)
    assert len(d) == 100
    assert d.evicted == 50
    assert (0, "power") not in d.series


def test_a_series_costs_about_series_bytes() -> None:
    d = Detector()
    tracemalloc.start()
    for device in range(2000):
        d.update(device, "power", T0, 10.0, 1.0)
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert size / 2000 < 1.5 * SERIES_BYTES


def test_a_snapshot_restores_the_same_scores() -> None:
    d, ts = learned()
    again = Detector()
    assert again.load(d.dump()) == 1
    for value in (10.0, 30.0, 90.0):
        assert again.score(1, "pm25", ts, value, 1.0) == d.score(1, "pm25", ts, value, 1.0)


def test_the_service_keeps_its_baselines_across_a_restart(database: Database) -> None:
    d, _ = learned(days=1)
    AnomalyService(database.engine, None, d, node="n1").save()
    fresh = AnomalyService(database.engine, None, node="n1")
    assert fresh.restore() == 1
    assert AnomalyService(database.engine, None, node="n2").restore() == 0


# -- end to end ----------------------------------------------------------------------------
@pytest.fixture(params=[False, True], ids=["in-process", "worker"])
async def platform(
    database: Database, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Platform]:
    """A started platform that scores anomalies in its own process or in a worker."""
    async with started(database, tmp_path, anomaly_worker=request.param) as p:
        yield p


def diurnal(start: int, end: int, every: int, rng: random.Random) -> list[dict[str, Any]]:
    """Timestamped PM2.5 readings of the usual curve."""
    return [{"ts": t, "values": {"pm25": round(pm25(t, rng), 1)}} for t in range(start, end, every)]


async def upload(client: httpx.AsyncClient, token: str, entries: list[dict[str, Any]]) -> None:
    """Upload timestamped readings through the HTTP device API, in bodies of 500."""
    for i in range(0, len(entries), 500):
        r = await client.post(f"/api/v1/{token}/telemetry", json=entries[i : i + 500])
        assert r.status_code == 200, r.text


async def scored(platform: Platform, client: httpx.AsyncClient, token: str, entries: Any) -> None:
    """Upload readings and wait until they are committed and scored."""
    await upload(client, token, entries)
    await platform.pipeline.drain()
    await platform.anomaly.drain()


def spike(ts: int, every: int) -> list[dict[str, Any]]:
    """Three readings far above any PM2.5 the curve has."""
    return [{"ts": ts + i * every, "values": {"pm25": 400.0}} for i in range(3)]


async def anomalies(client: httpx.AsyncClient, city: City, tenant: str) -> list[Any]:
    """The ``anomaly`` alarms the tenant sees."""
    r = await client.get("/api/alarms", params={"type": "anomaly"}, headers=city.auth(tenant))
    assert r.status_code == 200, r.text
    return list(r.json())


async def test_readings_over_http_raise_and_clear_an_anomaly_alarm(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    pole = await make_pole(client, city, "P-1")
    air = await make_device(client, city, "telecom", "air", pole)
    rng = random.Random(5)
    every = 10 * MIN
    await upload(client, air["token"], diurnal(T0, T0 + 3 * DAY, every, rng))
    ts = T0 + 3 * DAY
    await scored(platform, client, air["token"], spike(ts, every))
    [alarm] = await anomalies(client, city, "telecom")
    assert (alarm["originator_type"], alarm["originator_id"], alarm["status"]) == (
        "device",
        air["id"],
        "active_unack",
    )
    assert (alarm["details"]["key"], alarm["details"]["value"]) == ("pm25", 400.0)
    assert alarm["details"]["score"] > platform.anomaly.detector.threshold
    assert alarm["pole_id"] == pole
    assert await anomalies(client, city, "lighting") == []
    ts += 3 * every
    await scored(platform, client, air["token"], diurnal(ts, ts + 3 * every, every, rng))
    [alarm] = await anomalies(client, city, "telecom")
    assert alarm["status"] == "cleared_unack"
    r = await client.get("/api/analytics/anomaly", headers=city.auth("city"))
    assert r.json()["raised"] == 1


async def scorer(client: httpx.AsyncClient) -> dict[str, Any]:
    """The anomaly worker as ``/healthz`` shows it."""
    r = await client.get("/healthz")
    assert r.status_code == 200, r.text
    worker: dict[str, Any] = r.json()["anomaly"]["worker"]
    return worker


@pytest.mark.parametrize("platform", [True], ids=["worker"], indirect=True)
async def test_a_killed_worker_comes_back_with_the_saved_baselines(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    r = await client.get("/healthz")
    assert "worker" not in r.json()["hub"]  # the rules are evaluated in this process
    pole = await make_pole(client, city, "P-1")
    air = await make_device(client, city, "telecom", "air", pole)
    rng = random.Random(7)
    every = 10 * MIN
    await scored(platform, client, air["token"], diurnal(T0, T0 + 3 * DAY, every, rng))
    await platform.anomaly.snapshot()  # the baselines a new worker starts from
    before = await scorer(client)
    assert before["alive"]
    assert before["restarts"] == 0
    os.kill(int(before["pid"]), signal.SIGKILL)
    await scored(platform, client, air["token"], spike(T0 + 3 * DAY, every))
    [alarm] = await anomalies(client, city, "telecom")
    assert (alarm["originator_id"], alarm["details"]["value"]) == (air["id"], 400.0)
    after = await scorer(client)
    assert after["alive"]
    assert (after["restarts"], after["pid"] != before["pid"]) == (1, True)
    r = await client.get("/api/analytics/anomaly", headers=city.auth("city"))
    assert (r.json()["series"], r.json()["raised"]) == (1, 1)
