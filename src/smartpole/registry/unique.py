"""Which unique value a refused write took: the one place that reads the database's answer.

A device's name, its access token and its (pole, port) are each unique. When an insert or
update breaks one of them, the database names the columns (SQLite: ``UNIQUE constraint failed:
devices.name``; PostgreSQL: ``Key (name)=(lamp-1) already exists``); :func:`device_taken`
turns that into a :class:`Conflict` whose ``field`` says which value to change, so that the
command line and REST's 409 problem both say it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from smartpole.errors import Conflict

__all__ = ["DEVICE_UNIQUE", "Unique", "device_taken", "taken_columns"]

_SQLITE = re.compile(r"UNIQUE constraint failed: ([\w., ]+)")
_POSTGRES = re.compile(r"Key \(([^)]*)\)=")


@dataclass(frozen=True, slots=True)
class Unique:
    """A unique value of an entity: its columns, the field a caller sets, and what it is."""

    columns: frozenset[str]
    field: str
    what: str


DEVICE_UNIQUE = (
    Unique(frozenset({"name"}), "name", "device name"),
    Unique(frozenset({"token_hash"}), "token", "access token"),
    Unique(frozenset({"pole_id", "port"}), "port", "pole port"),
)


def taken_columns(err: IntegrityError) -> frozenset[str]:
    """The columns of the unique constraint the database refused (empty: not a unique one)."""
    text = str(err.orig)
    if m := _SQLITE.search(text):
        return frozenset(c.strip().rsplit(".", 1)[-1] for c in m.group(1).split(","))
    detail = getattr(getattr(err.orig, "diag", None), "message_detail", None) or text
    if m := _POSTGRES.search(detail):
        return frozenset(c.strip().strip('"') for c in m.group(1).split(","))
    return frozenset()


def device_taken(err: IntegrityError, name: str | None = None, port: int | None = None) -> Conflict:
    """The Conflict for a device write the database refused, naming the value that is taken."""
    columns = taken_columns(err)
    for unique in DEVICE_UNIQUE:
        if unique.columns == columns:
            if unique.field == "name" and name:
                detail = f"device name {name!r} is already taken"
            elif unique.field == "port" and port is not None:
                detail = f"port {port} of that pole is already taken"
            else:
                detail = f"{unique.what} is already taken"
            return Conflict(detail, field=unique.field, name=name, port=port)
    return Conflict("device name, access token or pole port already taken", name=name, port=port)
