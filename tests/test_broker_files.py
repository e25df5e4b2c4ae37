"""Broker accounts and Mosquitto's files: the token hash, who gets an account, the ACL, the CLI."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest
from sqlalchemy import delete
from typer.testing import CliRunner

from smartpole.cli import app as cli_app
from smartpole.model.types import DeviceKind
from smartpole.registry.access import Tenants
from smartpole.registry.assets import Assets
from smartpole.registry.broker import BrokerAccounts
from smartpole.registry.broker_hashes import broker_credentials, broker_hash, verify_broker_hash
from smartpole.sim.seed import city_principal
from smartpole.store import Database
from smartpole.transport.broker.mosquitto import acl_file, passwd_file, write_if_changed

HASH_RE = re.compile(r"^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$")


@pytest.fixture
def registry(database: Database) -> tuple[Assets, BrokerAccounts, Tenants]:
    """The registry of a fresh database, with the city operator."""
    tenants = Tenants(database.engine)
    tenants.create("city", "City", True)
    assets = Assets(database.engine)
    return assets, BrokerAccounts(assets), tenants


def test_the_hash_is_mosquittos_pbkdf2_sha512_format() -> None:
    hashed = broker_hash("s3cret-token")
    assert HASH_RE.match(hashed)
    assert verify_broker_hash("s3cret-token", hashed)
    assert not verify_broker_hash("s3cret-tokem", hashed)
    assert broker_hash("same") != broker_hash("same")  # salted


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd missing")
def test_a_hash_made_by_mosquitto_passwd_verifies(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(path), "lamp-1", "tok3n"], check=True, timeout=10
    )
    name, hashed = path.read_text().strip().split(":", 1)
    assert name == "lamp-1"
    assert HASH_RE.match(hashed)
    assert verify_broker_hash("tok3n", hashed)
    assert not verify_broker_hash("token", hashed)


@pytest.mark.parametrize("bad", ["", "$6$x$y", "$7$abc$x$y", "$7$101$!!$!!"])
def test_malformed_hashes_verify_nothing(bad: str) -> None:
    assert not verify_broker_hash("anything", bad)


def test_issuing_and_rotating_a_token_keeps_its_broker_hash(
    registry: tuple[Assets, BrokerAccounts, Tenants],
) -> None:
    assets, accounts, tenants = registry
    who = city_principal(tenants)
    row, token = assets.create_device(who, DeviceKind.LAMP, name="lamp-1")
    [account], skipped = accounts.accounts()
    assert (account.name, skipped) == ("lamp-1", [])
    assert verify_broker_hash(token, account.hash)
    new = assets.rotate_token(who, row.id)
    [account], _ = accounts.accounts()
    assert verify_broker_hash(new, account.hash)
    assert not verify_broker_hash(token, account.hash)
    assert accounts.authenticate("lamp-1", new) is not None
    assert accounts.authenticate("lamp-1", token) is None


def test_devices_registered_in_bulk_get_broker_hashes(
    registry: tuple[Assets, BrokerAccounts, Tenants],
) -> None:
    assets, accounts, tenants = registry
    specs = [{"name": f"lamp-{i}", "kind": "lamp", "owner": "city"} for i in range(3)]
    created = assets.create_devices(city_principal(tenants), specs)
    found = {a.name: a.hash for a in accounts.accounts()[0]}
    assert all(verify_broker_hash(token, found[name]) for _, name, token in created)


def test_devices_that_cannot_have_an_account_are_listed_with_the_reason(
    registry: tuple[Assets, BrokerAccounts, Tenants], database: Database
) -> None:
    assets, accounts, tenants = registry
    who = city_principal(tenants)
    assets.create_device(who, DeviceKind.LAMP, name="lamp-1")
    old, _ = assets.create_device(who, DeviceKind.LAMP, name="lamp-old")
    assets.create_device(who, DeviceKind.CAMERA, name="camera/1")
    assets.create_device(who, DeviceKind.METER, name="smartpole")
    with database.engine.begin() as conn:  # as if registered before broker mode
        conn.execute(delete(broker_credentials).where(broker_credentials.c.device_id == old.id))
    ok, skipped = accounts.accounts(reserved={"smartpole"})
    assert [a.name for a in ok] == ["lamp-1"]
    reasons = {s.name: s.reason for s in skipped}
    assert "rotate the token" in reasons["lamp-old"]
    assert "not a valid broker user name" in reasons["camera/1"]
    assert "user name of a service" in reasons["smartpole"]


def test_the_acl_keeps_every_device_to_its_own_topics() -> None:
    text = acl_file("smartpole", ["gw-1"])
    lines = [line for line in text.splitlines() if line and line[0] != "#"]
    assert lines == [
        "pattern write sp/v1/%u/telemetry",
        "pattern write sp/v1/%u/attributes",
        "pattern write sp/v1/%u/attributes/request/+",
        "pattern write sp/v1/%u/rpc/call/+",
        "pattern write sp/v1/%u/claim",
        "pattern write sp/v1/%u/fw/request/+/chunk/+",
        "pattern write sp/v1/%u/rpc/response/+",
        "pattern write sp/v1/%u/status",
        "pattern read sp/v1/%u/rpc/request/+",
        "pattern read sp/v1/%u/attributes/shared",
        "pattern read sp/v1/%u/attributes/response/+",
        "pattern read sp/v1/%u/rpc/result/+",
        "pattern read sp/v1/%u/fw/response/+/chunk/+",
        "pattern read sp/v1/%u/fw/error",
        # a gateway: the gateway API, under its own name only
        "user gw-1",
        "topic write sp/v1/gw-1/gateway/telemetry",
        "topic write sp/v1/gw-1/gateway/attributes",
        "topic write sp/v1/gw-1/gateway/connect",
        "topic write sp/v1/gw-1/gateway/disconnect",
        "topic write sp/v1/gw-1/gateway/attributes/request",
        "topic write sp/v1/gw-1/gateway/claim",
        "topic write sp/v1/gw-1/gateway/rpc",
        "topic read sp/v1/gw-1/gateway/rpc/request",
        "topic read sp/v1/gw-1/gateway/attributes/shared",
        "topic read sp/v1/gw-1/gateway/attributes/response",
        "user smartpole",
        "topic read sp/v1/#",
        "topic write sp/v1/+/rpc/request/+",
        "topic write sp/v1/+/attributes/shared",
        "topic write sp/v1/+/attributes/response/+",
        "topic write sp/v1/+/rpc/result/+",
        "topic write sp/v1/+/fw/response/+/chunk/+",
        "topic write sp/v1/+/fw/error",
        "topic write sp/v1/+/gateway/rpc/request",
        "topic write sp/v1/+/gateway/attributes/shared",
        "topic write sp/v1/+/gateway/attributes/response",
        "topic write sp/v1/+/status",  # of the sub-devices a gateway (dis)connects
    ]


def test_the_service_users_hash_stays_while_its_password_does() -> None:
    first = passwd_file(("smartpole", "pw"), [])
    assert passwd_file(("smartpole", "pw"), [], first) == first
    changed = passwd_file(("smartpole", "other"), [], first)
    assert changed != first
    assert verify_broker_hash("other", changed.strip().split(":", 1)[1])


def test_files_are_replaced_only_when_they_change(tmp_path: Path) -> None:
    path = tmp_path / "acl"
    assert write_if_changed(path, "one\n")
    assert path.stat().st_mode & 0o777 == 0o640
    assert not write_if_changed(path, "one\n")
    assert write_if_changed(path, "two\n")
    assert path.read_text() == "two\n"
    assert [p.name for p in tmp_path.iterdir()] == ["acl"]  # no temporary file left


def test_the_cli_writes_both_files_and_reports_skipped_devices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("SMARTPOLE_DATA_DIR", str(data))
    runner = CliRunner()
    assert runner.invoke(cli_app, ["tenant", "add", "city", "--operator"]).exit_code == 0
    added = runner.invoke(cli_app, ["device", "add", "--kind", "lamp", "--name", "lamp-1"])
    assert added.exit_code == 0, added.output
    args = ["broker", "mosquitto", "--passwd", str(tmp_path / "p"), "--acl", str(tmp_path / "a")]
    refused = runner.invoke(cli_app, args)
    assert refused.exit_code == 1
    assert "SMARTPOLE_BROKER_PASSWORD" in refused.output
    monkeypatch.setenv("SMARTPOLE_BROKER_PASSWORD", "svc")
    first = runner.invoke(cli_app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    report = orjson.loads(first.stdout)
    assert report["devices"] == 1
    assert report["skipped"] == []
    assert len(report["changed"]) == 2
    users = [line.split(":")[0] for line in (tmp_path / "p").read_text().splitlines()]
    assert users == ["smartpole", "lamp-1"]
    again = runner.invoke(cli_app, [*args, "--json"])
    assert orjson.loads(again.stdout)["changed"] == []
