"""Register a planned district through the platform's REST API and return its fleet.

What an operator's script would do with an admin key of the city operator: create the owner
tenants that are missing, import the poles in one request (idempotent by code), register each
device with a token of its own choosing. A device that already exists (an earlier, interrupted
run) gets a fresh token through ``POST /api/devices/{id}/credentials``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import secrets
from collections.abc import Callable

import httpx

from smartpole.sim.district import TENANTS, PlannedPole
from smartpole.sim.fleet import Fleet, fleet_from_plan

__all__ = ["ProvisionError", "provision"]

CONCURRENCY = 8


class ProvisionError(RuntimeError):
    """The platform refused part of the district."""


def _check(r: httpx.Response, what: str) -> None:
    if r.status_code >= 400:
        raise ProvisionError(f"{what}: HTTP {r.status_code} {r.text[:300]}")


def _csv(plan: list[PlannedPole]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["code", "name", "lat", "lon", "height_m", "district", "road"])
    for p in plan:
        w.writerow([p.code, p.name, p.lat, p.lon, p.height_m, p.district, p.road])
    return out.getvalue().encode()


async def provision(
    url: str,
    api_key: str,
    plan: list[PlannedPole],
    seed: int,
    district: str,
    progress: Callable[[int, int], None] | None = None,
) -> Fleet:
    """Create ``plan`` on the platform at ``url``; the fleet with every device's token."""
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        r = await http.get("/api/me")
        _check(r, "the API key")
        if not (r.json().get("is_operator") and r.json().get("role") == "admin"):
            raise ProvisionError("creating a district needs an admin key of the city operator")
        r = await http.get("/api/tenants")
        _check(r, "listing tenants")
        have = {t["name"] for t in r.json()}
        for name, title, is_operator in TENANTS:
            if name not in have:
                body = {"name": name, "title": title, "is_operator": is_operator}
                _check(await http.post("/api/tenants", json=body), f"creating tenant {name}")
        r = await http.post(
            "/api/poles/import",
            params={"format": "csv"},
            content=_csv(plan),
            headers={"Content-Type": "text/csv"},
        )
        _check(r, "importing poles")
        tokens: dict[str, str] = {}
        specs = [(p, d) for p in plan for d in p.devices]
        done = 0
        gate = asyncio.Semaphore(CONCURRENCY)

        async def register(pole: PlannedPole, kind: str, owner: str, port: int) -> None:
            nonlocal done
            name = f"{pole.code}-{kind}"
            token = secrets.token_urlsafe(15)
            body = {
                "kind": kind,
                "name": name,
                "pole": pole.code,
                "owner": owner,
                "port": port,
                "token": token,
            }
            async with gate:
                r = await http.post("/api/devices", json=body)
                if r.status_code == 409:  # registered by an earlier run: give it a new token
                    token = await _rotate(http, pole.code, name)
                else:
                    _check(r, f"registering {name}")
            tokens[name] = token
            done += 1
            if progress is not None:
                progress(done, len(specs))

        await asyncio.gather(*(register(p, str(d.kind), d.owner, d.port) for p, d in specs))
    return fleet_from_plan(plan, tokens, seed, district)


async def _rotate(http: httpx.AsyncClient, code: str, name: str) -> str:
    r = await http.get(f"/api/poles/by-code/{code}")
    _check(r, f"reading pole {code}")
    device = next((d for d in r.json().get("devices", []) if d["name"] == name), None)
    if device is None:
        raise ProvisionError(f"{name}: name or port taken by another device on pole {code}")
    token = secrets.token_urlsafe(15)
    r = await http.post(f"/api/devices/{device['id']}/credentials", json={"token": token})
    _check(r, f"rotating the token of {name}")
    return token
