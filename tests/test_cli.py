"""The ``smartpole`` console script, run for real in a subprocess on a throw-away store.

Each subprocess costs an interpreter start, so the registry commands run once for the module
(``registry``) and the tests read what they printed and what they left in the store.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx
import orjson
import pytest
import typer.main
from typer.testing import CliRunner

from pg import PostgresCluster
from smartpole.api import create_app
from smartpole.app import Platform
from smartpole.cli import app as cli_app
from smartpole.config import Settings
from smartpole.model.types import DeviceKind
from smartpole.registry.access import token_hint
from smartpole.registry.assets import PoleFilter
from smartpole.sim.seed import city_principal

CSV_HEADER = "code,name,lat,lon,height_m,district,road,installed\n"
POLES_CSV = CSV_HEADER + (
    "FT-SN-0001,Shennan 1,22.5431,114.0579,12.5,Futian,Shennan Blvd,2024-03-01\n"
    "FT-SN-0002,,22.5440,114.0590,,Futian,,\n"
    "NS-KJ-0001,Keji 1,22.5400,113.9500,9,Nanshan,Keji Rd,\n"
)


def _script() -> str:
    beside = Path(sys.executable).parent / "smartpole"
    found = str(beside) if beside.exists() else shutil.which("smartpole")
    assert found, "the smartpole console script is not installed"
    return found


SCRIPT = _script()


def run(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``smartpole *args`` in ``cwd`` with no SMARTPOLE_* settings from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTPOLE_")}
    env["COLUMNS"] = "200"  # no wrapping of rich's messages
    proc = subprocess.run(
        [SCRIPT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )
    if check:
        assert proc.returncode == 0, f"{args}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def run_json(cwd: Path, *args: str) -> Any:
    """Run a command with ``--json`` and parse what it printed."""
    return orjson.loads(run(cwd, *args, "--json").stdout)


@contextmanager
def opened(settings: Settings) -> Iterator[Platform]:
    """A platform on the store the commands wrote, closed afterwards."""
    platform = Platform(settings)
    try:
        yield platform
    finally:
        platform.db.dispose()


def embedded(data_dir: Path) -> AbstractContextManager[Platform]:
    """The embedded store in ``data_dir``."""
    return opened(Settings(data_dir=data_dir))


@dataclass
class Registry:
    """A data dir set up by the CLI, and what each command printed."""

    data_dir: Path
    upgrade: dict[str, Any]
    tenant: dict[str, Any]
    key: str
    pole: dict[str, Any]
    device: dict[str, Any]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """db upgrade, tenant add, apikey create, pole add and device add, once for the module."""
    cwd = tmp_path_factory.mktemp("cli")
    d = ("--data-dir", str(cwd / "data"))
    upgrade = run_json(cwd, "db", "upgrade", *d)
    tenant = run_json(cwd, "tenant", "add", "telecom", "--title", "Telecom", *d)
    key = run(cwd, "apikey", "create", "--tenant", "telecom", "--role", "viewer", *d).stdout
    pole = run_json(
        cwd, "pole", "add", "--code", "FT-SN-0001", "--lat", "22.5431", "--lon", "114.0579",
        "--district", "Futian", *d,
    )  # fmt: skip
    device = run_json(
        cwd, "device", "add", "--pole", "FT-SN-0001", "--kind", "lamp", "--owner", "telecom", *d
    )
    return Registry(cwd / "data", upgrade, tenant, key.strip(), pole, device)


def test_db_upgrade_reaches_head(registry: Registry) -> None:
    assert registry.upgrade["engine"] == "sqlite"
    assert registry.upgrade["revision"] == registry.upgrade["head"] is not None
    assert (registry.data_dir / "smartpole.db").is_file()


def test_tenant_add_creates_tenant(registry: Registry) -> None:
    assert (registry.tenant["name"], registry.tenant["title"]) == ("telecom", "Telecom")
    assert registry.tenant["is_operator"] is False
    with embedded(registry.data_dir) as platform:
        assert platform.tenants.by_name("telecom")["id"] == registry.tenant["id"]


async def test_printed_api_key_works_against_the_api(registry: Registry) -> None:
    assert registry.key.startswith("sp_")
    assert "\n" not in registry.key  # stdout holds the secret alone; messages go to stderr
    with embedded(registry.data_dir) as platform:
        transport = httpx.ASGITransport(app=create_app(platform, manage_lifecycle=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://cli.test") as c:
            r = await c.get("/api/me", headers={"Authorization": f"Bearer {registry.key}"})
    assert r.status_code == 200, r.text
    assert (r.json()["tenant"], r.json()["role"]) == ("telecom", "viewer")


def test_pole_add_prints_the_pole(registry: Registry) -> None:
    pole = registry.pole
    assert (pole["code"], pole["lat"], pole["lon"]) == ("FT-SN-0001", 22.5431, 114.0579)
    assert pole["district"] == "Futian"


def test_device_add_prints_id_and_token(registry: Registry) -> None:
    dev = registry.device
    assert (dev["name"], dev["kind"]) == (f"lamp-{dev['id']}", "lamp")
    assert (dev["owner"], dev["pole_id"], dev["pole"]) == (
        "telecom",
        registry.pole["id"],
        "FT-SN-0001",
    )
    assert dev["token_hint"] == token_hint(dev["token"])
    with embedded(registry.data_dir) as platform:
        ref = platform.assets.device_by_token(dev["token"])
    assert ref is not None
    assert (ref.id, ref.owner_id) == (dev["id"], registry.tenant["id"])


def test_device_list_json_lists_the_device(registry: Registry) -> None:
    d = ("--data-dir", str(registry.data_dir))
    listed = run_json(registry.data_dir.parent, "device", "list", "--owner", "telecom", *d)
    assert listed["total"] == len(listed["items"])
    [item] = [i for i in listed["items"] if i["id"] == registry.device["id"]]
    assert item == {k: v for k, v in registry.device.items() if k != "token"}


def test_device_token_rotates(registry: Registry) -> None:
    with embedded(registry.data_dir) as platform:
        row, old = platform.assets.create_device(
            city_principal(platform.tenants), DeviceKind.AIR, owner="telecom"
        )
    d = ("--data-dir", str(registry.data_dir))
    out = run_json(registry.data_dir.parent, "device", "token", str(row["id"]), *d)
    assert out == {"device_id": row["id"], "token": out["token"]}
    assert out["token"] != old
    with embedded(registry.data_dir) as platform:
        ref = platform.assets.device_by_token(out["token"])
        assert ref is not None
        assert ref.id == row["id"]
        assert platform.assets.device_by_token(old) is None


def test_device_kind_gives_a_generic_device_its_kind(registry: Registry) -> None:
    with embedded(registry.data_dir) as platform:
        platform.assets.create_device(
            city_principal(platform.tenants),
            DeviceKind.GENERIC,
            name="thermo-cli",
            profile="Thermometer",
        )
    d = ("--data-dir", str(registry.data_dir))
    row = run_json(registry.data_dir.parent, "device", "kind", "thermo-cli", "air", *d)
    assert (row["name"], row["kind"], row["profile"]) == ("thermo-cli", "air", "Thermometer")
    lamp = str(registry.device["id"])
    proc = run(registry.data_dir.parent, "device", "kind", lamp, "air", *d, check=False)
    assert proc.returncode == 1
    assert "only a generic device can change its kind" in proc.stderr


def test_cli_errors_exit_1_with_the_reason(registry: Registry) -> None:
    d = ("--data-dir", str(registry.data_dir))
    proc = run(registry.data_dir.parent, "tenant", "add", "telecom", *d, check=False)
    assert proc.returncode == 1
    assert "tenant 'telecom' exists" in proc.stderr


def test_mount_grants_and_bindings_are_given_listed_and_revoked(registry: Registry) -> None:
    """Telecom holds the pole (its lamp is on it): it lets lighting mount there, and binds its
    lamp to lighting's gateway; each record says who gave and who revoked it."""
    with embedded(registry.data_dir) as platform:
        platform.tenants.create("lighting-cli", "Lighting")
        platform.assets.create_device(
            city_principal(platform.tenants),
            DeviceKind.GATEWAY,
            name="gw-cli",
            owner="lighting-cli",
            pole_id=registry.pole["id"],
        )
    cwd, d = registry.data_dir.parent, ("--data-dir", str(registry.data_dir))
    grant = run_json(cwd, "mount-grant", "add", "FT-SN-0001", "lighting-cli", "--by", "telecom", *d)
    assert (grant["pole"], grant["tenant"]) == ("FT-SN-0001", "lighting-cli")
    assert (grant["granted"]["tenant"], grant["granted"]["key_id"]) == ("telecom", None)
    revoked = run_json(cwd, "mount-grant", "revoke", str(grant["id"]), "--by", "lighting-cli", *d)
    assert revoked["revoked"]["tenant"] == "lighting-cli"

    lamp = registry.device["name"]
    binding = run_json(cwd, "binding", "add", lamp, "gw-cli", "--by", "telecom", *d)
    assert (binding["device"], binding["gateway"]) == (lamp, "gw-cli")
    [listed] = run_json(cwd, "binding", "list", "--by", "lighting-cli", "--active", *d)
    assert listed["id"] == binding["id"]
    revoked = run_json(cwd, "binding", "revoke", str(binding["id"]), *d)
    assert revoked["revoked"]["tenant"] == "city"


