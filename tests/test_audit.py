"""The audit log: every change a user or an API key makes, read by admins over HTTP (JSON,
CSV) and on the command line; the database itself refuses to change or delete an entry."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from fixtures_api import City, make_device, make_pole
from helpers import TILT_RULE, add_rule, send, settle
from smartpole.api import create_app
from smartpole.app import Platform
from smartpole.cli import app as cli_app
from smartpole.model.types import Role
from smartpole.model.users import Actor, ActorType
from smartpole.registry.users import Users
from smartpole.store import Database

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
PASSWORD = "correct horse battery"


async def test_changes_are_recorded_with_who_what_target_and_where(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    """An alarm ack, a rule change, a command, a user change and a login, each once, seen by
    the admins of the tenant that made it; failed writes, reads and device traffic are not."""
    ops = platform.users.create(city.ids["lighting"], "light-wu", Role.OPERATOR, PASSWORD)
    rule_id = await add_rule(client, city, "city", TILT_RULE)
    pole = await make_pole(client, city, "AUD-1")
    tilt = await make_device(client, city, "lighting", "tilt", pole)
    lamp = await make_device(client, city, "lighting", "lamp", pole)
    await send(client, tilt["token"], T0, tilt=9.0)  # device traffic: not a change by a caller
    await settle(platform)
    transport = httpx.ASGITransport(
        app=create_app(platform.api_services()), client=("10.3.0.1", 40_000)
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://smartpole.test") as web:
        r = await web.post("/api/session", json={"user": "light-wu", "password": PASSWORD})
        csrf = {"X-CSRF-Token": r.json()["csrf"]}
        [alarm] = (await web.get("/api/alarms?active=true")).json()
        assert (await web.post(f"/api/alarms/{alarm['id']}/ack", headers=csrf)).status_code == 200
        command = {"method": "setDim", "params": {"dim": 40}, "persistent": True}
        r = await web.post(f"/api/devices/{lamp['id']}/rpc", json=command, headers=csrf)
        assert r.status_code == 202, r.text
        r = await web.delete(f"/api/rules/{rule_id}", headers=csrf)  # the city's rule
        assert r.status_code == 404
        r = await web.post("/api/rules/check", json=TILT_RULE, headers=csrf)
        assert r.status_code == 200  # a dry run: no change
    r = await client.patch(
        f"/api/users/{ops.id}", json={"role": "viewer"}, headers=city.auth("lighting")
    )
    assert r.status_code == 200
    assert (await client.delete(f"/api/rules/{rule_id}", headers=city.auth("city"))).is_success

    r = await client.get("/api/audit", headers=city.auth("city"))
    assert r.status_code == 200, r.text
    rows = [
        (e["actor_type"], e["actor_name"], e["action"], e["target_type"], e["target_id"])
        for e in reversed(r.json()["entries"])
    ]
    city_key, lighting_key = (
        "key " + _prefix(platform, city, "city"),
        _prefix(platform, city, "lighting"),
    )
    changes = [row for row in rows if row[2] not in ("pole.create", "device.create")]
    assert changes == [
        ("apikey", city_key, "rule.put", "rule", str(rule_id)),
        ("user", "light-wu", "session.login", None, None),
        ("user", "light-wu", "alarm.ack", "alarm", str(alarm["id"])),
        ("user", "light-wu", "command.send", "device", str(lamp["id"])),
        ("apikey", "key " + lighting_key, "user.update", "user", str(ops.id)),
        ("apikey", city_key, "rule.delete", "rule", str(rule_id)),
    ]
    ack = next(e for e in r.json()["entries"] if e["action"] == "alarm.ack")
    assert (ack["address"], ack["status"]) == ("10.3.0.1", 200)
    assert ack["detail"] == {"method": "POST", "path": f"/api/alarms/{alarm['id']}/ack"}
    update = next(e for e in r.json()["entries"] if e["action"] == "user.update")
    assert update["detail"]["role"] == "viewer"
    # the lighting department's admin sees its own tenant's entries only
    r = await client.get("/api/audit?action=alarm", headers=city.auth("lighting"))
    assert [e["action"] for e in r.json()["entries"]] == ["alarm.ack"]
    r = await client.get("/api/audit", headers=city.auth("lighting"))
    assert {e["tenant_id"] for e in r.json()["entries"]} == {city.ids["lighting"]}
    assert "rule.put" not in {e["action"] for e in r.json()["entries"]}
    r = await client.get("/api/audit", headers=city.auth("lighting", Role.OPERATOR))
    assert r.status_code == 403


def _prefix(platform: Platform, city: City, tenant: str) -> str:
    """The prefix that names a tenant's admin key in the audit log."""
    [row] = [
        k
        for k in platform.tenants.list_keys(city.ids[tenant])
        if k["role"] == "admin" and not k["revoked"]
    ]
    return str(row["prefix"])


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_the_audit_log_pages_and_exports_as_csv(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    # a key named like a spreadsheet formula must reach the CSV as text
    _, key = platform.tenants.create_key(city.ids["city"], Role.ADMIN, "=HYPERLINK(1)")
    for code in ("P-1", "P-2", "P-3"):
        body = {"code": code, "lat": 22.54, "lon": 114.05}
        r = await client.post("/api/poles", json=body, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 201
    r = await client.get("/api/audit?limit=2", headers=city.auth("city"))
    first = r.json()
    assert len(first["entries"]) == 2
    assert first["next_cursor"] == first["entries"][-1]["id"]
    r = await client.get(f"/api/audit?cursor={first['next_cursor']}", headers=city.auth("city"))
    assert (len(r.json()["entries"]), r.json()["next_cursor"]) == (1, None)
    for how in ({"params": {"format": "csv"}}, {"headers": {"Accept": "text/csv"}}):
        headers = {**city.auth("city"), **how.get("headers", {})}
        r = await client.get("/api/audit", params=how.get("params"), headers=headers)
        assert r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert [row["action"] for row in rows] == ["pole.create"] * 3
        assert (rows[0]["actor_type"], rows[0]["actor_name"]) == ("apikey", "'=HYPERLINK(1)")
        assert orjson.loads(rows[0]["detail"])["path"] == "/api/poles"
    assert rows[0]["target_type"] == "pole"


async def test_the_database_refuses_to_update_or_delete_an_audit_entry(
    platform: Platform,
) -> None:
    actor = Actor(ActorType.CLI, None, "root", None)
    entry = platform.audit.record(actor, "user.create", target_type="user", target_id=1)
    for statement in (
        "UPDATE audit SET actor_name = 'someone else'",
        "DELETE FROM audit",
    ):
        with pytest.raises(DBAPIError, match="append-only"), platform.db.engine.begin() as conn:
            conn.execute(text(statement))
    with platform.db.engine.connect() as conn:
        name = conn.execute(text(f"SELECT actor_name FROM audit WHERE id = {entry}")).scalar()
    assert name == "root"


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_users_and_the_audit_log_from_the_command_line(database: Database, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"SMARTPOLE_DB": "", "SMARTPOLE_DATA_DIR": str(tmp_path)}
    url = ["--data-dir", str(tmp_path)]

    def ok(*args: str, stdin: str | None = None) -> str:
        r = runner.invoke(cli_app, [*args, *url], env=env, input=stdin)
        assert r.exit_code == 0, r.output
        return r.stdout

    ok("tenant", "add", "lighting")
    ok(
        "user",
        "create",
        "light-li",
        "--tenant",
        "lighting",
        "--role",
        "admin",
        stdin=f"{PASSWORD}\n" * 2,
    )
    ok(
        "user",
        "create",
        "light-wu",
        "--tenant",
        "lighting",
        "--role",
        "viewer",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    r = runner.invoke(
        cli_app,
        [
            "user",
            "create",
            "x",
            "--tenant",
            "lighting",
            "--role",
            "viewer",
            "--password-stdin",
            *url,
        ],
        env=env,
        input="short\n",
    )
    assert r.exit_code == 1
    assert "at least 10 characters" in r.output
    listed = orjson.loads(ok("user", "list", "--tenant", "lighting", "--json"))
    assert [(u["name"], u["role"], u["disabled"]) for u in listed] == [
        ("light-li", "admin", False),
        ("light-wu", "viewer", False),
    ]
    assert "light-wu" in ok("user", "list")
    ok("user", "disable", "light-wu")
    ok("user", "enable", "light-wu")
    ok("user", "reset-password", "light-wu", "--password-stdin", stdin="another long one\n")
    ok("apikey", "create", "--tenant", "lighting", "--role", "viewer")
    store = Database(f"sqlite:///{tmp_path / 'smartpole.db'}")
    assert Users(store.engine).verify("light-wu", "another long one").name == "light-wu"
    store.dispose()
    entries = orjson.loads(ok("audit", "--json"))
    assert [(e["actor_type"], e["action"]) for e in reversed(entries)] == [
        ("cli", "user.create"),
        ("cli", "user.create"),
        ("cli", "user.update"),
        ("cli", "user.update"),
        ("cli", "user.password"),
        ("cli", "key.create"),
    ]
    assert all(PASSWORD not in orjson.dumps(e).decode() for e in entries)
    rows = list(
        csv.DictReader(io.StringIO(ok("audit", "--csv", "--since", "1h", "--action", "user")))
    )
    assert len(rows) == 5
    assert "user.password" in ok("audit")
    r = runner.invoke(cli_app, ["audit", "--since", "yesterday", *url], env=env)
    assert r.exit_code == 1
    assert "--since" in r.output
