"""Registry commands: tenants, API keys, poles, devices, import and export."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from smartpole.cli.common import (
    DataDir,
    Db,
    JsonOut,
    Registry,
    city,
    command_registry,
    console,
    counted,
    moment,
    print_json,
    print_table,
)
from smartpole.model.devices import Device, fields_of
from smartpole.model.poles import Pole
from smartpole.model.types import DeviceKind, Role

tenant_app = typer.Typer(
    help="Tenants: the parties that own devices or use data.", no_args_is_help=True
)
apikey_app = typer.Typer(help="API keys of tenants.", no_args_is_help=True)
pole_app = typer.Typer(help="Poles.", no_args_is_help=True)
device_app = typer.Typer(help="Devices mounted on poles.", no_args_is_help=True)
Format = Literal["csv", "geojson"]


@tenant_app.command("add")
def tenant_add(
    name: Annotated[str, typer.Argument(help="Short unique name, e.g. telecom-a.")],
    title: Annotated[str, typer.Option(help="Display name.")] = "",
    operator: Annotated[bool, typer.Option("--operator", help="Sees the whole city.")] = False,
    timezone: Annotated[
        str | None,
        typer.Option(
            help="IANA time zone where its days start, e.g. Asia/Shanghai "
            "(default: SMARTPOLE_HUB_TIMEZONE).",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Create a tenant."""
    with command_registry(data_dir, db) as p:
        row = p.tenants.create(name, title, operator, timezone)
    print_json(row) if json else console.print(f"tenant {row['name']} id {row['id']}")


@tenant_app.command("list")
def tenant_list(data_dir: DataDir = None, db: Db = None, json: JsonOut = False) -> None:
    """List tenants."""
    with command_registry(data_dir, db) as p:
        rows = p.tenants.list(city(p.tenants))
    if json:
        print_json(rows)
        return
    print_table(
        counted(len(rows), len(rows), "tenant"),
        ("id", "name", "title", "operator", "created"),
        ((r["id"], r["name"], r["title"], r["is_operator"], moment(r["created"])) for r in rows),
    )


def _audit_key(p: Registry, row: dict[str, Any]) -> None:
    """Record a key issued from the command line in the audit log (never its secret)."""
    from smartpole.cli.users import cli_actor
    from smartpole.registry.audit import AuditLog

    AuditLog(p.db.engine).record(
        cli_actor(row["tenant_id"]),
        "key.create",
        target_type="key",
        target_id=row["id"],
        detail={"role": row["role"], "name": row["name"], "prefix": row["prefix"]},
    )


