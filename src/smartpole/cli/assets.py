"""What an operator looks up and removes: ``tenant show``, ``apikey list|revoke``,
``pole list|show|delete`` and ``device show|delete|kind`` (the groups live in ``cli.registry``).

Each list and show prints a table or a record, or with ``--json`` the same fields as JSON; a
delete asks first unless ``--yes``. They act as the city operator, through the registry.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer

from smartpole.cli.common import (
    DataDir,
    Db,
    JsonOut,
    Registry,
    Yes,
    city,
    command_registry,
    console,
    counted,
    moment,
    print_json,
    print_record,
    print_table,
)
from smartpole.cli.registry import (
    apikey_app,
    device_app,
    device_record,
    kind_label,
    pole_app,
    pole_record,
    print_devices,
    tenant_app,
)
from smartpole.errors import NotFound
from smartpole.model.devices import Device
from smartpole.model.types import DeviceKind

__all__ = ["api_key_record", "find_device"]

DeviceName = Annotated[str, typer.Argument(help="Device name (or id).", show_default=False)]
PoleCode = Annotated[str, typer.Argument(help="Pole code.", show_default=False)]


def _confirm(question: str, yes: bool) -> None:
    if not yes and not typer.confirm(question, err=True):
        console.print("nothing deleted")
        raise typer.Exit(1)


# -- tenants ------------------------------------------------------------------------------
@tenant_app.command("show")
def tenant_show(
    name: Annotated[str, typer.Argument(help="Tenant name.", show_default=False)],
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Show a tenant: its title, whether it is the operator, its time zone, its devices and API
    keys."""
    with command_registry(data_dir, db) as p:
        who = city(p.tenants)
        row = p.tenants.by_name(name)
        _, devices = p.assets.list_devices(who, 0, owner=row["name"])
        keys = p.tenants.list_keys(row["id"])
    record = {
        **row,
        "devices": devices,
        "api_keys": sum(1 for k in keys if k["revoked"] is None),
    }
    if json:
        print_json(record)
        return
    print_record(
        f"tenant {row['name']}",
        {
            "id": row["id"],
            "title": row["title"],
            "operator": bool(row["is_operator"]),
            "time zone": row["timezone"],
            "created": moment(row["created"]),
            "devices": devices,
            "API keys": record["api_keys"],
        },
    )


# -- API keys -----------------------------------------------------------------------------
def api_key_record(key: dict[str, Any], tenant: str) -> dict[str, Any]:
    """An API key as the command line shows it: never its secret, only the start of it
    (``sp_<prefix>_…``) by which its holder recognises it."""
    return {**key, "tenant": tenant, "hint": f"sp_{key['prefix']}_…"}


@apikey_app.command("list")
def apikey_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    revoked: Annotated[bool, typer.Option("--revoked", help="Include revoked keys.")] = False,
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """List API keys (never their secrets), by tenant."""
    with command_registry(data_dir, db) as p:
        tenants = [p.tenants.by_name(tenant)] if tenant else p.tenants.list(city(p.tenants))
        rows = [
            api_key_record(k, t["name"])
            for t in tenants
            for k in p.tenants.list_keys(t["id"])
            if revoked or k["revoked"] is None
        ]
    if json:
        print_json(rows)
        return
    print_table(
        counted(len(rows), len(rows), "API key"),
        ("id", "tenant", "role", "name", "key", "created", "revoked"),
        (
            (
                r["id"],
                r["tenant"],
                r["role"],
                r["name"],
                r["hint"],
                moment(r["created"]),
                moment(r["revoked"]),
            )
            for r in rows
        ),
    )


