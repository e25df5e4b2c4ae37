"""``smartpole lighting``: import, export, list, overrides and a night's plan over the store."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml
from typer.testing import CliRunner

from smartpole.cli import app as cli_app
from smartpole.cli.common import city, open_platform
from smartpole.model.types import DeviceKind

DOCUMENT = """
programs:
  - name: night
    steps:
      - {at: sunset, level: 100}
      - {at: "virtual_midnight", level: 40}
      - {at: sunrise, level: 0}
groups:
  - {name: everyone}
calendar:
  - {name: always, program: night, group: everyone, weekdays: [mon, tue, wed, thu, fri, sat, sun]}
"""


@pytest.fixture
def cli(tmp_path: Path) -> tuple[CliRunner, list[str], dict[str, str]]:
    """A runner, the options naming a store in ``tmp_path``, and its environment."""
    env = {"SMARTPOLE_DB": "", "SMARTPOLE_DATA_DIR": str(tmp_path)}
    return CliRunner(), ["--data-dir", str(tmp_path)], env


def test_an_imported_document_is_listed_and_exported_back(
    cli: tuple[CliRunner, list[str], dict[str, str]], tmp_path: Path
) -> None:
    runner, where, env = cli
    doc = tmp_path / "lighting.yaml"
    doc.write_text(DOCUMENT)
    r = runner.invoke(cli_app, ["lighting", "import", str(doc), *where], env=env)
    assert r.exit_code == 0, r.output
    assert "1 programs" in r.output
    r = runner.invoke(cli_app, ["lighting", "programs", "--json", *where], env=env)
    assert [p["name"] for p in orjson.loads(r.stdout)] == ["night"]
    r = runner.invoke(cli_app, ["lighting", "export", *where], env=env)
    assert r.exit_code == 0, r.output
    assert yaml.safe_load(r.stdout)["calendar"][0]["name"] == "always"


def test_an_invalid_import_ends_with_its_location_and_saves_nothing(
    cli: tuple[CliRunner, list[str], dict[str, str]], tmp_path: Path
) -> None:
    runner, where, env = cli
    bad = tmp_path / "bad.yaml"
    bad.write_text(DOCUMENT.replace("program: night", "program: day"))
    r = runner.invoke(cli_app, ["lighting", "import", str(bad), *where], env=env)
    assert r.exit_code == 1
    assert "calendar.0.program" in r.output
    r = runner.invoke(cli_app, ["lighting", "calendar", "--json", *where], env=env)
    assert orjson.loads(r.stdout) == []


def test_an_override_shows_in_the_plan_of_a_lamp(
    cli: tuple[CliRunner, list[str], dict[str, str]], tmp_path: Path
) -> None:
    runner, where, env = cli
    doc = tmp_path / "lighting.yaml"
    doc.write_text(DOCUMENT)
    assert runner.invoke(cli_app, ["lighting", "import", str(doc), *where], env=env).exit_code == 0
    p = open_platform(tmp_path, None)
    try:
        who = city(p.tenants)
        pole = p.assets.create_pole(who, code="FT-SN-001", lat=22.54, lon=114.05, road="Shennan")
        p.assets.create_device(who, DeviceKind.LAMP, name="lamp-1", pole_id=pole.id)
    finally:
        p.db.dispose()
    r = runner.invoke(
        cli_app, ["lighting", "overrides", "--add", "everyone", "--level", "70", *where], env=env
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli_app, ["lighting", "plan", "--lamp", "lamp-1", "--json", *where], env=env)
    assert r.exit_code == 0, r.output
    reasons = {step["override"] for step in orjson.loads(r.stdout)["lamp-1"]}
    assert "override-1" in reasons
    r = runner.invoke(cli_app, ["lighting", "overrides", "--end", "1", *where], env=env)
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli_app, ["lighting", "plan", "--lamp", "lamp-1", "--json", *where], env=env)
    assert {step["override"] for step in orjson.loads(r.stdout)["lamp-1"]} == {None}
