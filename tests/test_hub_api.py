"""The hub's REST API, WebSocket stream and CLI: rules in YAML, alarms by hand, tenancy."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson
import pytest
import websockets
from typer.testing import CliRunner

from fixtures_api import City, make_device, make_pole
from helpers import TILT_RULE, add_rule, send, settle
from smartpole.app import Platform
from smartpole.cli import app as cli_app
from smartpole.model.types import Role
from smartpole.store import Database

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
YAML_RULE = b"""
name: noise-night
scope: {kinds: [noise]}
condition:
  all:
    - {key: laeq, op: ">", value: 50}
    - {window: {from: "22:00", to: "06:00"}}
actions:
  - alarm: {type: noise_night, severity: minor}
"""


async def test_rules_take_yaml_and_answer_located_errors(
    client: httpx.AsyncClient, city: City
) -> None:
    yaml = {"Content-Type": "application/yaml", **city.auth("lighting")}
    r = await client.post("/api/rules", content=YAML_RULE, headers=yaml)
    assert r.status_code == 201, r.text
    assert r.json()["body"]["condition"]["all"][1] == {"window": {"from": "22:00", "to": "06:00"}}
    again = await client.post("/api/rules", content=YAML_RULE, headers=yaml)
    assert again.status_code == 200  # same name: replaced
    bad = YAML_RULE.replace(b'op: ">"', b'op: "=>"')
    r = await client.post("/api/rules", content=bad, headers=yaml)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert ["condition", "all", 0, "op"] in [e["loc"] for e in r.json()["errors"]]
    listed = await client.get("/api/rules", headers=city.auth("telecom"))
    assert listed.json() == []
    gone = await client.delete(f"/api/rules/{again.json()['id']}", headers=city.auth("telecom"))
    assert gone.status_code == 404


async def test_import_saves_nothing_when_one_rule_is_invalid(
    client: httpx.AsyncClient, city: City
) -> None:
    rules = [TILT_RULE, {**TILT_RULE, "name": "other", "condition": {"key": "tilt"}}]
    r = await client.post("/api/rules/import", json=rules, headers=city.auth("city"))
    assert r.status_code == 422
    assert [1, "condition", "op"] in [e["loc"] for e in r.json()["errors"]]
    assert (await client.get("/api/rules", headers=city.auth("city"))).json() == []


async def test_alarm_ack_assign_comment_and_tenancy(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    await add_rule(client, city, "city", TILT_RULE)
    tilt = await make_device(client, city, "lighting", "tilt", await make_pole(client, city, "A"))
    await send(client, tilt["token"], T0, tilt=9.0)
    await settle(platform)
    [alarm] = (await client.get("/api/alarms?active=true", headers=city.auth("lighting"))).json()
    base = f"/api/alarms/{alarm['id']}"
    for path, body in (("/ack", None), ("/assign", {"assignee": "crew-3"})):
        r = await client.post(base + path, json=body, headers=city.auth("lighting"))
        assert r.status_code == 200, r.text
    r = await client.post(base + "/comments", json={"text": "on it"}, headers=city.auth("lighting"))
    assert r.status_code == 201
    r = await client.post(base + "/clear", headers=city.auth("lighting"))
    assert (r.json()["status"], r.json()["assignee"]) == ("cleared_ack", "crew-3")
    comments = await client.get(base + "/comments", headers=city.auth("lighting"))
    assert [(c["author"], c["text"]) for c in comments.json()] == [("lighting (admin)", "on it")]
    for path in ("/ack", "/clear"):
        r = await client.post(base + path, headers=city.auth("telecom"))
        assert r.status_code == 404


async def test_websocket_streams_the_changes_a_tenant_sees(
    platform: Platform, client: httpx.AsyncClient, city: City, server_port: int
) -> None:
    await add_rule(client, city, "city", TILT_RULE)
    mine = await make_device(client, city, "lighting", "tilt", await make_pole(client, city, "W1"))
    other = await make_device(client, city, "telecom", "tilt", await make_pole(client, city, "W2"))
    key = city.keys[("lighting", Role.VIEWER)]
    url = f"ws://127.0.0.1:{server_port}/api/alarms/stream?key={key}"
    async with websockets.connect(url) as ws:
        await send(client, other["token"], T0, tilt=9.0)  # telecom's: not for lighting
        await send(client, mine["token"], T0, tilt=9.0)
        await send(client, mine["token"], T0 + 1, tilt=1.0)
        first = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
        second = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
    assert (first["change"], first["alarm"]["originator_id"]) == ("raised", mine["pole_id"])
    assert (second["change"], second["alarm"]["status"]) == ("cleared", "cleared_unack")


async def test_websocket_refuses_a_wrong_key(platform: Platform, server_port: int) -> None:
    url = f"ws://127.0.0.1:{server_port}/api/alarms/stream?key=nope"
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with websockets.connect(url):
            pass


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_cli_imports_the_default_rules_and_lists_them(database: Database, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"SMARTPOLE_DB": "", "SMARTPOLE_DATA_DIR": str(tmp_path)}
    url = ["--data-dir", str(tmp_path)]
    r = runner.invoke(cli_app, ["rule", "import", "--defaults", *url], env=env)
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli_app, ["rule", "list", "--json", *url], env=env)
    assert r.exit_code == 0, r.output
    names = {row["name"] for row in orjson.loads(r.stdout)}
    assert {"sos", "pole-tilt", "device-offline"} <= names
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncondition: {key: tilt, op: '>', value: high}\nactions: []\n")
    r = runner.invoke(cli_app, ["rule", "add", str(bad), *url], env=env)
    assert r.exit_code == 1
    assert "condition.value" in r.output


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_cli_alarm_commands_end_with_a_clear_error(database: Database, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"SMARTPOLE_DB": "", "SMARTPOLE_DATA_DIR": str(tmp_path)}
    url = ["--data-dir", str(tmp_path)]
    r = runner.invoke(cli_app, ["alarm", "list", "--json", *url], env=env)
    assert r.exit_code == 0, r.output
    assert orjson.loads(r.stdout) == []
    r = runner.invoke(cli_app, ["alarm", "list", "--active", "--roots", *url], env=env)
    assert r.exit_code == 0, r.output
    assert "grouped" in r.output
    r = runner.invoke(cli_app, ["alarm", "ack", "999", *url], env=env)
    assert r.exit_code == 1
    assert "error:" in r.output
    # an unknown tenant is a domain error too, not a traceback
    r = runner.invoke(cli_app, ["alarm", "list", "--tenant", "nosuch", *url], env=env)
    assert r.exit_code == 1
    assert "error:" in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
