"""``smartpole lighting``: import, export, list, overrides and a night's plan over the store."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml
from typer.testing import CliRunner

from smartpole.cli import app as cli_app
from smartpole.cli.common import city, open_platform
from smartpole.model.clock import now_ms
from smartpole.model.types import DeviceKind, Reading, Scope
from smartpole.model.writes import WriteBatch

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


def test_replacements_are_forecast_per_road_as_a_table_and_as_csv(
    cli: tuple[CliRunner, list[str], dict[str, str]], tmp_path: Path
) -> None:
    runner, where, env = cli
    p = open_platform(tmp_path, None)
    try:
        who = city(p.tenants)
        readings = []
        for code, road, life, hours in (
            ("FT-SN-001", "Shennan", 30_000, 31_000.0),  # past its rated life
            ("FT-BH-001", "Binhe", 50_000, 10_000.0),  # 40,000 h left: years ahead
        ):
            pole = p.assets.create_pole(who, code=code, lat=22.54, lon=114.05, road=road)
            lamp, _ = p.assets.create_device(who, DeviceKind.LAMP, name=road, pole_id=pole.id)
            p.assets.set_attributes(lamp.id, Scope.SERVER, {"rated_life": life})
            readings.append(Reading(lamp.id, "hours", now_ms() - 60_000, hours))
        p.series.write(WriteBatch(readings=readings))
        p.series.flush()  # type: ignore[attr-defined]
    finally:
        p.series.close()
        p.db.dispose()
    r = runner.invoke(cli_app, ["lighting", "replacements", *where], env=env)
    assert r.exit_code == 0, r.output
    assert "2 lamps on 2 roads" in r.output
    assert "Shennan" in r.output
    assert "Binhe" in r.output
    r = runner.invoke(
        cli_app, ["lighting", "replacements", "--csv", "--horizon", "20", *where], env=env
    )
    assert r.exit_code == 0, r.output
    header, *rows = r.stdout.splitlines()
    assert header.startswith("district,road,lamps,past_l70,next_due,mean_life_used,")
    by_road = {row.split(",")[1]: row.split(",") for row in rows}
    assert by_road["Shennan"][3] == "1"
    assert by_road["Binhe"][3] == "0"
    assert sum(int(n) for n in by_road["Binhe"][6:]) == 1  # due within the 20 years


def test_a_replacements_horizon_out_of_range_ends_with_its_problem(
    cli: tuple[CliRunner, list[str], dict[str, str]],
) -> None:
    runner, where, env = cli
    r = runner.invoke(cli_app, ["lighting", "replacements", "--horizon", "0", *where], env=env)
    assert r.exit_code == 1
    assert "horizon_years" in r.output
