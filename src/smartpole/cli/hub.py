"""Hub commands: rules (list, add, show, delete, import YAML/JSON) and alarms (list, ack, clear).

They work on the database directly; a running server picks rule changes up within one hub tick.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
    print_record,
    print_table,
)
from smartpole.errors import InvalidInput
from smartpole.model.lifecycle import AlarmStatus

if TYPE_CHECKING:
    from smartpole.app import Platform
    from smartpole.model.alarms import Alarm
    from smartpole.registry.access import Principal

__all__ = ["register"]

rule_app = typer.Typer(
    help="Hub rules: conditions on readings and their actions.", no_args_is_help=True
)
alarm_app = typer.Typer(help="Alarms raised by the hub's rules.", no_args_is_help=True)
Tenant = Annotated[
    str, typer.Option("--tenant", help="Act as this tenant's admin (default: the city operator).")
]


def _who(p: Platform, tenant: str) -> Principal:
    from smartpole.sim.seed import city_principal

    if tenant == "city":
        return city(p.tenants)
    row = p.tenants.by_name(tenant)
    return city_principal(p.tenants, row["name"])


def _read(path: Path) -> Any:
    from smartpole.model.documents import parse_document

    kind = "application/yaml" if path.suffix.lower() in (".yaml", ".yml") else "application/json"
    return parse_document(path.read_bytes(), kind)


@rule_app.command("list")
def rule_list(
    tenant: Tenant = "city", data_dir: DataDir = None, db: Db = None, json: JsonOut = False
) -> None:
    """List rules."""
    with command_platform(data_dir, db) as p:
        rows = p.hub.rules.visible(_who(p, tenant))
        names = {t["id"]: t["name"] for t in p.tenants.list(city(p.tenants))}
    if json:
        print_json([r.to_dict() for r in rows])
        return
    print_table(
        counted(len(rows), len(rows), "rule"),
        ("id", "tenant", "name", "enabled", "description"),
        ((r.id, names[r.tenant_id], r.name, r.enabled, r.description) for r in rows),
    )


@rule_app.command("add")
def rule_add(
    file: Annotated[Path, typer.Argument(help="One rule, as YAML (.yaml/.yml) or JSON.")],
    tenant: Tenant = "city",
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Create a rule, or replace the tenant's rule of the same name."""
    with command_platform(data_dir, db) as p:
        rule, created = p.hub.rules.put(_who(p, tenant), _read(file))
    if json:
        print_json(rule.to_dict())
    else:
        console.print(f"rule {rule.name} id {rule.id} {'created' if created else 'replaced'}")


