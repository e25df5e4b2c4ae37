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
from smartpole.errors import Unauthenticated
from smartpole.model.types import DeviceKind, Role
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


def run(
    cwd: Path, *args: str, check: bool = True, answer: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``smartpole *args`` in ``cwd`` with no SMARTPOLE_* settings from outside (and
    ``answer`` on its stdin, for a question it asks)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTPOLE_")}
    env["COLUMNS"] = "200"  # no wrapping of rich's messages
    proc = subprocess.run(
        [SCRIPT, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        input=answer if answer is not None else "",
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
        transport = httpx.ASGITransport(app=create_app(platform.api_services()))
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
    out = run_json(registry.data_dir.parent, "device", "token", str(row.id), *d)
    assert out == {"device_id": row.id, "token": out["token"]}
    assert out["token"] != old
    with embedded(registry.data_dir) as platform:
        ref = platform.assets.device_by_token(out["token"])
        assert ref is not None
        assert ref.id == row.id
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
    shown = run(registry.data_dir.parent, "device", "show", "thermo-cli", *d).stdout
    assert ["kind", "generic", "(Thermometer)"] in [line.split() for line in shown.splitlines()]
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


# -- what an operator looks up and removes ----------------------------------------------------
def test_device_add_twice_says_which_value_is_taken(registry: Registry) -> None:
    cwd, d = registry.data_dir.parent, ("--data-dir", str(registry.data_dir))
    name = registry.device["name"]
    proc = run(cwd, "device", "add", "--kind", "lamp", "--name", name, *d, check=False)
    assert proc.returncode == 1
    assert f"device name '{name}' is already taken" in proc.stderr
    assert proc.stdout == ""

    run(cwd, "device", "add", "--kind", "air", "--pole", "FT-SN-0001", "--port", "7", *d)
    proc = run(
        cwd, "device", "add", "--kind", "noise", "--pole", "FT-SN-0001", "--port", "7", *d,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "port 7 of that pole is already taken" in proc.stderr


def test_tenant_show_counts_its_devices_and_keys(registry: Registry) -> None:
    cwd, d = registry.data_dir.parent, ("--data-dir", str(registry.data_dir))
    shown = run_json(cwd, "tenant", "show", "telecom", *d)
    owned = run_json(cwd, "device", "list", "--owner", "telecom", *d)["total"]
    assert {k: shown[k] for k in ("id", "name", "title", "is_operator")} == {
        k: registry.tenant[k] for k in ("id", "name", "title", "is_operator")
    }
    assert (shown["devices"], shown["api_keys"]) == (owned, 1)
    text = run(cwd, "tenant", "show", "telecom", *d).stdout
    [operator] = [line.split() for line in text.splitlines() if "operator" in line]
    assert operator == ["operator", "no"]


def test_apikey_list_shows_a_hint_never_the_secret(registry: Registry) -> None:
    cwd, d = registry.data_dir.parent, ("--data-dir", str(registry.data_dir))
    [key] = run_json(cwd, "apikey", "list", "--tenant", "telecom", *d)
    assert (key["tenant"], key["role"], key["revoked"]) == ("telecom", "viewer", None)
    assert key["hint"] == f"sp_{key['prefix']}_…"
    assert registry.key.startswith(key["hint"].rstrip("…"))
    text = run(cwd, "apikey", "list", *d).stdout
    assert key["hint"] in text
    assert registry.key not in text
    assert registry.key not in orjson.dumps(key).decode()


def test_apikey_revoke_stops_the_key(registry: Registry) -> None:
    with embedded(registry.data_dir) as platform:
        row, secret = platform.tenants.create_key(registry.tenant["id"], Role.ADMIN, "to revoke")
    cwd, d = registry.data_dir.parent, ("--data-dir", str(registry.data_dir))
    revoked = run_json(cwd, "apikey", "revoke", str(row["id"]), *d)
    assert (revoked["id"], revoked["tenant"]) == (row["id"], "telecom")
    assert revoked["revoked"] is not None
    with embedded(registry.data_dir) as platform, pytest.raises(Unauthenticated):
        platform.tenants.authenticate(secret)
    listed = run_json(cwd, "apikey", "list", "--tenant", "telecom", *d)
    assert row["id"] not in [k["id"] for k in listed]
    with_revoked = run_json(cwd, "apikey", "list", "--tenant", "telecom", "--revoked", *d)
    assert row["id"] in [k["id"] for k in with_revoked]


def test_pole_list_and_show_give_the_pole_and_its_devices(registry: Registry) -> None:
    cwd, d = registry.data_dir.parent, ("--data-dir", str(registry.data_dir))
    listed = run_json(cwd, "pole", "list", "--district", "Futian", *d)
    assert [p["code"] for p in listed["items"]] == ["FT-SN-0001"]
    assert listed["total"] == 1
    assert listed["items"][0] == {k: v for k, v in registry.pole.items() if k != "devices"}

    shown = run_json(cwd, "pole", "show", "FT-SN-0001", *d)
    mounted = {m["id"]: m for m in shown["devices"]}
    device = run_json(cwd, "device", "show", registry.device["name"], *d)
    assert mounted[registry.device["id"]] == device  # the same fields as device show

    text = run(cwd, "pole", "show", "FT-SN-0001", *d).stdout
    assert "pole FT-SN-0001" in text
    assert registry.device["name"] in text


def test_device_show_by_name_or_id_and_list_give_the_same_fields(registry: Registry) -> None:
    cwd, d = registry.data_dir.parent, ("--data-dir", str(registry.data_dir))
    by_name = run_json(cwd, "device", "show", registry.device["name"], *d)
    by_id = run_json(cwd, "device", "show", str(registry.device["id"]), *d)
    listed = run_json(cwd, "device", "list", "--pole", "FT-SN-0001", *d)
    [item] = [i for i in listed["items"] if i["id"] == registry.device["id"]]
    assert by_name == by_id == item
    assert (by_name["online"], by_name["owner"], by_name["pole"]) == (
        False,
        "telecom",
        "FT-SN-0001",
    )
    proc = run(cwd, "device", "show", "no-such-device", *d, check=False)
    assert proc.returncode == 1
    assert "device 'no-such-device' not found" in proc.stderr


def test_tables_name_tenants_and_say_yes_or_no(registry: Registry) -> None:
    from smartpole.hub.rules.documents import default_rules

    with embedded(registry.data_dir) as platform:
        platform.hub.rules.put(city_principal(platform.tenants), default_rules()[0])
    cwd, d = registry.data_dir.parent, ("--data-dir", str(registry.data_dir))
    rules = run(cwd, "rule", "list", *d).stdout
    [row] = [line for line in rules.splitlines() if default_rules()[0]["name"] in line]
    cells = [c.strip() for c in row.split("│")]
    assert "city" in cells
    assert "yes" in cells
    assert "True" not in rules

    devices = run(cwd, "device", "list", "--owner", "telecom", *d)
    assert devices.stdout.lstrip().startswith(("1 device", "2 devices", "3 devices"))
    assert "online" in devices.stdout
    assert devices.stderr == ""  # tables go to stdout


def test_pole_delete_refuses_while_devices_are_mounted_unless_forced(tmp_path: Path) -> None:
    d = ("--data-dir", str(tmp_path / "data"))
    run(tmp_path, "pole", "add", "--code", "DEL-1", "--lat", "22.5", "--lon", "114", *d)
    device = run_json(tmp_path, "device", "add", "--kind", "camera", "--pole", "DEL-1", *d)

    refused = run(tmp_path, "pole", "delete", "DEL-1", "--yes", *d, check=False)
    assert refused.returncode == 1
    assert "pole 'DEL-1' has 1 device mounted; unmount them, or give --force" in refused.stderr
    kept = run(tmp_path, "pole", "delete", "DEL-1", "--force", *d, answer="n\n", check=False)
    assert kept.returncode == 1
    assert "delete pole DEL-1 and unmount the 1 on it?" in kept.stderr
    assert run_json(tmp_path, "pole", "show", "DEL-1", *d)["devices"][0]["id"] == device["id"]

    run(tmp_path, "pole", "delete", "DEL-1", "--force", *d, answer="y\n")
    assert run_json(tmp_path, "pole", "list", *d)["total"] == 0
    assert run_json(tmp_path, "device", "show", device["name"], *d)["pole"] is None


def test_device_delete_asks_unless_yes(tmp_path: Path) -> None:
    d = ("--data-dir", str(tmp_path / "data"))
    run(tmp_path, "device", "add", "--kind", "sos", "--name", "sos-1", *d)
    kept = run(tmp_path, "device", "delete", "sos-1", *d, answer="n\n", check=False)
    assert kept.returncode == 1
    assert "delete device sos-1 (sos)?" in kept.stderr
    assert run_json(tmp_path, "device", "show", "sos-1", *d)["name"] == "sos-1"
    run(tmp_path, "device", "delete", "sos-1", "--yes", *d)
    assert run_json(tmp_path, "device", "list", *d)["total"] == 0


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


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command and group under ``group``; Typer ships its own copy of click, so a group
    is recognised by its ``commands``."""
    for name, cmd in sorted(group.commands.items()):
        yield (*prefix, name)
        if getattr(cmd, "commands", None):
            yield from _commands(cmd, (*prefix, name))


COMMANDS = list(_commands(typer.main.get_command(cli_app)))  # type: ignore[arg-type]


def _command_objects(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[Any]:
    for name, cmd in sorted(group.commands.items()):
        if getattr(cmd, "commands", None):
            yield from _command_objects(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


LISTINGS = [
    (path, cmd)
    for path, cmd in _command_objects(typer.main.get_command(cli_app))  # type: ignore[arg-type]
    if path[-1] in ("list", "show")
]


@pytest.mark.parametrize(
    "command", [c for _, c in LISTINGS], ids=[" ".join(p) for p, _ in LISTINGS]
)
def test_every_list_and_show_has_json(command: Any) -> None:
    assert "--json" in [o for param in command.params for o in param.opts]


HEAVY = ("sqlalchemy", "alembic", "numpy", "shapely", "fastapi", "uvicorn", "pydantic_settings")


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(None, id="import"),
        pytest.param(["--help"], id="smartpole --help"),
        pytest.param(["device", "--help"], id="smartpole device --help"),
    ],
)
def test_the_command_line_loads_no_heavy_library_for_help(argv: list[str] | None) -> None:
    """What makes ``smartpole --help`` take seconds: the database, web and numeric stacks."""
    code = "import sys\nimport smartpole.cli\n"
    if argv is not None:
        code += (
            f"sys.argv = ['smartpole', *{argv!r}]\n"
            "try:\n    smartpole.cli.main()\nexcept SystemExit:\n    pass\n"
        )
    code += f"print(','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stderr.strip() == ""


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
            (row.id, "PG-0001", "city")
        ]
        assert not (tmp_path / "smartpole-data").exists()  # the embedded store stayed unused
    finally:
        pg_cluster.drop_database(name)


def test_db_recover_settles_the_batches_of_a_node_gone_for_good(tmp_path: Path) -> None:
    from smartpole.model.types import Reading
    from smartpole.model.writes import WriteBatch
    from smartpole.store import Database, open_series

    hour = 1_764_000_000_000 - 1_764_000_000_000 % 3_600_000
    db = Database(f"sqlite:///{tmp_path}/smartpole.db")
    try:
        db.upgrade()
        gone = open_series(db, flush_ms=10**9, node="gone")
        for i in range(3):
            gone.write(WriteBatch(readings=[Reading(1, "power", hour + i, 2.0)]))
        gone.close(flush=False)  # killed: nothing flushed
    finally:
        db.dispose()

    report = run_json(tmp_path, "db", "recover", "--node", "gone", "--data-dir", str(tmp_path))

    assert report == {"node": "gone", "settled": 3, "unsettled": {}}
    with embedded(tmp_path) as platform:
        got = platform.series.aggregate([1], ["power"], hour, hour + 3_600_000, 3_600_000, "count")
        assert got == {1: {"power": [(hour, 3.0)]}}


def test_a_tenant_has_the_time_zone_it_was_given_or_the_hubs(tmp_path: Path) -> None:
    """Daily buckets start at a tenant's own midnight: ``tenant add --timezone`` sets where, and
    ``tenant show`` says it; a tenant given none follows ``SMARTPOLE_HUB_TIMEZONE``."""
    d = ("--data-dir", str(tmp_path / "data"))
    run(tmp_path, "tenant", "add", "berlin-lights", "--timezone", "Europe/Berlin", *d)
    run(tmp_path, "tenant", "add", "local", *d)
    assert run_json(tmp_path, "tenant", "show", "berlin-lights", *d)["timezone"] == "Europe/Berlin"
    assert run_json(tmp_path, "tenant", "show", "local", *d)["timezone"] == "Asia/Shanghai"
    text = run(tmp_path, "tenant", "show", "berlin-lights", *d).stdout
    assert ["time", "zone", "Europe/Berlin"] in [line.split() for line in text.splitlines()]
    proc = run(tmp_path, "tenant", "add", "nowhere", "--timezone", "Mars/Olympus", *d, check=False)
    assert proc.returncode == 1
    assert "Mars/Olympus" in proc.stderr
