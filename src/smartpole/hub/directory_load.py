"""The hub's directory read from the store: the registry's devices, poles, tags and tenants."""

from __future__ import annotations

from collections import defaultdict

import orjson
from sqlalchemy import Engine, select

from smartpole.hub.directory import DeviceInfo, Directory, PoleInfo, grid_cell
from smartpole.store.schema import attributes, devices, poles, tenants

__all__ = ["load_directory"]


def load_directory(engine: Engine) -> Directory:
    """Read the whole registry (a few queries; tens of thousands of rows at most)."""
    d = Directory()
    with engine.connect() as conn:
        tag_rows = conn.execute(
            select(attributes.c.device_id, attributes.c.value).where(
                attributes.c.scope == "server", attributes.c.key == "tags"
            )
        )
        tags: dict[int, frozenset[str]] = {}
        for device_id, value in tag_rows:
            parsed = orjson.loads(value)
            if isinstance(parsed, list):
                tags[device_id] = frozenset(str(t) for t in parsed)
            elif isinstance(parsed, str):
                tags[device_id] = frozenset(t.strip() for t in parsed.split(",") if t.strip())
        c = devices.c
        q = select(c.id, c.kind, c.owner_id, c.pole_id, c.last_seen)
        on_pole: dict[int, list[int]] = defaultdict(list)
        by_kind: dict[str, list[int]] = defaultdict(list)
        for device_id, kind, owner, pole_id, last_seen in conn.execute(q):
            d.devices[device_id] = DeviceInfo(
                device_id, kind, owner, pole_id, tags.get(device_id, frozenset())
            )
            if last_seen is not None:
                d.last_seen[device_id] = last_seen
            by_kind[kind].append(device_id)
            if pole_id is not None:
                on_pole[pole_id].append(device_id)
        d.on_pole, d.by_kind = dict(on_pole), dict(by_kind)
        q2 = select(poles.c.id, poles.c.code, poles.c.lat, poles.c.lon, poles.c.district)
        grid: dict[tuple[int, int], list[int]] = defaultdict(list)
        for pid, code, lat, lon, district in conn.execute(q2):
            d.poles[pid] = PoleInfo(pid, code, lat, lon, district)
            d.pole_codes[code] = pid
            grid[grid_cell(lat, lon)].append(pid)
        d.grid = dict(grid)
        rows = conn.execute(select(tenants.c.id, tenants.c.name, tenants.c.is_operator))
        ops = set()
        for tid, name, is_operator in rows:
            d.tenant_ids[name] = tid
            if is_operator:
                ops.add(tid)
        d.operators = frozenset(ops)
    return d
