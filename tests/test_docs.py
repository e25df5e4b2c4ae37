"""The documentation tells the truth: every setting, catalog key and CLI command is documented."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer

from smartpole.cli import app
from smartpole.config import Settings
from smartpole.model.catalog import CATALOG, KeySpec, KindSpec

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EMPTY = ("", "—")


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _cells(row: str) -> list[str]:
    """The cells of one Markdown table row, stripped."""
    return [c.strip() for c in row.strip().strip("|").split("|")]


def _plain(cell: str) -> str:
    """A cell's text without code backticks."""
    return cell.strip().strip("`").strip()


# -- settings ------------------------------------------------------------------------------
def _setting_rows() -> dict[str, list[str]]:
    """Rows of the settings table in configuration.md, by setting name."""
    rows: dict[str, list[str]] = {}
    for line in _read(DOCS / "configuration.md").splitlines():
        if line.startswith("| `"):
            cells = _cells(line)
            rows[_plain(cells[0])] = cells
    return rows


def _cli_options() -> dict[str, set[str]]:
    """Every long option of every CLI command whose parameter is named after a setting."""
    out: dict[str, set[str]] = {}
    for command in _walk(typer.main.get_command(app), []).values():
        for param in command.params:
            if param.param_type_name == "option" and param.name in Settings.model_fields:
                out.setdefault(param.name, set()).update(
                    o for o in param.opts if o.startswith("--")
                )
    return out


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in Settings.model_fields])
def test_every_setting_is_in_configuration_md(name: str) -> None:
    row = _setting_rows().get(name)
    assert row is not None, f"docs/configuration.md has no row for the setting `{name}`"
    _, env, cli, default = row[:4]
    assert f"`SMARTPOLE_{name.upper()}`" in env
    for option in sorted(_cli_options().get(name, ())):
        assert f"`{option}`" in cli, f"{name}: the CLI option {option} is not documented"
    field = Settings.model_fields[name]
    if field.default_factory is not None:  # computed where it runs (the host name)
        assert _plain(default) not in ("", "unset")
        return
    value = field.default
    if value is None:
        assert _plain(default) == "unset"
    elif isinstance(value, Path):
        assert Path(_plain(default)) == value
    else:
        assert _plain(default) == str(value)


def test_configuration_md_lists_no_setting_that_does_not_exist() -> None:
    assert set(_setting_rows()) <= set(Settings.model_fields)


# -- catalog -------------------------------------------------------------------------------
def _kind_sections() -> dict[str, list[str]]:
    """The lines of each ``## `kind``` section of catalog.md."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in _read(DOCS / "catalog.md").splitlines():
        heading = re.fullmatch(r"## `([a-z_]+)`", line.strip())
        if heading:
            current = sections.setdefault(heading.group(1), [])
        elif line.startswith("## "):
            current = None
        elif current is not None:
            current.append(line)
    return sections


def _number(cell: str) -> float | None:
    text = _plain(cell).replace(",", "")
    return None if text in EMPTY else float(text)


def _expected_row(spec: KeySpec) -> list[object]:
    return [
        spec.key,
        str(spec.type),
        spec.unit,
        None if spec.min is None else float(spec.min),
        None if spec.max is None else float(spec.max),
        spec.label_en,
        spec.label_zh,
    ]


@pytest.mark.parametrize("kind", [pytest.param(s, id=str(k)) for k, s in CATALOG.items()])
def test_every_kind_and_key_is_in_catalog_md(kind: KindSpec) -> None:
    section = _kind_sections().get(str(kind.kind))
    assert section is not None, f"docs/catalog.md has no section ## `{kind.kind}`"
    text = "\n".join(section)
    assert kind.label_en in text
    assert kind.label_zh in text
    assert f"Smart Data Model: `{kind.sdm}`" in text
    rows = {}
    for line in section:
        if line.startswith("| `"):
            cells = _cells(line)
            unit = "" if _plain(cells[2]) in EMPTY else cells[2]
            rows[_plain(cells[0])] = [
                _plain(cells[0]),
                cells[1],
                unit,
                _number(cells[3]),
                _number(cells[4]),
                cells[5],
                cells[6],
            ]
    for key, spec in kind.keys.items():
        assert key in rows, f"docs/catalog.md: `{kind.kind}` lacks the key `{key}`"
        assert rows[key] == _expected_row(spec), f"docs/catalog.md: `{kind.kind}.{key}` differs"
    assert set(rows) == set(kind.keys), f"docs/catalog.md: `{kind.kind}` lists unknown keys"


def test_catalog_md_has_no_kind_that_does_not_exist() -> None:
    assert set(_kind_sections()) == {str(k) for k in CATALOG}


# -- CLI -----------------------------------------------------------------------------------
def _walk(command: Any, path: list[str]) -> dict[str, Any]:
    """Every command and subcommand under ``command``, by its full name after ``smartpole``.

    Typer ships its own copy of click, so groups are recognised by their ``commands``.
    """
    out: dict[str, Any] = {}
    if path:
        out[" ".join(path)] = command
    for name, sub in (getattr(command, "commands", None) or {}).items():
        out.update(_walk(sub, [*path, name]))
    return out


CLI_COMMANDS = sorted(_walk(typer.main.get_command(app), []))


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in CLI_COMMANDS])
def test_every_cli_command_is_documented(name: str) -> None:
    assert re.search(rf"smartpole {re.escape(name)}(?![\w-])", _read(DOCS / "cli.md")), (
        f"`smartpole {name}` is not in docs/cli.md"
    )


# -- the two commands ----------------------------------------------------------------------
def test_readme_gives_the_two_commands_and_ci_runs_the_second() -> None:
    readme = _read(ROOT / "README.md")
    assert "make demo" in readme
    assert "make test" in readme
    assert re.search(r"^\s*make test\s*$", _read(ROOT / ".ci" / "run"), re.MULTILINE)
    makefile = _read(ROOT / "Makefile")
    assert re.search(r"^demo:", makefile, re.MULTILINE)
    assert re.search(r"^test:", makefile, re.MULTILINE)


def _anchors(text: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown page."""
    out = set()
    prose = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    for heading in re.findall(r"^#+ (.+)$", prose, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower())
        out.add(slug.replace(" ", "-"))
    return out


@pytest.mark.parametrize(
    "page",
    [pytest.param(p, id=p.name) for p in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]],
)
def test_relative_links_point_at_files_and_headings_that_exist(page: Path) -> None:
    text = _read(page)
    for target, anchor in re.findall(r"\]\(([^)#:]*)(?:#([^)]*))?\)", text):
        linked = page.parent / target if target else page
        assert linked.exists(), f"{page.name} links to missing {target}"
        if anchor:
            assert anchor in _anchors(_read(linked)), f"{page.name}: no #{anchor} in {linked.name}"
