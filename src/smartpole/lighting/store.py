"""Where a tenant's lighting is kept: its document as rows by part and name (so one program,
group, holiday calendar or calendar entry can be read, replaced or deleted alone), its overrides
and its energy settings.

The store does not judge a document: every change goes through :meth:`LightingStore.change`,
which hands the whole document after the change to a check (``parse_lighting``, in the service)
inside the transaction that writes it, so the stored whole always parses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, delete, insert, select, update

from smartpole.errors import NotFound
from smartpole.lighting.tables import lighting_items, lighting_overrides, lighting_settings
from smartpole.model.clock import now_ms
from smartpole.model.energy import GridFactor, Tariff
from smartpole.model.lighting import Group, Override, Selector
from smartpole.store.schema import tenants

__all__ = [
    "DEFAULT_GRID",
    "DEFAULT_TARIFF",
    "PARTS",
    "Body",
    "EnergySettings",
    "LightingStore",
    "StoredOverride",
]

PARTS = ("programs", "groups", "holidays", "calendar")
Body = dict[str, list[dict[str, Any]]]  # a lighting document: each part's items, in order
# China's national grid average, 2022 (see docs/lighting-energy.md): a tenant sets its own
DEFAULT_GRID = GridFactor(
    0.5366, "MEE/NBS 2024 announcement: 2022 national grid average emission factor"
)
# no price until a tenant sets its tariff: costs read 0 rather than a made-up price
DEFAULT_TARIFF: dict[str, Any] = {
    "name": "not set",
    "currency": "CNY",
    "periods": [{"kind": "flat", "start": "00:00", "end": "24:00", "price": 0}],
}


@dataclass(frozen=True, slots=True)
class StoredOverride:
    """An override as kept: ``group`` (or, for a rule's hold, the ``lamps`` listed) held at
    ``level`` from ``start_ms`` until ``until_ms`` (ended early by moving ``until_ms`` to the
    moment it was ended)."""

    id: int
    tenant_id: int
    group: str
    level: float
    start_ms: int
    until_ms: int
    reason: str
    by: str
    created: int
    lamps: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The name a plan's reason gives it."""
        return f"override-{self.id}"

    @property
    def held(self) -> Group | None:
        """The group of the lamps listed (a rule's hold), named after the override."""
        if not self.lamps:
            return None
        return Group(f"@{self.name}", Selector(lamps=frozenset(self.lamps)))

    def override(self) -> Override:
        """The value a plan is compiled with."""
        held = self.held
        group = self.group if held is None else held.name
        return Override(self.name, group, self.level, self.until_ms, self.start_ms)


@dataclass(frozen=True, slots=True)
class EnergySettings:
    """A tenant's time-of-use tariff (its document and its value) and grid emission factor."""

    tariff_body: dict[str, Any]
    tariff: Tariff
    grid: GridFactor
    updated: int = 0


def _override(row: Any) -> StoredOverride:
    m = row._mapping
    return StoredOverride(
        id=m["id"],
        tenant_id=m["tenant_id"],
        group=m["group_name"],
        level=m["level"],
        start_ms=m["start_ms"],
        until_ms=m["until_ms"],
        reason=m["reason"],
        by=m["by_whom"],
        created=m["created"],
        lamps=tuple(orjson.loads(m["lamps"])) if m["lamps"] else (),
    )


class LightingStore:
    """Each tenant's lighting document, overrides and energy settings."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def body(self, tenant_id: int) -> Body:
        """The tenant's document, every part present (empty when nothing is stored)."""
        with self.engine.connect() as conn:
            return self._read(conn, tenant_id)

    @staticmethod
    def _read(conn: Any, tenant_id: int) -> Body:
        q = (
            select(lighting_items.c.part, lighting_items.c.body)
            .where(lighting_items.c.tenant_id == tenant_id)
            .order_by(lighting_items.c.part, lighting_items.c.position)
        )
        out: Body = {part: [] for part in PARTS}
        for part, text in conn.execute(q):
            out.setdefault(part, []).append(orjson.loads(text))
        return out

    def change(
        self, tenant_id: int, edit: Callable[[Body], Body], check: Callable[[Body], Body]
    ) -> Body:
        """Apply ``edit`` to the tenant's document, ``check`` the whole (it raises InvalidInput,
        or returns the document to keep), write it and return it, in one transaction."""
        with self.engine.begin() as conn:
            # one writer per tenant at a time: the check sees the whole it replaces
            lock = select(tenants.c.id).where(tenants.c.id == tenant_id).with_for_update()
            conn.execute(lock)
            kept = check(edit(self._read(conn, tenant_id)))
            now = now_ms()
            conn.execute(delete(lighting_items).where(lighting_items.c.tenant_id == tenant_id))
            rows = [
                {
                    "tenant_id": tenant_id,
                    "part": part,
                    "name": str(item["name"]),
                    "position": i,
                    "body": orjson.dumps(item).decode(),
                    "updated": now,
                }
                for part in PARTS
                for i, item in enumerate(kept.get(part, []))
            ]
            if rows:
                conn.execute(insert(lighting_items), rows)
        return {part: kept.get(part, []) for part in PARTS}

    def tenants(self) -> list[tuple[int, str]]:
        """The tenants with a lighting document or an override: (id, name), by id."""
        having = select(lighting_items.c.tenant_id).union(select(lighting_overrides.c.tenant_id))
        q = select(tenants.c.id, tenants.c.name).where(tenants.c.id.in_(having))
        with self.engine.connect() as conn:
            return [(i, n) for i, n in conn.execute(q.order_by(tenants.c.id))]

    # -- overrides ------------------------------------------------------------------------
    def overrides(self, tenant_id: int, after_ms: int | None = None) -> list[StoredOverride]:
        """The tenant's overrides by id; only those running after ``after_ms`` if given."""
        q = select(lighting_overrides).where(lighting_overrides.c.tenant_id == tenant_id)
        if after_ms is not None:
            q = q.where(lighting_overrides.c.until_ms > after_ms)
        with self.engine.connect() as conn:
            return [_override(r) for r in conn.execute(q.order_by(lighting_overrides.c.id))]

    def override(self, tenant_id: int, override_id: int) -> StoredOverride:
        """One of the tenant's overrides; NotFound otherwise (another tenant's too)."""
        q = select(lighting_overrides).where(
            lighting_overrides.c.id == override_id, lighting_overrides.c.tenant_id == tenant_id
        )
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"override {override_id} not found", override_id=override_id)
        return _override(row)

    def add_override(
        self,
        tenant_id: int,
        group: str,
        level: float,
        start_ms: int,
        until_ms: int,
        reason: str,
        by: str,
        lamps: Sequence[str] = (),
    ) -> StoredOverride:
        """Keep a new override of a group, or of the ``lamps`` listed (the caller has checked
        it)."""
        values = {
            "tenant_id": tenant_id,
            "group_name": group,
            "lamps": orjson.dumps(list(lamps)).decode() if lamps else None,
            "level": level,
            "start_ms": start_ms,
            "until_ms": until_ms,
            "reason": reason,
            "by_whom": by,
            "created": now_ms(),
        }
        with self.engine.begin() as conn:
            new_id = conn.execute(
                insert(lighting_overrides).values(**values).returning(lighting_overrides.c.id)
            ).scalar_one()
        return self.override(tenant_id, new_id)

    def end_override(self, tenant_id: int, override_id: int, at_ms: int) -> StoredOverride:
        """End an override at ``at_ms`` (one already over stays as it was)."""
        found = self.override(tenant_id, override_id)
        if found.until_ms > at_ms:
            with self.engine.begin() as conn:
                conn.execute(
                    update(lighting_overrides)
                    .where(lighting_overrides.c.id == override_id)
                    .values(until_ms=max(at_ms, found.start_ms + 1))
                )
        return self.override(tenant_id, override_id)

    # -- energy settings --------------------------------------------------------------------
    def settings(self, tenant_id: int) -> EnergySettings:
        """The tenant's energy settings, or the defaults (no price, China's grid factor)."""
        q = select(lighting_settings).where(lighting_settings.c.tenant_id == tenant_id)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            return EnergySettings(DEFAULT_TARIFF, Tariff.parse(DEFAULT_TARIFF), DEFAULT_GRID)
        m = row._mapping
        body = orjson.loads(m["tariff"])
        grid = GridFactor(m["grid_kg_per_kwh"], m["grid_source"])
        return EnergySettings(body, Tariff.parse(body), grid, m["updated"])

    def put_settings(
        self, tenant_id: int, tariff_body: dict[str, Any], grid: GridFactor
    ) -> EnergySettings:
        """Replace the tenant's settings (the caller has checked the tariff)."""
        values = {
            "tariff": orjson.dumps(tariff_body).decode(),
            "grid_kg_per_kwh": grid.kg_per_kwh,
            "grid_source": grid.source,
            "updated": now_ms(),
        }
        with self.engine.begin() as conn:
            lock = select(tenants.c.id).where(tenants.c.id == tenant_id).with_for_update()
            conn.execute(lock)
            q = select(lighting_settings.c.tenant_id).where(
                lighting_settings.c.tenant_id == tenant_id
            )
            if conn.execute(q).first() is None:
                conn.execute(insert(lighting_settings).values(tenant_id=tenant_id, **values))
            else:
                conn.execute(
                    update(lighting_settings)
                    .where(lighting_settings.c.tenant_id == tenant_id)
                    .values(**values)
                )
        return self.settings(tenant_id)
