"""The hub's rules evaluated in a worker process (``hub_workers = 1``, #16): alarms through it,
and a worker killed under a stream of readings is restarted without losing a reading's rule
check or a rule's state."""

from __future__ import annotations

import ast
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures_api import City, make_device, make_pole, started
from helpers import EXE, TILT_RULE, add_rule, alarms_of, free_port, send, settle
from smartpole.app import Platform
from smartpole.model.types import Role
from smartpole.store import Database

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
MIN = 60_000
POLES = 24


@pytest.fixture
async def platform(database: Database, tmp_path: Path) -> AsyncIterator[Platform]:
    """A started platform whose rules are evaluated by a worker process; its timer runs only
    when a test calls ``hub.tick`` (the wall clock would complete a duration the test counts)."""
    async with started(database, tmp_path, hub_workers=1, hub_tick_ms=3_600_000) as p:
        yield p


async def worker_of(client: httpx.AsyncClient) -> dict[str, Any]:
    """The worker as ``/healthz`` shows it."""
    r = await client.get("/healthz")
    assert r.status_code == 200, r.text
    worker: dict[str, Any] = r.json()["hub"]["worker"]
    return worker


async def kill(client: httpx.AsyncClient) -> int:
    """SIGKILL the worker; return the pid it had."""
    pid = int((await worker_of(client))["pid"])
    os.kill(pid, signal.SIGKILL)
    return pid


async def restarts_counted(client: httpx.AsyncClient, city: City) -> float:
    """``smartpole_hub_worker_restarts_total`` as scraped."""
    r = await client.get("/metrics", headers=city.auth("city", Role.VIEWER))
    [line] = [x for x in r.text.splitlines() if x.startswith("smartpole_hub_worker_restarts_total")]
    return float(line.split()[-1])


