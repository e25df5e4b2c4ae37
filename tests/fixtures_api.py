"""Fixtures for API tests: a running platform, an in-process HTTP client, seeded tenants."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from smartpole.api import Services, bind, create_app
from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.model.types import Role
from smartpole.store import Database


@asynccontextmanager
async def started(database: Database, tmp_path: Path, **settings: Any) -> AsyncIterator[Platform]:
    """A started platform on the test's database, its built-in MQTT endpoint on a free port,
    batches committed after 2 ms, with ``settings`` over these; stopped at the end."""
    given: dict[str, Any] = {"data_dir": tmp_path, "batch_age_ms": 2, "mqtt_port": 0}
    p = Platform(Settings(**{**given, **settings}), db=database)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()
        gc.collect()  # surface a leaked connection in the test that leaked it


@pytest.fixture
async def platform(database: Database, tmp_path: Path) -> AsyncIterator[Platform]:
    """A started platform on the test's database (both engines)."""
    async with started(database, tmp_path) as p:
        yield p


# One app per test process (and map-tile setting, the one setting an app is built with), bound
# to each test's services in turn: FastAPI's first request on a new app lays out all ~190
# routes again, most of a second of every API test.
_APPS: dict[str | None, FastAPI] = {}


def app_serving(services: Services) -> FastAPI:
    """The app of this test process, serving ``services`` (as ``create_app(services)`` would)."""
    app = _APPS.get(services.settings.map_tiles)
    if app is None:
        app = _APPS[services.settings.map_tiles] = create_app(services)
    else:
        bind(app, services)
    return app


@pytest.fixture
async def client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process (ASGI), no auth header set."""
    app = app_serving(platform.api_services())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://smartpole.test") as c:
        yield c


@dataclass
class City:
    """Tenants with keys: the city operator and two ordinary tenants."""

    ids: dict[str, int] = field(default_factory=dict)
    keys: dict[tuple[str, Role], str] = field(default_factory=dict)

    def auth(self, tenant: str, role: Role = Role.ADMIN) -> dict[str, str]:
        """The header that authenticates as ``tenant`` with ``role``."""
        return {"Authorization": f"Bearer {self.keys[(tenant, role)]}"}


@pytest.fixture
def city(platform: Platform) -> City:
    """The city operator ``city``, a ``lighting`` department and a ``telecom`` operator."""
    out = City()
    for name, is_operator in (("city", True), ("lighting", False), ("telecom", False)):
        row = platform.tenants.create(name, name.title(), is_operator)
        out.ids[name] = row["id"]
        for role in Role:
            out.keys[(name, role)] = platform.tenants.create_key(row["id"], role)[1]
    return out


async def make_pole(client: httpx.AsyncClient, city: City, code: str, **extra: Any) -> int:
    """Create a pole as the city operator and return its id."""
    body = {"code": code, "lat": 22.54, "lon": 114.05, "district": "Futian", **extra}
    r = await client.post("/api/poles", json=body, headers=city.auth("city"))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def make_device(
    client: httpx.AsyncClient,
    city: City,
    tenant: str,
    kind: str,
    pole_id: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Register a device as ``tenant``'s admin; returns the body (with ``token``)."""
    body = {"kind": kind, "pole_id": pole_id, **extra}
    r = await client.post("/api/devices", json=body, headers=city.auth(tenant))
    assert r.status_code == 201, r.text
    return dict(r.json())


async def grant_mount(
    client: httpx.AsyncClient, city: City, pole_id: int, holder: str, tenant: str
) -> int:
    """``holder`` (a tenant with a device on the pole) lets ``tenant`` mount devices on it;
    returns the grant's id."""
    r = await client.post(
        f"/api/poles/{pole_id}/mount-grants", json={"tenant": tenant}, headers=city.auth(holder)
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])
