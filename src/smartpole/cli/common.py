"""Options every command shares, and the one output style of the command line.

Output: tables and records go to stdout (:func:`print_table`, :func:`print_record`), or one
JSON document with ``--json`` (:func:`print_json`); messages and errors go to stderr
(``console``, :func:`fail`), an error with exit status 1. Booleans read yes/no, times are
local (``YYYY-MM-DD HH:MM:SS``), tenants and poles are named, not numbered.

Importing this module (and so any command module) loads no database, web or numeric library:
``smartpole --help`` stays fast. Commands import what they need when they run.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from smartpole.errors import SmartpoleError

if TYPE_CHECKING:
    from smartpole.app import Platform
    from smartpole.config import Settings
    from smartpole.registry.access import Principal, Tenants
    from smartpole.registry.assets import Assets
    from smartpole.store import Database

__all__ = [
    "DataDir",
    "Db",
    "JsonOut",
    "Registry",
    "Yes",
    "cell",
    "city",
    "command_platform",
    "command_registry",
    "console",
    "counted",
    "fail",
    "moment",
    "open_platform",
    "out",
    "print_json",
    "print_record",
    "print_table",
    "settings",
]

console = Console(stderr=True)  # messages and errors
out = Console(soft_wrap=False)  # tables and records
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Embedded store directory (default ./smartpole-data).",
        envvar="SMARTPOLE_DATA_DIR",
        show_default=False,
    ),
]
Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="PostgreSQL URL; when set, the embedded store is not used.",
        envvar="SMARTPOLE_DB",
        show_default=False,
    ),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def settings(data_dir: Path | None, db: str | None, **extra: Any) -> Settings:
    """Settings from the environment, overridden by the options given."""
    from smartpole.config import Settings

    given = {"data_dir": data_dir, "db": db, **extra}
    return Settings(**{k: v for k, v in given.items() if v is not None})


def open_platform(data_dir: Path | None, db: str | None, **extra: Any) -> Platform:
    """A platform on the chosen store, migrated to the current schema."""
    from smartpole.app import Platform

    p = Platform(settings(data_dir, db, **extra))
    p.upgrade()
    return p


def city(tenants: Tenants) -> Principal:
    """The city operator's admin, whom the command line acts as (created on first use)."""
    from smartpole.sim.seed import city_principal

    return city_principal(tenants)


@dataclass(frozen=True, slots=True)
class Registry:
    """Tenants, poles and devices without the rest of the platform: what the registry's
    commands need, opened in a fraction of the time the whole platform takes to load."""

    settings: Settings
    db: Database
    tenants: Tenants
    assets: Assets

    def is_online(self, device_id: int, last_seen: int | None) -> bool:
        """Seen within the inactivity timeout (a command holds no device's live session)."""
        from smartpole.registry.assets import seen_recently

        return seen_recently(last_seen, self.settings.inactivity_timeout_s)


@contextmanager
def command_registry(data_dir: Path | None, db: str | None) -> Iterator[Registry]:
    """The registry for one command, like :func:`command_platform`."""
    from smartpole.registry.access import Tenants
    from smartpole.registry.assets import Assets
    from smartpole.store import open_database

    try:
        s = settings(data_dir, db)
        database = open_database(s)
        database.upgrade()
    except SmartpoleError as err:
        raise fail(err) from err
    try:
        yield Registry(
            s, database, Tenants(database.engine, s.hub_timezone), Assets(database.engine)
        )
    except SmartpoleError as err:
        raise fail(err) from err
    finally:
        database.dispose()


@contextmanager
def command_platform(data_dir: Path | None, db: str | None, **extra: Any) -> Iterator[Platform]:
    """The platform for one command: a domain error ends the command with its message and exit
    status 1, and the database is closed in any case."""
    try:
        p = open_platform(data_dir, db, **extra)
    except SmartpoleError as err:
        raise fail(err) from err
    try:
        yield p
    except SmartpoleError as err:
        raise fail(err) from err
    finally:
        p.db.dispose()


def print_json(value: Any) -> None:
    """Write one JSON document to stdout."""
    import orjson

    # Row mappings of table columns have str-subclass keys (quoted_name): allow them.
    option = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    sys.stdout.write(orjson.dumps(value, default=str, option=option).decode() + "\n")


def moment(ms: int | None) -> str:
    """A time in milliseconds since the epoch, as local time to the second ("" if none)."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def cell(value: Any) -> str:
    """One value as a table shows it: yes/no for booleans, nothing for None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def counted(shown: int, total: int, noun: str) -> str:
    """A listing's title: "1 device", "3 devices", or "100 of 1234 devices" when a limit cut
    it short (``noun`` in the singular)."""
    what = noun if total == 1 else f"{noun}s"
    return f"{shown} {what}" if shown == total else f"{shown} of {total} {what}"


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A titled table on stdout; each row has one value per column (see :func:`cell`)."""
    from rich.table import Table

    table = Table(*columns, title=title, title_justify="left")
    for row in rows:
        table.add_row(*(cell(v) for v in row))
    out.print(table)


def print_record(title: str, fields: Mapping[str, Any]) -> None:
    """One entity on stdout, a field per line (see :func:`cell`)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for name, value in fields.items():
        table.add_row(name, cell(value))
    out.print(table)


def fail(err: SmartpoleError) -> typer.Exit:
    """Report a domain error on stderr and give the exit to raise."""
    console.print(f"[red]error:[/red] {escape(err.detail)}", highlight=False)
    for e in getattr(err, "errors", [])[:20]:
        console.print(f"  {'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}")
    return typer.Exit(1)