@apikey_app.command("revoke")
def apikey_revoke(
    key_id: Annotated[int, typer.Argument(help="API key id (see apikey list).")],
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Revoke an API key: it stops working at once."""
    with command_registry(data_dir, db) as p:
        key = p.tenants.get_key(key_id)
        p.tenants.revoke_key(key["tenant_id"], key_id)
        row = api_key_record(p.tenants.get_key(key_id), p.tenants.get(key["tenant_id"])["name"])
    if json:
        print_json(row)
    else:
        console.print(f"API key {key_id} ({row['hint']}) of {row['tenant']} revoked")


# -- poles --------------------------------------------------------------------------------
POLE_COLUMNS = ("code", "name", "district", "road", "lat", "lon", "height_m", "installed")


@pole_app.command("list")
def pole_list(
    district: Annotated[str | None, typer.Option(help="Only this district's.")] = None,
    road: Annotated[str | None, typer.Option(help="Only this road's.")] = None,
    prefix: Annotated[str | None, typer.Option(help="Only codes starting so.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """List poles by code."""
    from smartpole.registry.assets import PoleFilter

    with command_registry(data_dir, db) as p:
        f = PoleFilter(district=district, road=road, code_prefix=prefix)
        rows, total = p.assets.list_poles(city(p.tenants), f, limit=limit)
    if json:
        print_json({"items": [pole_record(r) for r in rows], "total": total})
        return
    print_table(
        counted(len(rows), total, "pole"),
        ("id", *POLE_COLUMNS),
        ((r.id, *(getattr(r, c) for c in POLE_COLUMNS)) for r in rows),
    )


@pole_app.command("show")
def pole_show(
    code: PoleCode, data_dir: DataDir = None, db: Db = None, json: JsonOut = False
) -> None:
    """Show a pole and the devices mounted on it."""
    with command_registry(data_dir, db) as p:
        who = city(p.tenants)
        pole = p.assets.pole_by_code(who, code)
        mounted = [device_record(p, p.assets.get_device(who, d.id)) for d in pole.devices or ()]
    if json:
        print_json({**pole_record(pole), "devices": mounted})
        return
    print_record(f"pole {pole.code}", {k: getattr(pole, k) for k in ("id", *POLE_COLUMNS[1:])})
    print_devices(counted(len(mounted), len(mounted), "device") + " mounted", mounted)


@pole_app.command("delete")
def pole_delete(
    code: PoleCode,
    force: Annotated[
        bool, typer.Option("--force", help="Delete it with devices mounted (they are unmounted).")
    ] = False,
    yes: Yes = False,
    data_dir: DataDir = None,
    db: Db = None,
) -> None:
    """Delete a pole; refused while devices are mounted on it, unless --force."""
    from smartpole.errors import Conflict

    with command_registry(data_dir, db) as p:
        pole = p.assets.pole_by_code(city(p.tenants), code)
        mounted = len(pole.devices or ())
        what = f" and unmount the {mounted} on it" if mounted and force else ""
        if not mounted or force:
            _confirm(f"delete pole {code}{what}?", yes)
        try:
            p.assets.delete_pole(city(p.tenants), pole.id, force=force)
        except Conflict as err:
            raise Conflict(f"{err.detail}; unmount them, or give --force") from err
    console.print(f"pole {code} deleted" + (f"; unmounted {mounted}" if mounted else ""))


# -- devices ------------------------------------------------------------------------------
def find_device(p: Registry, device: str) -> Device:
    """A device by name, or else by id when ``device`` is a number."""
    ref = p.assets.device_by_name(device)
    if ref is None and device.isdigit():
        return p.assets.get_device(city(p.tenants), int(device))
    if ref is None:
        raise NotFound(f"device {device!r} not found", name=device)
    return p.assets.get_device(city(p.tenants), ref.id)


@device_app.command("show")
def device_show(
    device: DeviceName, data_dir: DataDir = None, db: Db = None, json: JsonOut = False
) -> None:
    """Show a device: kind, owner, pole and port, whether it is online, its token's hint."""
    with command_registry(data_dir, db) as p:
        row = device_record(p, find_device(p, device))
    if json:
        print_json(row)
        return
    shown = ("id", "model", "owner", "pole", "port", "online", "token_hint")
    print_record(
        f"device {row['name']}",
        {
            "kind": kind_label(row),
            **{k: row[k] for k in shown},
            "last seen": moment(row["last_seen"]),
            "created": moment(row["created"]),
        },
    )


@device_app.command("delete")
def device_delete(
    device: DeviceName, yes: Yes = False, data_dir: DataDir = None, db: Db = None
) -> None:
    """Delete a device and its attributes (its readings age out by retention)."""
    with command_registry(data_dir, db) as p:
        found = find_device(p, device)
        where = f" on pole {found.pole}" if found.pole else ""
        _confirm(f"delete device {found.name} ({found.kind}{where})?", yes)
        p.assets.delete_device(city(p.tenants), found.id)
    console.print(f"device {found.name} deleted")


@device_app.command("kind")
def device_kind(
    device: DeviceName,
    kind: Annotated[DeviceKind, typer.Argument(help="Its real kind.")],
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Give a generic device (created by a gateway for a type smartpole does not know) its
    real kind."""
    with command_registry(data_dir, db) as p:
        found = find_device(p, device)
        changed = p.assets.set_kind(city(p.tenants), found.id, kind)
    if json:
        print_json(asdict(changed))
    else:
        console.print(f"device {changed.name} is now a {changed.kind}")