@apikey_app.command("create")
def apikey_create(
    tenant: Annotated[str, typer.Option(help="Tenant name.")],
    role: Annotated[Role, typer.Option(help="admin, operator or viewer.")],
    name: Annotated[str, typer.Option(help="What the key is for.")] = "",
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Issue an API key; the secret is printed once."""
    with command_registry(data_dir, db) as p:
        if tenant == "city":
            city(p.tenants)
        row, secret = p.tenants.create_key(p.tenants.by_name(tenant)["id"], role, name)
        _audit_key(p, row)
    if json:
        print_json({**row, "key": secret})
    else:
        console.print(f"API key {row['id']} ({role}) for {tenant}:")
        typer.echo(secret)


@pole_app.command("add")
def pole_add(
    code: Annotated[str, typer.Option(help="Unique code, district-road-number.")],
    lat: Annotated[float, typer.Option(help="Latitude (WGS84).")],
    lon: Annotated[float, typer.Option(help="Longitude (WGS84).")],
    name: Annotated[str, typer.Option()] = "",
    height: Annotated[float | None, typer.Option(help="Height in metres.")] = None,
    district: Annotated[str, typer.Option()] = "",
    road: Annotated[str, typer.Option()] = "",
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Add a pole."""
    with command_registry(data_dir, db) as p:
        row = p.assets.create_pole(
            city(p.tenants),
            code=code,
            lat=lat,
            lon=lon,
            name=name,
            height_m=height,
            district=district,
            road=road,
        )
    print_json(pole_record(row)) if json else console.print(f"pole {row.code} id {row.id}")


@device_app.command("add")
def device_add(
    kind: Annotated[DeviceKind, typer.Option(help="What the device is.")],
    pole: Annotated[str | None, typer.Option(help="Code of the pole it is mounted on.")] = None,
    owner: Annotated[str | None, typer.Option(help="Owner tenant (default: city).")] = None,
    name: Annotated[str | None, typer.Option(help="Unique name (default kind-id).")] = None,
    port: Annotated[int | None, typer.Option(help="Gateway port.")] = None,
    model: Annotated[str, typer.Option()] = "",
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Register a device; prints its id and access token (shown once)."""
    with command_registry(data_dir, db) as p:
        who = city(p.tenants)
        pole_id = p.assets.pole_by_code(who, pole).id if pole else None
        device, token = p.assets.create_device(
            who, kind, name=name, pole_id=pole_id, owner=owner, port=port, model=model
        )
        row = device_record(p, device)
    if json:
        print_json({**row, "token": token})
    else:
        console.print(f"device {row['name']} id {row['id']} token:")
        typer.echo(token)


@device_app.command("list")
def device_list(
    kind: Annotated[str | None, typer.Option()] = None,
    owner: Annotated[str | None, typer.Option()] = None,
    pole: Annotated[str | None, typer.Option(help="Pole code.")] = None,
    district: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option()] = 100,
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """List devices, with whether each is online."""
    with command_registry(data_dir, db) as p:
        who = city(p.tenants)
        pole_id = p.assets.pole_by_code(who, pole).id if pole else None
        devices, total = p.assets.list_devices(
            who, limit, 0, kind=kind, owner=owner, pole_id=pole_id, district=district
        )
        rows = [device_record(p, d) for d in devices]
    if json:
        print_json({"items": rows, "total": total})
        return
    print_devices(counted(len(rows), total, "device"), rows)


def pole_record(pole: Pole) -> dict[str, Any]:
    """A pole as the command line shows it: its fields, and the devices on it when it was
    read alone (not in a listing)."""
    record = asdict(pole)
    if pole.devices is None:
        del record["devices"]
    return record


def device_record(p: Registry, device: Device) -> dict[str, Any]:
    """A device as the command line shows it: the registry's fields and whether it is
    online."""
    return {**fields_of(device), "online": p.is_online(device.id, device.last_seen)}


def kind_label(row: dict[str, Any]) -> str:
    """A device's kind, with the profile a gateway created a generic one with:
    ``generic (Thermometer)``."""
    return f"{row['kind']} ({row['profile']})" if row.get("profile") else str(row["kind"])


def print_devices(title: str, rows: list[dict[str, Any]]) -> None:
    """A table of devices (see :func:`device_record`)."""
    print_table(
        title,
        ("id", "name", "kind", "owner", "pole", "port", "online", "last seen"),
        (
            (
                r["id"],
                r["name"],
                kind_label(r),
                r["owner"],
                r["pole"],
                r["port"],
                r["online"],
                moment(r["last_seen"]),
            )
            for r in rows
        ),
    )


@device_app.command("token")
def device_token(
    device_id: Annotated[int, typer.Argument(help="Device id.")],
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Rotate a device's access token and print the new one."""
    with command_registry(data_dir, db) as p:
        token = p.assets.rotate_token(city(p.tenants), device_id)
    print_json({"device_id": device_id, "token": token}) if json else typer.echo(token)


def import_cmd(
    file: Annotated[
        Path, typer.Argument(help="CSV or GeoJSON inventory.", exists=True, dir_okay=False)
    ],
    format: Annotated[
        Format | None,
        typer.Option(help="csv or geojson (default: from the file name)."),
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option(help="Import the valid rows even if some are rejected.")
    ] = False,
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Import poles; idempotent by pole code, all valid rows in one transaction or none."""
    from rich.progress import Progress

    from smartpole.registry.inventory import import_poles

    fmt: Format = format or ("geojson" if file.suffix.lower() in (".geojson", ".json") else "csv")
    with command_registry(data_dir, db) as p:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(f"importing {file.name}", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = import_poles(
                p.assets,
                city(p.tenants),
                file,
                fmt,
                skip_invalid=skip_invalid,
                progress=progress,
            )
    if json:
        print_json(asdict(report))
    else:
        console.print(
            f"created {report.created}, updated {report.updated}, "
            f"unchanged {report.unchanged}, rejected {len(report.rejected)}"
            + ("" if report.applied else " — nothing applied")
        )
        for r in report.rejected[:50]:
            console.print(f"  line {r.line}: {r.reason}")
        for w in report.warnings:
            console.print(f"  warning: {w}")
    if report.rejected and not report.applied:
        raise typer.Exit(1)


def export_cmd(
    format: Annotated[Format, typer.Option(help="csv or geojson.")] = "geojson",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default stdout).")
    ] = None,
    district: Annotated[str | None, typer.Option()] = None,
    data_dir: DataDir = None,
    db: Db = None,
) -> None:
    """Export poles as CSV or GeoJSON (re-importable as is)."""
    from smartpole.registry.assets import PoleFilter
    from smartpole.registry.inventory import export_poles

    with command_registry(data_dir, db) as p:
        text = export_poles(p.assets, city(p.tenants), format, PoleFilter(district=district))
    if output:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {output}")
    else:
        typer.echo(text, nl=False)


def register(app: typer.Typer) -> None:
    """Add these commands to the main app."""
    app.add_typer(tenant_app, name="tenant")
    app.add_typer(apikey_app, name="apikey")
    app.add_typer(pole_app, name="pole")
    app.add_typer(device_app, name="device")
    app.command("import")(import_cmd)
    app.command("export")(export_cmd)
