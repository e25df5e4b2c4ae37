"""Options every command shares, and output helpers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console

from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.errors import SmartpoleError

__all__ = [
    "DataDir",
    "Db",
    "JsonOut",
    "command_platform",
    "console",
    "fail",
    "open_platform",
    "print_json",
]

console = Console(stderr=True)
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


def settings(data_dir: Path | None, db: str | None, **extra: Any) -> Settings:
    """Settings from the environment, overridden by the options given."""
    given = {"data_dir": data_dir, "db": db, **extra}
    return Settings(**{k: v for k, v in given.items() if v is not None})


def open_platform(data_dir: Path | None, db: str | None, **extra: Any) -> Platform:
    """A platform on the chosen store, migrated to the current schema."""
    p = Platform(settings(data_dir, db, **extra))
    p.upgrade()
    return p


@contextmanager
def command_platform(data_dir: Path | None, db: str | None, **extra: Any) -> Iterator[Platform]:
    """The platform for one command: a domain error ends the command with its message and exit
    status 1, and the database is closed in any case."""
    p = open_platform(data_dir, db, **extra)
    try:
        yield p
    except SmartpoleError as err:
        raise fail(err) from err
    finally:
        p.db.dispose()


def print_json(value: Any) -> None:
    """Write one JSON document to stdout."""
    # Row mappings of table columns have str-subclass keys (quoted_name): allow them.
    option = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    sys.stdout.write(orjson.dumps(value, default=str, option=option).decode() + "\n")


def fail(err: SmartpoleError) -> typer.Exit:
    """Report a domain error on stderr and give the exit to raise."""
    console.print(f"[red]error:[/red] {err.detail}")
    for e in getattr(err, "errors", [])[:20]:
        console.print(f"  {'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}")
    return typer.Exit(1)
