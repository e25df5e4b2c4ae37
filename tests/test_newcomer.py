"""The issue's "done when", end to end over real sockets: a newcomer's first session.

A real ``smartpole serve`` process; the CLI imports a 1,000-pole CSV, registers a lamp and issues
an API key; the lamp posts telemetry over HTTP with its token; the API returns it aggregated.
Runs on the embedded store and on PostgreSQL.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pg import PostgresCluster

EXE = Path(sys.executable).parent / "smartpole"
HOUR = 3_600_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def store_args(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    """CLI options choosing the store: a data dir, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return ["--data-dir", str(tmp_path / "data")]
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    return ["--db", cluster.create_database(f"newcomer_{os.getpid()}_{time.time_ns()}")]


def cli(*args: str) -> str:
    proc = subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def server(store_args: list[str]) -> Iterator[str]:
    """A running ``smartpole serve`` on a free port; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [str(EXE), "serve", "--http-port", str(port), "--mqtt-port", "0", *store_args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            proc.kill()
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else "no start")
        yield base
    finally:
        proc.terminate()
        proc.wait(15)
        if proc.stderr:
            proc.stderr.close()


def test_import_post_and_read_back_aggregated(
    server: str, store_args: list[str], tmp_path: Path
) -> None:
    inventory = tmp_path / "poles.csv"
    with inventory.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["code", "name", "lat", "lon", "height_m", "district", "road", "installed"])
        for i in range(1000):
            w.writerow(
                [
                    f"FT-SN-{i:04d}",
                    f"深南大道 {i}",
                    22.54 + i * 1e-5,
                    114.05 + i * 1e-4,
                    10,
                    "Futian",
                    "Shennan Blvd",
                    "2024-05-01",
                ]
            )
    report = json.loads(cli("import", str(inventory), "--json", *store_args))
    assert (report["created"], report["rejected"], report["applied"]) == (1000, [], True)

    lamp = json.loads(
        cli("device", "add", "--pole", "FT-SN-0042", "--kind", "lamp", "--json", *store_args)
    )
    key = json.loads(
        cli("apikey", "create", "--tenant", "city", "--role", "viewer", "--json", *store_args)
    )["key"]

    t0 = (int(time.time() * 1000) // HOUR - 3) * HOUR
    payload = [{"ts": t0 + i * 600_000, "values": {"power": 30 + i, "dim": 50}} for i in range(18)]
    r = httpx.post(f"{server}/api/v1/{lamp['token']}/telemetry", json=payload)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 36, "quarantined": 0}

    auth = {"Authorization": f"Bearer {key}"}
    r = httpx.get(
        f"{server}/api/devices/{lamp['id']}/timeseries",
        params={"keys": "power", "agg": "avg", "interval": HOUR, "start": t0, "end": t0 + 3 * HOUR},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    assert r.json()["power"] == [
        {"ts": t0, "value": 32.5},
        {"ts": t0 + HOUR, "value": 38.5},
        {"ts": t0 + 2 * HOUR, "value": 44.5},
    ]
    poles = httpx.get(f"{server}/api/poles", params={"limit": 1}, headers=auth).json()
    assert poles["total"] == 1000
