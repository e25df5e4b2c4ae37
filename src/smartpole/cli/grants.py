"""Sharing commands: gateway bindings and mount grants between tenants of a pole.

The command line acts for the city operator, or with ``--by`` for a tenant (recorded as
granted or revoked by that tenant, with no API key: the command line).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from smartpole.cli.common import (
    DataDir,
    Db,
    JsonOut,
    city,
    command_platform,
    console,
    counted,
    moment,
    print_json,
    print_table,
)
from smartpole.errors import NotFound
from smartpole.model.grants import Binding, MountGrant, Stamp

if TYPE_CHECKING:
    from smartpole.app import Platform
    from smartpole.registry.access import Principal

binding_app = typer.Typer(
    help="Gateway bindings: a device's owner lets another tenant's gateway speak for it.",
    no_args_is_help=True,
)
grant_app = typer.Typer(
    help="Mount grants: a pole's holder lets another tenant mount devices on it.",
    no_args_is_help=True,
)
By = Annotated[
    str | None,
    typer.Option("--by", help="Act as this tenant (its admin); default: the city operator."),
]


def _principal(p: Platform, by: str | None) -> Principal:
    from smartpole.model.types import Role
    from smartpole.registry.access import Principal

    if by is None:
        return city(p.tenants)
    row = p.tenants.by_name(by)
    return Principal(row["id"], row["name"], Role.ADMIN, bool(row["is_operator"]))


def _when(stamp: Stamp | None) -> str:
    return "" if stamp is None else f"{stamp.tenant} at {moment(stamp.at)}"


def _print_bindings(rows: list[Binding]) -> None:
    print_table(
        counted(len(rows), len(rows), "binding"),
        ("id", "device", "owner", "gateway", "gateway owner", "granted", "revoked"),
        (
            (
                b.id,
                b.device,
                b.device_owner,
                b.gateway,
                b.gateway_owner,
                _when(b.granted),
                _when(b.revoked),
            )
            for b in rows
        ),
    )


def _print_grants(rows: list[MountGrant]) -> None:
    print_table(
        counted(len(rows), len(rows), "mount grant"),
        ("id", "pole", "tenant", "granted", "revoked"),
        ((g.id, g.pole, g.tenant, _when(g.granted), _when(g.revoked)) for g in rows),
    )


@binding_app.command("add")
def binding_add(
    device: Annotated[str, typer.Argument(help="Name of the device to bind.")],
    gateway: Annotated[str, typer.Argument(help="Name of a gateway on the device's pole.")],
    by: By = None,
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Let a gateway on the device's pole speak for the device."""
    with command_platform(data_dir, db) as p:
        ref = p.assets.device_by_name(device)
        if ref is None:
            raise NotFound(f"device {device!r} not found")
        found = p.grants.bind(_principal(p, by), ref.id, gateway)
    print_json(asdict(found)) if json else console.print(f"binding {found.id}")


@binding_app.command("list")
def binding_list(
    device: Annotated[str | None, typer.Option(help="Only this device's (by name).")] = None,
    active: Annotated[bool | None, typer.Option("--active/--revoked", help="Filter.")] = None,
    by: By = None,
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """List bindings (all, or those a tenant gave or received with --by)."""
    with command_platform(data_dir, db) as p:
        ref = p.assets.device_by_name(device) if device else None
        if device and ref is None:
            raise NotFound(f"device {device!r} not found")
        rows = p.grants.bindings(
            _principal(p, by), device_id=ref.id if ref else None, active=active
        )
    print_json([asdict(b) for b in rows]) if json else _print_bindings(rows)


@binding_app.command("revoke")
def binding_revoke(
    binding_id: Annotated[int, typer.Argument(help="Binding id.")],
    by: By = None,
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Revoke a binding (a running server's gateways stop within 30 s in broker mode, and at
    their next connection to the built-in endpoint)."""
    with command_platform(data_dir, db) as p:
        found = p.grants.unbind(_principal(p, by), binding_id)
    print_json(asdict(found)) if json else console.print(f"binding {found.id} revoked")


@grant_app.command("add")
def grant_add(
    pole: Annotated[str, typer.Argument(help="Code of the pole.")],
    tenant: Annotated[str, typer.Argument(help="The tenant that may mount devices on it.")],
    by: By = None,
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Let a tenant mount its devices on a pole."""
    with command_platform(data_dir, db) as p:
        found = p.grants.grant_mount(_principal(p, by), pole, tenant)
    print_json(asdict(found)) if json else console.print(f"mount grant {found.id}")


@grant_app.command("list")
def grant_list(
    active: Annotated[bool | None, typer.Option("--active/--revoked", help="Filter.")] = None,
    by: By = None,
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """List mount grants (all, or those a tenant gave or received with --by)."""
    with command_platform(data_dir, db) as p:
        rows = p.grants.mount_grants(_principal(p, by), active=active)
    print_json([asdict(g) for g in rows]) if json else _print_grants(rows)


@grant_app.command("revoke")
def grant_revoke(
    grant_id: Annotated[int, typer.Argument(help="Mount grant id.")],
    by: By = None,
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Revoke a mount grant; devices mounted under it stay."""
    with command_platform(data_dir, db) as p:
        found = p.grants.revoke_mount(_principal(p, by), grant_id)
    print_json(asdict(found)) if json else console.print(f"mount grant {found.id} revoked")


def register(app: typer.Typer) -> None:
    """Add the sharing commands to the ``smartpole`` app."""
    app.add_typer(binding_app, name="binding")
    app.add_typer(grant_app, name="mount-grant")