# -- import and export ------------------------------------------------------------------------
def test_import_then_export_round_trips(tmp_path: Path) -> None:
    d = ("--data-dir", str(tmp_path / "data"))
    (tmp_path / "poles.csv").write_text(POLES_CSV, encoding="utf-8")
    report = run_json(tmp_path, "import", "poles.csv", *d)
    assert (report["created"], report["rejected"], report["applied"]) == (3, [], True)

    text = run(tmp_path, "export", "--format", "geojson", "-o", "poles.geojson", *d)
    assert text.returncode == 0
    doc = orjson.loads((tmp_path / "poles.geojson").read_bytes())
    rows = list(csv.DictReader(io.StringIO(POLES_CSV)))
    assert [f["properties"]["code"] for f in doc["features"]] == [r["code"] for r in rows]
    for feature, row in zip(doc["features"], rows, strict=True):
        assert feature["geometry"]["coordinates"] == [float(row["lon"]), float(row["lat"])]
        assert feature["properties"]["name"] == row["name"]
        assert feature["properties"]["installed"] == (row["installed"] or None)

    again = run_json(tmp_path, "import", "poles.geojson", *d)
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 3)


def test_invalid_csv_row_imports_nothing(tmp_path: Path) -> None:
    bad = POLES_CSV + "FT-SN-0003,,95.5,114.06,,Futian,,\n"  # line 5: latitude out of range
    (tmp_path / "poles.csv").write_text(bad, encoding="utf-8")
    proc = run(tmp_path, "import", "poles.csv", "--data-dir", str(tmp_path / "data"), check=False)
    assert proc.returncode == 1
    assert "line 5" in proc.stdout + proc.stderr
    assert "nothing applied" in proc.stderr
    with embedded(tmp_path / "data") as platform:
        who = city_principal(platform.tenants)
        assert platform.assets.list_poles(who, PoleFilter()) == ([], 0)


