"""The issue's "done when", end to end over real sockets: a newcomer's first session.

A real ``smartpole serve`` process; the CLI imports a 1,000-pole CSV, registers a lamp and issues
an API key; the lamp posts telemetry over HTTP with its token; the API returns it aggregated.
Runs on the embedded store and on PostgreSQL. ``smartpole demo`` on a fresh data dir shows
alarms, a work order and a command within its first minute, prints commands that paste as
printed, and keeps its log short; a taken port ends ``serve`` and ``demo`` with one line.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers import EXE, cli, free_port
from pg import PostgresCluster

HOUR = 3_600_000


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


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _demo_streams(data: Path, log: Path) -> tuple[str, list[int]]:
    """Run ``smartpole demo`` (``make demo``'s command) until every lamp streams, then Ctrl-C.

    Returns the demo's stderr and the simulator processes it had started.
    """
    port = free_port()
    args = ["demo", "--data-dir", str(data), "--http-port", str(port), "--mqtt-port", "0"]
    args.append("--no-scenario")  # the scenario takes a gateway off the air: not every lamp is on
    with log.open("wb") as err:
        proc = subprocess.Popen([str(EXE), *args, "--poles", "40"], stdout=err, stderr=err)
        base = f"http://127.0.0.1:{port}"
        try:
            creds = data / "demo-credentials.json"
            for _ in range(600):
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200 and creds.exists():
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            auth = {
                "Authorization": f"Bearer {json.loads(creds.read_text())['keys']['city']['viewer']}"
            }
            for _ in range(600):
                lamps = httpx.get(
                    f"{base}/api/devices", params={"kind": "lamp"}, headers=auth
                ).json()["items"]
                if len(lamps) == 40 and all(d["online"] for d in lamps):
                    break
                time.sleep(0.1)
            else:
                raise AssertionError("the demo's lamps never came online")
            for _ in range(600):  # online at connect; the first report follows within 10 s
                url = f"{base}/api/devices/{lamps[0]['id']}/latest"
                latest = httpx.get(url, headers=auth).json()
                if "power" in latest:
                    break
                time.sleep(0.1)
            assert latest["power"]["value"] >= 0
            assert latest["energy"]["value"] > 0
            rules = httpx.get(f"{base}/api/rules", headers=auth).json()
            assert {"sos", "flood"} <= {r["name"] for r in rules}  # the city's defaults
            # one console user per tenant, its password beside the keys (file mode 600)
            users = json.loads(creds.read_text())["users"]
            assert set(users) == {
                "city",
                "lighting",
                "telecom",
                "police",
                "environment",
                "transport",
                "media",
            }
            assert creds.stat().st_mode & 0o777 == 0o600
            city = {"user": users["city"]["name"], "password": users["city"]["password"]}
            r = httpx.post(f"{base}/api/session", json=city)
            assert (r.status_code, r.json()["user"]["role"]) == (200, "admin"), r.text
            assert f"console: {base}/" in log.read_text()
            sims = _children(proc.pid)
            assert sims, "the demo started no simulator"
        finally:
            proc.send_signal(signal.SIGINT)  # Ctrl-C
            proc.wait(30)
    return log.read_text(), sims


def test_demo_streams_a_district_stops_on_ctrl_c_and_reuses_its_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first, sims = _demo_streams(data, tmp_path / "first.log")
    assert "seeded 40 poles" in first
    assert not [pid for pid in sims if Path(f"/proc/{pid}").exists()], "simulator left running"
    second, _ = _demo_streams(data, tmp_path / "second.log")
    assert "seeded" not in second  # the same district, from the same data dir


DEMO_POLES = 60  # enough for an SOS call point and a flood sensor (seed 1)


def test_demo_shows_alarms_a_work_order_and_a_command_in_its_first_minute(tmp_path: Path) -> None:
    # The minute runs from when the demo serves (its banner printed, its credentials written),
    # as a newcomer counts it: seeding before that took 10 s and more on a busy CI machine.
    started = time.monotonic()
    up_at: float | None = None
    port = free_port()
    data = tmp_path / "data"
    log = tmp_path / "demo.log"
    args = ["demo", "--data-dir", str(data), "--http-port", str(port), "--mqtt-port", "0"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(EXE), *args, "--poles", str(DEMO_POLES)], stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    try:
        creds = data / "demo-credentials.json"
        auth = lighting = None
        seen: dict[str, object] = {}
        while len(seen) < 5:
            now = time.monotonic()
            if (now - up_at if up_at is not None else now - started) > 60:
                break
            time.sleep(1)
            if auth is None or lighting is None:
                if not creds.exists():
                    continue
                keys = json.loads(creds.read_text())["keys"]
                auth = {"Authorization": f"Bearer {keys['city']['viewer']}"}
                lighting = {"Authorization": f"Bearer {keys['lighting']['viewer']}"}
            try:
                seen.update(_first_minute(base, auth))
                seen.update(_lighting(base, lighting))
            except httpx.TransportError:
                continue
            if up_at is None:
                up_at = time.monotonic()
        assert up_at is not None, f"the demo did not serve within a minute:\n{log.read_text()}"
        assert set(seen) == {"alarms", "offline", "work_order", "command", "lighting"}, (
            f"{time.monotonic() - up_at:.0f} s after it served, only {sorted(seen)}; "
            f"log:\n{log.read_text()}"
        )
        text = log.read_text()
        lines = text.splitlines()
        assert len(lines) < 40, text  # the banner, uvicorn's start, the scenario: no chatter
        curls = [line for line in lines if line.startswith("curl ")]
        assert len(curls) >= 3
        for command in curls:  # each pastes as printed, on one line
            done = subprocess.run(
                ["bash", "-c", command], capture_output=True, text=True, timeout=30
            )
            assert done.returncode == 0, (command, done.stderr)
            body = json.loads(done.stdout)
            assert "status" not in body or body["status"] < 400, (command, body)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def _first_minute(base: str, auth: dict[str, str]) -> dict[str, object]:
    """What the demo's scenario has shown so far through the REST API."""
    out: dict[str, object] = {}
    alarms = httpx.get(f"{base}/api/alarms", params={"active": "true"}, headers=auth).json()
    types = {a["type"] for a in alarms}
    if {"sos", "flood", "lamp_failure"} <= types:
        out["alarms"] = sorted(types)
    if "pole_offline" in types:
        out["offline"] = True
    orders = httpx.get(f"{base}/api/work-orders", headers=auth).json()["items"]
    if orders:
        out["work_order"] = orders[0]["title"]
    sos = next((a for a in alarms if a["type"] == "sos"), None)
    if sos is not None:  # the SOS rule lights the lamps within 100 m, the call point's own first
        params = {"kind": "lamp", "pole_id": sos["pole_id"]}
        [lamp] = httpx.get(f"{base}/api/devices", params=params, headers=auth).json()["items"]
        commands = httpx.get(f"{base}/api/devices/{lamp['id']}/commands", headers=auth).json()
        if any(c["method"] == "setDim" and c["status"] == "succeeded" for c in commands):
            out["command"] = "setDim"
    return out


def _lighting(base: str, auth: dict[str, str]) -> dict[str, object]:
    """The demo's lighting: every lamp has tonight's plan, and the SOS press held the lamps
    near it at full light in their plans."""
    plan = httpx.get(f"{base}/api/lighting/plan", params={"group": "futian"}, headers=auth)
    lamps = plan.json()["lamps"] if plan.status_code == 200 else []
    holds = httpx.get(f"{base}/api/lighting/overrides", headers=auth).json()
    held = [o for o in holds if o["lamps"] and o["level"] == 100]
    if len(lamps) == DEMO_POLES and all(lamp["steps"] for lamp in lamps) and held:
        return {"lighting": held[0]["reason"]}
    return {}


@pytest.mark.parametrize(
    ("command", "taken", "what", "option", "env"),
    [
        pytest.param(
            "serve", "http", "HTTP", "--http-port", "SMARTPOLE_HTTP_PORT", id="serve-http"
        ),
        pytest.param("demo", "mqtt", "MQTT", "--mqtt-port", "SMARTPOLE_MQTT_PORT", id="demo-mqtt"),
    ],
)
def test_a_taken_port_ends_with_one_line_naming_it_and_the_option(
    tmp_path: Path, command: str, taken: str, what: str, option: str, env: str
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        ports = {"http": free_port(), "mqtt": free_port(), taken: busy}
        args = [command, "--data-dir", str(tmp_path / "data")]
        args += ["--http-port", str(ports["http"]), "--mqtt-port", str(ports["mqtt"])]
        done = subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert f"{what} port {busy} on 127.0.0.1 is taken" in line
    assert f"{option} PORT or {env}=PORT" in line
    assert not (tmp_path / "data").exists()  # nothing seeded, nothing started
