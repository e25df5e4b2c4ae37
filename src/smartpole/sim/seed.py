"""Seed a platform with a planned district: tenants, API keys, users, poles and devices."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from sqlalchemy import func, insert, select

from smartpole.errors import NotFound
from smartpole.model.clock import now_ms
from smartpole.model.types import Role
from smartpole.registry.access import Principal, Tenants, new_secret
from smartpole.registry.assets import Assets
from smartpole.registry.users import Users
from smartpole.sim.district import TENANTS, PlannedPole, plan_district
from smartpole.store.schema import poles

__all__ = ["Seeded", "city_principal", "demo_lighting", "lighting_principal", "seed_district"]


@dataclass(slots=True)
class Seeded:
    """What seeding created: API keys and the console's user by tenant, device tokens by
    device name."""

    poles: int = 0
    devices: int = 0
    keys: dict[str, dict[str, str]] = field(default_factory=dict)
    users: dict[str, dict[str, str]] = field(default_factory=dict)  # {"name", "password", "role"}
    tokens: dict[str, str] = field(default_factory=dict)
    plan: list[PlannedPole] = field(default_factory=list)


def city_principal(tenants: Tenants, name: str = "city") -> Principal:
    """The city operator tenant as an admin principal, created on first use (for the CLI)."""
    try:
        row = tenants.by_name(name)
    except NotFound:
        row = tenants.create(name, "City operator 城市运营中心", is_operator=True)
    return Principal(row["id"], row["name"], Role.ADMIN, bool(row["is_operator"]))


def lighting_principal(tenants: Tenants, name: str = "lighting") -> Principal:
    """The lighting department (the lamps' owner in a seeded district) as an operator."""
    row = tenants.by_name(name)
    return Principal(row["id"], row["name"], Role.OPERATOR, bool(row["is_operator"]))


def demo_lighting() -> bytes:
    """The demo's lighting document (YAML): programs, groups and a calendar for Futian."""
    return (resources.files("smartpole.sim") / "lighting_demo.yaml").read_bytes()


def seed_district(
    tenants: Tenants,
    assets: Assets,
    n_poles: int = 500,
    seed: int = 1,
    district: str = "Futian",
    users: Users | None = None,
) -> Seeded:
    """Create the district's tenants, keys, poles and devices unless it already has poles; with
    ``users``, also one user per tenant, named like it, with a random password (the city
    operator's an admin, the others operators)."""
    out = Seeded()
    who = city_principal(tenants)
    with assets.engine.connect() as conn:
        existing = conn.execute(select(func.count()).select_from(poles)).scalar_one()
    if existing:
        return out
    for name, title, is_operator in TENANTS:
        try:
            row = tenants.by_name(name)
        except NotFound:
            row = tenants.create(name, title, is_operator)
        roles = (Role.ADMIN, Role.VIEWER) if is_operator else (Role.VIEWER,)
        out.keys[name] = {str(r): tenants.create_key(row["id"], r, "demo")[1] for r in roles}
        if users is not None:
            role = Role.ADMIN if is_operator else Role.OPERATOR
            password = new_secret(12)
            users.create(row["id"], name, role, password)
            out.users[name] = {"name": name, "password": password, "role": str(role)}
    plan = plan_district(n_poles, seed, district)
    created = now_ms()
    rows: list[dict[str, Any]] = [
        {
            "code": p.code,
            "name": p.name,
            "lat": p.lat,
            "lon": p.lon,
            "height_m": p.height_m,
            "district": p.district,
            "road": p.road,
            "created": created,
        }
        for p in plan
    ]
    with assets.engine.begin() as conn:
        conn.execute(insert(poles), rows)
        ids = {code: pid for code, pid in conn.execute(select(poles.c.code, poles.c.id))}
    specs = [
        {
            "name": f"{p.code}-{d.kind}",
            "kind": d.kind,
            "owner": d.owner,
            "pole_id": ids[p.code],
            "port": d.port,
        }
        for p in plan
        for d in p.devices
    ]
    for _, name, token in assets.create_devices(who, specs):
        out.tokens[name] = token
    out.poles, out.devices, out.plan = len(plan), len(specs), plan
    return out