# -- help -------------------------------------------------------------------------------------
def test_console_script_help_lists_the_commands(tmp_path: Path) -> None:
    out = run(tmp_path, "--help").stdout
    for name in ("serve", "demo", "db", "tenant", "apikey", "pole", "device", "import", "export"):
        assert name in out


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, cmd in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


COMMANDS = list(_commands(typer.main.get_command(cli_app)))  # type: ignore[arg-type]


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    # In-process: one interpreter start per command would cost seconds each.
    result = CliRunner().invoke(cli_app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: smartpole " + " ".join(command) in " ".join(result.output.split())


# -- PostgreSQL -------------------------------------------------------------------------------
@pytest.mark.postgres
def test_commands_work_on_postgres(pg_cluster: PostgresCluster, tmp_path: Path) -> None:
    name = f"cli_{uuid.uuid4().hex[:12]}"
    db = ("--db", pg_cluster.create_database(name))
    try:
        upgrade = run_json(tmp_path, "db", "upgrade", *db)
        assert upgrade["engine"] == "postgresql"
        assert upgrade["revision"] == upgrade["head"]
        pole = run_json(
            tmp_path, "pole", "add", "--code", "PG-0001", "--lat", "22.5", "--lon", "114.0", *db
        )
        with opened(Settings(db=db[1])) as platform:
            row, _ = platform.assets.create_device(
                city_principal(platform.tenants), DeviceKind.SOS, pole_id=pole["id"]
            )
        listed = run_json(tmp_path, "device", "list", *db)
        assert listed["total"] == 1
        assert [(d["id"], d["pole"], d["owner"]) for d in listed["items"]] == [
            (row["id"], "PG-0001", "city")
        ]
        assert not (tmp_path / "smartpole-data").exists()  # the embedded store stayed unused
    finally:
        pg_cluster.drop_database(name)


def test_db_recover_settles_the_batches_of_a_node_gone_for_good(tmp_path: Path) -> None:
    from smartpole.model.types import Reading
    from smartpole.store import Database, WriteBatch, open_series

    hour = 1_764_000_000_000 - 1_764_000_000_000 % 3_600_000
    db = Database(f"sqlite:///{tmp_path}/smartpole.db")
    try:
        db.upgrade()
        gone = open_series(db, flush_ms=10**9, node="gone")
        for i in range(3):
            gone.write(WriteBatch(readings=[Reading(1, "power", hour + i, 2.0)]))
        gone._conn.close()  # killed: nothing flushed
        gone._conn = None
    finally:
        db.dispose()

    report = run_json(tmp_path, "db", "recover", "--node", "gone", "--data-dir", str(tmp_path))

    assert report == {"node": "gone", "settled": 3, "unsettled": {}}
    with embedded(tmp_path) as platform:
        got = platform.series.aggregate([1], ["power"], hour, hour + 3_600_000, 3_600_000, "count")
        assert got == {1: {"power": [(hour, 3.0)]}}