@rule_app.command("show")
def rule_show(
    rule_id: Annotated[int, typer.Argument(help="Rule id.")],
    tenant: Tenant = "city",
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Show a rule: its name, tenant and body."""
    with command_platform(data_dir, db) as p:
        rule = p.hub.rules.get(_who(p, tenant), rule_id)
        owner = p.tenants.get(rule.tenant_id)["name"]
    if json:
        print_json(rule.to_dict())
        return
    import orjson

    body = orjson.dumps(rule.body, option=orjson.OPT_INDENT_2).decode()
    fields = {k: v for k, v in rule.to_dict().items() if k not in ("tenant_id", "body")}
    print_record(f"rule {rule.name}", {**fields, "tenant": owner, "body": body})


@rule_app.command("delete")
def rule_delete(
    rule_id: Annotated[int, typer.Argument(help="Rule id.")],
    tenant: Tenant = "city",
    data_dir: DataDir = None,
    db: Db = None,
) -> None:
    """Delete a rule."""
    with command_platform(data_dir, db) as p:
        p.hub.rules.delete(_who(p, tenant), rule_id)
    console.print(f"rule {rule_id} deleted")


@rule_app.command("import")
def rule_import(
    file: Annotated[
        Path | None, typer.Argument(help="A list of rules (or {rules: [...]}) in YAML or JSON.")
    ] = None,
    defaults: Annotated[
        bool, typer.Option("--defaults", help="Import the default smart-pole rule set.")
    ] = False,
    tenant: Tenant = "city",
    data_dir: DataDir = None,
    db: Db = None,
) -> None:
    """Create or replace many rules; nothing is saved if any rule is invalid."""
    if (file is None) == (not defaults):
        raise typer.BadParameter("give a FILE or --defaults")
    with command_platform(data_dir, db) as p:
        from smartpole.hub.rules.documents import check_each, default_rules, rules_in

        who = _who(p, tenant)
        doc = default_rules() if defaults else _read(file)  # type: ignore[arg-type]
        items = rules_in(doc)
        errors = check_each(items, lambda item: p.hub.check(who.tenant_id, who.is_operator, item))
        if errors:
            raise InvalidInput(f"{len(errors)} problem(s); no rule was saved", errors=errors)
        for item in items:
            p.hub.rules.put(who, item)
    console.print(f"{len(items)} rules imported")


@alarm_app.command("list")
def alarm_list(
    active: Annotated[bool, typer.Option("--active", help="Only active alarms.")] = False,
    type: Annotated[str | None, typer.Option("--type", help="Only of this type.")] = None,
    roots: Annotated[
        bool, typer.Option("--roots", help="Only root alarms: one per problem (a dark pole).")
    ] = False,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    tenant: Tenant = "city",
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """List alarms, newest first."""
    from smartpole.hub.alarms.store import AlarmFilter

    status = [s for s in AlarmStatus if s.active] if active else None
    with command_platform(data_dir, db) as p:
        rows = p.hub.alarms.find(
            _who(p, tenant), AlarmFilter(status=status, type=type, roots=roots), limit=limit
        )
        named = {a.id: _originator(p, a) for a in rows}
    if json:
        print_json([{**a.to_dict(), "originator": named[a.id]} for a in rows])
        return
    print_table(
        counted(len(rows), len(rows), "alarm"),
        ("id", "type", "severity", "status", "originator", "count", "last", "grouped"),
        (
            (
                a.id,
                a.type,
                a.severity,
                a.status,
                f"{a.originator_type} {named[a.id]}",
                a.count,
                moment(a.last_ts),
                a.children if a.root_id is None else f"under {a.root_id}",
            )
            for a in rows
        ),
    )


def _originator(p: Platform, alarm: Alarm) -> str:
    """The name of what raised an alarm: a device's name, a pole's code, a work order's id."""
    from smartpole.errors import NotFound

    try:
        if alarm.originator_type == "device":
            ref = p.assets.device_ref(alarm.originator_id)
            return ref.name if ref else str(alarm.originator_id)
        if alarm.originator_type == "pole":
            return p.assets.get_pole(city(p.tenants), alarm.originator_id).code
    except NotFound:
        pass
    return str(alarm.originator_id)


def _change(alarm_id: int, tenant: str, data_dir: Path | None, db: str | None, ack: bool) -> None:
    import asyncio

    with command_platform(data_dir, db) as p:
        who = _who(p, tenant)
        if ack:
            alarm = asyncio.run(p.hub.alarms.acknowledge(who, alarm_id))
        else:
            alarm = asyncio.run(p.hub.alarms.clear_by_id(who, alarm_id))
    console.print(f"alarm {alarm.id} {alarm.status}")


@alarm_app.command("ack")
def alarm_ack(
    alarm_id: Annotated[int, typer.Argument(help="Alarm id.")],
    tenant: Tenant = "city",
    data_dir: DataDir = None,
    db: Db = None,
) -> None:
    """Acknowledge an alarm."""
    _change(alarm_id, tenant, data_dir, db, ack=True)


@alarm_app.command("clear")
def alarm_clear(
    alarm_id: Annotated[int, typer.Argument(help="Alarm id.")],
    tenant: Tenant = "city",
    data_dir: DataDir = None,
    db: Db = None,
) -> None:
    """Clear an alarm."""
    _change(alarm_id, tenant, data_dir, db, ack=False)


def register(app: typer.Typer) -> None:
    """Add these commands to the main app."""
    app.add_typer(rule_app, name="rule")
    app.add_typer(alarm_app, name="alarm")
