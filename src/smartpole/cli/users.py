"""User commands (people who log in to the console) and the audit log.

Every change made here is in the audit log as the command line's (``cli``), named by the
operating-system user who ran it. A password is read from the terminal (asked twice, never
echoed) or from the first line of stdin with ``--password-stdin``; it is never printed.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from smartpole.cli.common import (
    DataDir,
    Db,
    JsonOut,
    command_registry,
    console,
    counted,
    fail,
    moment,
    print_json,
    print_table,
)
from smartpole.errors import InvalidInput

if TYPE_CHECKING:
    from smartpole.model.users import Actor, User
    from smartpole.registry.access import Tenants
    from smartpole.registry.audit import AuditLog
    from smartpole.registry.users import Users

__all__ = ["cli_actor", "register"]

user_app = typer.Typer(help="Users: people who log in to the console.", no_args_is_help=True)
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of stdin (scripts)."
    ),
]
_AGO = re.compile(r"^(\d+)\s*([mhd])$")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass(frozen=True, slots=True)
class _People:
    tenants: Tenants
    users: Users
    audit: AuditLog


@contextmanager
def _people(data_dir: DataDir, db: Db) -> Iterator[_People]:
    from smartpole.registry.audit import AuditLog
    from smartpole.registry.users import Users

    with command_registry(data_dir, db) as reg:
        s = reg.settings
        users = Users(
            reg.db.engine,
            idle_timeout_s=s.session_idle_timeout_s,
            lifetime_s=s.session_lifetime_s,
        )
        yield _People(reg.tenants, users, AuditLog(reg.db.engine))


def cli_actor(tenant_id: int | None) -> Actor:
    """The command line as the audit log names it: the operating-system user running it."""
    import getpass

    from smartpole.model.users import Actor, ActorType

    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment nor the password database
        name = "unknown"
    return Actor(ActorType.CLI, None, name, tenant_id)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


def _changed(p: _People, user: User, action: str, **detail: object) -> None:
    p.audit.record(
        cli_actor(user.tenant_id),
        action,
        target_type="user",
        target_id=user.id,
        detail={"name": user.name, **detail},
    )


@user_app.command("create")
def user_create(
    name: Annotated[str, typer.Argument(help="Login name (letters, digits, . _ @ -).")],
    tenant: Annotated[str, typer.Option(help="Tenant name.")],
    role: Annotated[str, typer.Option(help="admin, operator or viewer.")],
    password_stdin: PasswordStdin = False,
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Create a user; asks for its password twice (or reads --password-stdin)."""
    from smartpole.model.types import Role

    try:
        chosen = Role(role)
    except ValueError as err:
        raise fail(InvalidInput(f"no role {role!r}: admin, operator or viewer")) from err
    password = _password(password_stdin)
    with _people(data_dir, db) as p:
        tenant_id = p.tenants.by_name(tenant)["id"]
        user = p.users.create(tenant_id, name, chosen, password)
        _changed(p, user, "user.create", tenant=user.tenant, role=str(user.role))
    if json:
        print_json(user.to_dict())
    else:
        console.print(f"user {user.name} ({user.role}) of {user.tenant}, id {user.id}")


@user_app.command("list")
def user_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's users.")] = None,
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """List users."""
    with _people(data_dir, db) as p:
        tenant_id = p.tenants.by_name(tenant)["id"] if tenant else None
        users = p.users.list(tenant_id)
    if json:
        print_json([u.to_dict() for u in users])
        return
    print_table(
        counted(len(users), len(users), "user"),
        ("id", "name", "tenant", "role", "disabled", "last login", "created"),
        (
            (u.id, u.name, u.tenant, u.role, u.disabled, moment(u.last_login), moment(u.created))
            for u in users
        ),
    )


def _switch(name: str, disabled: bool, data_dir: DataDir, db: Db) -> None:
    with _people(data_dir, db) as p:
        user = p.users.update(p.users.by_name(name).id, disabled=disabled)
        _changed(p, user, "user.update", disabled=disabled)
    state = "disabled (its sessions ended)" if disabled else "enabled"
    console.print(f"user {user.name} {state}")


@user_app.command("disable")
def user_disable(
    name: Annotated[str, typer.Argument(help="Login name.")],
    data_dir: DataDir = None,
    db: Db = None,
) -> None:
    """Disable a user: it cannot log in, and its sessions end at once."""
    _switch(name, True, data_dir, db)


@user_app.command("enable")
def user_enable(
    name: Annotated[str, typer.Argument(help="Login name.")],
    data_dir: DataDir = None,
    db: Db = None,
) -> None:
    """Enable a disabled user again."""
    _switch(name, False, data_dir, db)


@user_app.command("reset-password")
def user_reset_password(
    name: Annotated[str, typer.Argument(help="Login name.")],
    password_stdin: PasswordStdin = False,
    data_dir: DataDir = None,
    db: Db = None,
) -> None:
    """Give a user a new password (asked twice, or --password-stdin); its sessions end."""
    password = _password(password_stdin)
    with _people(data_dir, db) as p:
        user = p.users.by_name(name)
        p.users.set_password(user.id, password)
        _changed(p, user, "user.password")
    console.print(f"password of {user.name} reset; its sessions ended")


def _since(text: str | None) -> int | None:
    """``24h``, ``7d``, ``30m`` ago, or a local date/time (``2026-05-01``, ``2026-05-01T08:00``)."""
    if text is None:
        return None
    from smartpole.model.clock import now_ms

    ago = _AGO.match(text.strip())
    if ago:
        return now_ms() - int(ago.group(1)) * _UNIT_MS[ago.group(2)]
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError as err:
        problem = f"--since {text!r}: give 30m, 24h, 7d or a date/time like 2026-05-01T08:00"
        raise fail(InvalidInput(problem)) from err


def audit_cmd(
    since: Annotated[
        str | None,
        typer.Option(help="From when: 30m, 24h, 7d ago, or a local date/time.", show_default=False),
    ] = None,
    action: Annotated[
        str | None, typer.Option(help="One action, or a prefix: alarm (alarm.ack, ...).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Newest entries at most.")] = 100,
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV (for a spreadsheet).")] = False,
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Show the audit log: who changed what, when and from where (every tenant's)."""
    from smartpole.registry.audit import AuditFilter
    from smartpole.sim.seed import city_principal

    f = AuditFilter(since=_since(since), action=action)
    with _people(data_dir, db) as p:
        entries = p.audit.list(city_principal(p.tenants), f, limit)
    if csv:
        from smartpole.registry.audit import entries_csv

        sys.stdout.write(entries_csv(entries))
    elif json:
        print_json([e.to_dict() for e in entries])
    else:
        print_table(
            f"{len(entries)} audit {'entry' if len(entries) == 1 else 'entries'}",
            ("when", "who", "action", "target", "address", "status"),
            (
                (
                    moment(e.ts),
                    f"{e.actor_name} ({e.actor_type})",
                    e.action,
                    f"{e.target_type} {e.target_id}" if e.target_type else "",
                    e.address,
                    e.status,
                )
                for e in entries
            ),
        )


def register(app: typer.Typer) -> None:
    """Add the ``user`` group and the ``audit`` command to the CLI."""
    app.add_typer(user_app, name="user")
    app.command("audit")(audit_cmd)
