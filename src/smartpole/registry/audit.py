"""The audit log: who changed what, when, from where; rows are only ever added.

No code path updates or deletes an entry, and the database refuses to (triggers of migration
0015). ``detail`` holds what identifies the change, never a secret: keys that name one
(``password``, ``secret``, ``token``, ``key``...) are dropped before the row is written.
"""

from __future__ import annotations

import builtins
import csv
import io
import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, or_, select

from smartpole.model.clock import now_ms
from smartpole.model.users import Actor, ActorType, AuditEntry
from smartpole.registry.access import Principal
from smartpole.store.schema import audit

__all__ = ["CSV_COLUMNS", "AuditFilter", "AuditLog", "entries_csv"]

CSV_COLUMNS = [
    "id",
    "ts",
    "tenant_id",
    "actor_type",
    "actor_id",
    "actor_name",
    "action",
    "target_type",
    "target_id",
    "address",
    "status",
    "detail",
]
SECRET_WORDS = ("password", "secret", "token", "key", "csrf", "cookie", "authorization")


def _scrub(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in detail.items() if not any(word in k.lower() for word in SECRET_WORDS)}


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which entries to list: a time range (ms, ``until`` excluded), an actor's name, an action
    (``alarm`` matches ``alarm.ack`` too), and a cursor (entries older than that id)."""

    since: int | None = None
    until: int | None = None
    actor: str | None = None
    action: str | None = None
    cursor: int | None = None


class AuditLog:
    """Writes and reads the audit log."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(
        self,
        actor: Actor,
        action: str,
        *,
        target_type: str | None = None,
        target_id: str | int | None = None,
        detail: dict[str, Any] | None = None,
        address: str = "",
        status: int = 200,
    ) -> int:
        """Add an entry (blocking); returns its id."""
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    insert(audit).values(
                        ts=now_ms(),
                        tenant_id=actor.tenant_id,
                        actor_type=str(actor.type),
                        actor_id=actor.id,
                        actor_name=actor.name[:200],
                        action=action[:100],
                        target_type=target_type,
                        target_id=None if target_id is None else str(target_id)[:200],
                        detail=json.dumps(_scrub(detail or {}), ensure_ascii=False, default=str),
                        address=address[:64],
                        status=status,
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
            )

    def list(self, who: Principal, f: AuditFilter, limit: int = 100) -> builtins.list[AuditEntry]:
        """Entries the caller may read, newest first: its own tenant's, or all for the city
        operator."""
        q = select(audit).order_by(audit.c.id.desc()).limit(limit)
        if not who.is_operator:
            q = q.where(audit.c.tenant_id == who.tenant_id)
        if f.since is not None:
            q = q.where(audit.c.ts >= f.since)
        if f.until is not None:
            q = q.where(audit.c.ts < f.until)
        if f.actor is not None:
            q = q.where(audit.c.actor_name == f.actor)
        if f.action is not None:
            prefix = f.action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            q = q.where(
                or_(audit.c.action == f.action, audit.c.action.like(prefix + ".%", escape="\\"))
            )
        if f.cursor is not None:
            q = q.where(audit.c.id < f.cursor)
        with self.engine.connect() as conn:
            return [
                AuditEntry(
                    id=r.id,
                    ts=r.ts,
                    tenant_id=r.tenant_id,
                    actor_type=ActorType(r.actor_type),
                    actor_id=r.actor_id,
                    actor_name=r.actor_name,
                    action=r.action,
                    target_type=r.target_type,
                    target_id=r.target_id,
                    address=r.address,
                    status=r.status,
                    detail=json.loads(r.detail),
                )
                for r in conn.execute(q)
            ]


def entries_csv(entries: list[AuditEntry]) -> str:
    """Entries as CSV text with a header row (``detail`` as JSON)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        row = e.to_dict()
        row["detail"] = json.dumps(row["detail"], ensure_ascii=False, sort_keys=True)
        writer.writerow([_cell(row[c]) for c in CSV_COLUMNS])
    return out.getvalue()


_FORMULA = re.compile(r"^[=+\-@\t\r]")


def _cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run as a formula (a login name like ``=cmd()``)."""
    if isinstance(value, str) and _FORMULA.match(value):
        return "'" + value
    return "" if value is None else value