async def test_the_worker_is_a_process_of_its_own_and_raises_alarms(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    worker = await worker_of(client)
    assert worker["alive"] is True
    assert worker["pid"] != os.getpid()
    assert (worker["restarts"], worker["queued"]) == (0, 0)
    await add_rule(client, city, "city", TILT_RULE)
    tilt = await make_device(client, city, "lighting", "tilt", await make_pole(client, city, "P"))
    await send(client, tilt["token"], T0, tilt=7.5)
    await settle(platform)
    [alarm] = await alarms_of(client, city, "lighting")
    assert (alarm["status"], alarm["details"]["values"]) == ("active_unack", {"tilt": 7.5})
    await send(client, tilt["token"], T0 + 1000, tilt=1.0)
    await settle(platform)
    [alarm] = await alarms_of(client, city, "lighting")
    assert (alarm["status"], alarm["cleared_ts"]) == ("cleared_unack", T0 + 1000)


async def test_a_killed_worker_loses_no_reading_and_no_rule_state(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    await add_rule(client, city, "city", TILT_RULE)
    tokens = [
        (
            await make_device(
                client, city, "lighting", "tilt", await make_pole(client, city, f"P{i}")
            )
        )["token"]
        for i in range(POLES)
    ]
    halfway = asyncio.Event()

    async def stream(value: float, ts: int) -> None:
        for i, token in enumerate(tokens):
            await send(client, token, ts, tilt=value)  # answered: committed
            if i == POLES // 3:
                halfway.set()

    # Kill the worker while the stream goes on: batches are out to it, or queued for it.
    streaming = asyncio.create_task(stream(7.5, T0))
    await halfway.wait()
    first = await kill(client)
    await streaming
    await settle(platform)
    alarms = await alarms_of(client, city, "lighting", pageSize=100)
    assert len(alarms) == POLES  # every tilted pole, before and after the kill
    assert {a["status"] for a in alarms} == {"active_unack"}
    worker = await worker_of(client)
    assert worker["alive"] is True
    assert worker["pid"] != first
    assert worker["restarts"] >= 1
    assert await restarts_counted(client, city) == worker["restarts"]

    # The new worker was seeded with the rules' state: upright poles clear what the first raised.
    halfway.clear()
    streaming = asyncio.create_task(stream(1.0, T0 + 1000))
    await halfway.wait()
    await kill(client)
    await streaming
    await settle(platform)
    alarms = await alarms_of(client, city, "lighting", pageSize=100)
    assert {a["status"] for a in alarms} == {"cleared_unack"}
    assert {a["cleared_ts"] for a in alarms} == {T0 + 1000}


async def test_a_duration_counts_on_across_a_worker_kill(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    rule = {
        "name": "pm25",
        "scope": {"kinds": ["air"]},
        "condition": {"key": "pm25", "op": ">", "value": 75, "for": "10m"},
        "actions": [{"alarm": {"type": "air_quality", "severity": "minor"}}],
    }
    await add_rule(client, city, "city", rule)
    air = await make_device(client, city, "telecom", "air", await make_pole(client, city, "A"))
    await send(client, air["token"], T0, pm25=80)
    await settle(platform)
    await kill(client)
    await send(client, air["token"], T0 + 5 * MIN, pm25=90)
    await settle(platform)
    await platform.hub.tick(now=T0 + 9 * MIN)
    await settle(platform)
    assert await alarms_of(client, city, "telecom") == []
    await platform.hub.tick(now=T0 + 10 * MIN)  # ten minutes since T0, before the kill
    await settle(platform)
    [alarm] = await alarms_of(client, city, "telecom")
    assert (alarm["type"], alarm["first_ts"]) == ("air_quality", T0 + 10 * MIN)
    assert (await worker_of(client))["restarts"] == 1


async def test_a_late_reading_after_a_worker_kill_sees_the_other_keys_of_its_time(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    """The restarted worker is seeded with the value before each latest one, too: a reading
    that arrives late, after the restart, is judged with the other keys as they were then."""
    rule = {
        "name": "both-over-5",
        "scope": {"kinds": ["tilt"]},
        "condition": {
            "all": [{"key": "a", "op": ">", "value": 5}, {"key": "b", "op": ">", "value": 5}]
        },
        "actions": [{"alarm": {"type": "both_over_5", "severity": "major"}}],
    }
    await add_rule(client, city, "city", rule)
    tilt = await make_device(client, city, "lighting", "tilt", await make_pole(client, city, "L"))
    await send(client, tilt["token"], T0, b=10)
    await send(client, tilt["token"], T0 + 2000, a=0)
    await send(client, tilt["token"], T0 + 3000, b=0)  # b's value before the latest: 10 at T0
    await settle(platform)
    await kill(client)

    await send(client, tilt["token"], T0 + 1000, a=10)  # late: a and b both over 5 then
    await settle(platform)

    [alarm] = await alarms_of(client, city, "lighting")
    assert (alarm["type"], alarm["first_ts"]) == ("both_over_5", T0 + 1000)
    assert alarm["status"] == "cleared_unack"  # and not now: cleared on the latest values
    assert (await worker_of(client))["restarts"] == 1


def test_serve_with_two_workers_starts_the_rules_worker_and_ends_it(tmp_path: Path) -> None:
    port = free_port()
    args = ["serve", "--http-port", str(port), "--mqtt-port", "0", "--workers", "2"]
    proc = subprocess.Popen(
        [str(EXE), *args, "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        health = None
        for _ in range(150):
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert health is not None, "the server did not start"
        worker = health["hub"]["worker"]
        assert (worker["alive"], worker["restarts"]) == (True, 0)
        with open(f"/proc/{worker['pid']}/stat", encoding="ascii") as f:
            parent = int(f.read().rsplit(")", 1)[1].split()[1])
        assert parent == proc.pid  # the server's own child
        writer = health["pipeline"]["writer"]  # and readings committed by another
        assert (writer["alive"], writer["restarts"]) == (True, 0)
    finally:
        proc.terminate()
        proc.wait(15)
    for pid in (worker["pid"], writer["pid"]):
        for _ in range(50):  # the workers end with the server (their stdin closes)
            if not os.path.exists(f"/proc/{pid}") or _zombie(pid):
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"worker {pid} outlived the server")


def _zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.parametrize(
    "module", ["smartpole.hub.worker", "smartpole.hub.analytics.anomaly_worker"]
)
def test_a_worker_process_loads_no_database_code(module: str) -> None:
    """Each worker costs the memory of what it imports: the evaluation and the detector need
    neither SQLAlchemy nor the web stack (the idle server's memory counts its workers)."""
    probe = f"import sys, {module}; print(sorted({{m.split('.')[0] for m in sys.modules}}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(ast.literal_eval(out.stdout))
    assert not loaded & {"sqlalchemy", "psycopg", "fastapi", "starlette", "pydantic"}
