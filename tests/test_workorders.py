"""Work orders end to end: rules and people open them, the API moves them, the hub watches them.

Readings go in through the real HTTP device API; the overdue check is called directly with a
later clock instead of waiting hours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from fixtures_api import City, make_device, make_pole
from smartpole.app import Platform
from smartpole.cli import app as cli
from smartpole.errors import InvalidInput
from smartpole.hub.workorders.lifecycle import HOUR_MS, OVERDUE, parse_sla
from smartpole.model.lifecycle import Severity
from smartpole.model.types import Role

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC

RULE = {
    "name": "tilt",
    "scope": {"kinds": ["tilt"]},
    "condition": {"key": "tilt", "op": ">", "value": 5},
    "actions": [
        {"alarm": {"type": "pole_tilt", "severity": "major", "originator": "pole"}},
        {"work_order": {"team": "structures", "note": "check the foundation"}},
    ],
}


async def settle(platform: Platform) -> None:
    """Wait until every upload so far is committed, evaluated and acted on."""
    await platform.pipeline.drain()
    await platform.hub.settle()


async def send(client: httpx.AsyncClient, token: str, ts: int, **values: Any) -> None:
    """Upload one timestamped set of values through the HTTP device API."""
    r = await client.post(f"/api/v1/{token}/telemetry", json={"ts": ts, "values": values})
    assert r.status_code == 200, r.text


async def make_team(client: httpx.AsyncClient, city: City, tenant: str, name: str) -> int:
    """Create a maintenance team as the tenant's admin; return its id."""
    r = await client.post("/api/teams", json={"name": name}, headers=city.auth(tenant))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def orders(client: httpx.AsyncClient, city: City, tenant: str, **q: Any) -> Any:
    """The work-order listing as the tenant sees it."""
    r = await client.get("/api/work-orders", params=q, headers=city.auth(tenant))
    assert r.status_code == 200, r.text
    return r.json()


async def move(
    client: httpx.AsyncClient, city: City, wo_id: int, to: str, tenant: str = "lighting"
) -> httpx.Response:
    """Ask for a transition as the tenant's operator."""
    return await client.post(
        f"/api/work-orders/{wo_id}/transition",
        json={"to": to, "comment": f"now {to}"},
        headers=city.auth(tenant, Role.OPERATOR),
    )


@pytest.fixture
async def tilted(platform: Platform, client: httpx.AsyncClient, city: City) -> dict[str, Any]:
    """A lighting tilt sensor whose pole leaned past the rule's limit: alarm + work order."""
    team = await make_team(client, city, "lighting", "structures")
    r = await client.post("/api/rules", json=RULE, headers=city.auth("city"))
    assert r.status_code == 201, r.text
    pole = await make_pole(client, city, "P-1")
    tilt = await make_device(client, city, "lighting", "tilt", pole)
    await send(client, tilt["token"], T0, tilt=7.5)
    await settle(platform)
    return {"team": team, "pole": pole, "tilt": tilt}


async def test_a_rule_opens_an_assigned_work_order_with_the_sla_deadline(
    client: httpx.AsyncClient, city: City, tilted: dict[str, Any]
) -> None:
    page = await orders(client, city, "lighting")
    [wo] = page["items"]
    assert (wo["status"], wo["team_id"], wo["team"]) == ("assigned", tilted["team"], "structures")
    assert (wo["severity"], wo["pole_id"], wo["description"]) == (
        "major",
        tilted["pole"],
        "check the foundation",
    )
    assert wo["deadline"] - wo["created"] == 24 * HOUR_MS
    r = await client.get("/api/alarms", headers=city.auth("lighting"))
    [alarm] = r.json()
    assert wo["alarm_id"] == alarm["id"]


async def test_a_repeating_rule_opens_no_second_work_order(
    platform: Platform, client: httpx.AsyncClient, city: City, tilted: dict[str, Any]
) -> None:
    await send(client, tilted["tilt"]["token"], T0 + 1000, tilt=1.0)  # clears
    await send(client, tilted["tilt"]["token"], T0 + 2000, tilt=8.0)  # a new alarm
    await send(client, tilted["tilt"]["token"], T0 + 3000, tilt=9.0)  # same alarm again
    await settle(platform)
    page = await orders(client, city, "lighting")
    assert page["total"] == 2
    assert len({wo["alarm_id"] for wo in page["items"]}) == 2


async def test_the_lifecycle_leaves_a_history_of_every_change(
    client: httpx.AsyncClient, city: City, tilted: dict[str, Any]
) -> None:
    [wo] = (await orders(client, city, "lighting"))["items"]
    assert wo["steps"] == ["in_progress"]  # what a board offers from "assigned"
    for to, steps in (
        ("in_progress", ["resolved"]),
        ("resolved", ["closed", "in_progress"]),
        ("closed", []),
    ):
        r = await move(client, city, wo["id"], to)
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["steps"]) == (to, steps)
    r = await client.post(
        f"/api/work-orders/{wo['id']}/comments",
        json={"comment": "photos attached"},
        headers=city.auth("lighting", Role.OPERATOR),
    )
    assert r.status_code == 201, r.text
    r = await client.get(f"/api/work-orders/{wo['id']}", headers=city.auth("lighting"))
    body = r.json()
    assert body["closed"] is not None
    assert body["resolved"] is not None
    steps = [(h["action"], h["from_status"], h["to_status"], h["actor"]) for h in body["history"]]
    assert steps == [
        ("created", None, "open", "rule"),
        ("assigned", "open", "assigned", "rule"),
        ("transition", "assigned", "in_progress", "lighting (operator)"),
        ("transition", "in_progress", "resolved", "lighting (operator)"),
        ("transition", "resolved", "closed", "lighting (operator)"),
        ("comment", "closed", "closed", "lighting (operator)"),
    ]
    assert body["history"][3]["comment"] == "now resolved"


@pytest.mark.parametrize(
    ("path", "to", "allowed"),
    [
        pytest.param([], "resolved", ["in_progress"], id="assigned-to-resolved"),
        pytest.param(["in_progress", "resolved", "closed"], "in_progress", [], id="closed"),
        pytest.param(["in_progress"], "closed", ["resolved"], id="in-progress-to-closed"),
    ],
)
async def test_a_step_the_lifecycle_forbids_is_a_409_naming_the_allowed_ones(
    client: httpx.AsyncClient,
    city: City,
    tilted: dict[str, Any],
    path: list[str],
    to: str,
    allowed: list[str],
) -> None:
    [wo] = (await orders(client, city, "lighting"))["items"]
    for step in path:
        assert (await move(client, city, wo["id"], step)).status_code == 200
    r = await move(client, city, wo["id"], to)
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    assert (r.json()["title"], r.json()["allowed"]) == ("Invalid transition", allowed)


async def test_a_resolved_order_can_be_reopened(
    client: httpx.AsyncClient, city: City, tilted: dict[str, Any]
) -> None:
    [wo] = (await orders(client, city, "lighting"))["items"]
    for to in ("in_progress", "resolved", "in_progress"):
        assert (await move(client, city, wo["id"], to)).status_code == 200
    r = await client.get(f"/api/work-orders/{wo['id']}", headers=city.auth("lighting"))
    assert (r.json()["status"], r.json()["resolved"]) == ("in_progress", None)


async def test_a_cleared_alarm_suggests_resolving_but_does_not_close(
    platform: Platform, client: httpx.AsyncClient, city: City, tilted: dict[str, Any]
) -> None:
    await send(client, tilted["tilt"]["token"], T0 + 60_000, tilt=1.0)
    await settle(platform)
    [wo] = (await orders(client, city, "lighting"))["items"]
    assert (wo["status"], wo["resolve_suggested"]) == ("assigned", True)
    r = await client.get(f"/api/work-orders/{wo['id']}", headers=city.auth("lighting"))
    last = r.json()["history"][-1]
    assert (last["action"], last["actor"], last["details"]["alarm_id"]) == (
        "resolve_suggested",
        "hub",
        wo["alarm_id"],
    )


async def test_the_overdue_check_raises_an_alarm_once_and_resolving_clears_it(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    platform.work_orders.clock = lambda: T0
    pole = await make_pole(client, city, "P-2")
    lamp = await make_device(client, city, "lighting", "lamp", pole)
    r = await client.post(
        "/api/work-orders",
        json={"device_id": lamp["id"], "title": "lamp dark", "severity": "critical"},
        headers=city.auth("lighting", Role.OPERATOR),
    )
    assert r.status_code == 201, r.text
    wo = r.json()
    assert (wo["tenant_id"], wo["status"], wo["deadline"]) == (
        city.ids["lighting"],
        "open",
        T0 + 4 * HOUR_MS,
    )
    assert await platform.work_orders.check_overdue(T0 + 3 * HOUR_MS) == 0
    platform.work_orders.clock = lambda: T0 + 5 * HOUR_MS
    assert await platform.work_orders.check_overdue() == 1
    assert await platform.work_orders.check_overdue() == 0  # raised once per overdue spell
    late = await orders(client, city, "lighting", overdue="true")
    assert [o["id"] for o in late["items"]] == [wo["id"]]
    assert (await orders(client, city, "lighting", overdue="false"))["total"] == 0
    q = {"type": OVERDUE, "originator_type": "work_order"}
    [alarm] = (await client.get("/api/alarms", params=q, headers=city.auth("lighting"))).json()
    assert (alarm["originator_id"], alarm["severity"], alarm["status"], alarm["count"]) == (
        wo["id"],
        "critical",
        "active_unack",
        1,
    )
    team = await make_team(client, city, "lighting", "night-crew")
    r = await client.post(
        f"/api/work-orders/{wo['id']}/assign",
        json={"team_id": team},
        headers=city.auth("lighting", Role.OPERATOR),
    )
    assert r.json()["status"] == "assigned"
    for to in ("in_progress", "resolved"):
        assert (await move(client, city, wo["id"], to)).status_code == 200
    [alarm] = (await client.get("/api/alarms", params=q, headers=city.auth("lighting"))).json()
    assert alarm["status"] == "cleared_unack"
    body = (await client.get(f"/api/work-orders/{wo['id']}", headers=city.auth("lighting"))).json()
    assert "overdue" in [h["action"] for h in body["history"]]


async def test_another_tenant_gets_404(
    client: httpx.AsyncClient, city: City, tilted: dict[str, Any]
) -> None:
    [wo] = (await orders(client, city, "lighting"))["items"]
    assert (await orders(client, city, "telecom"))["total"] == 0
    r = await client.get(f"/api/work-orders/{wo['id']}", headers=city.auth("telecom"))
    assert r.status_code == 404
    assert (await move(client, city, wo["id"], "in_progress", "telecom")).status_code == 404
    assert (await orders(client, city, "city"))["total"] == 1  # the city operator sees all


async def test_a_viewer_reads_but_may_not_move_an_order(
    client: httpx.AsyncClient, city: City, tilted: dict[str, Any]
) -> None:
    [wo] = (await orders(client, city, "lighting"))["items"]
    r = await client.post(
        f"/api/work-orders/{wo['id']}/transition",
        json={"to": "in_progress"},
        headers=city.auth("lighting", Role.VIEWER),
    )
    assert r.status_code == 403


async def test_teams_are_per_tenant_and_deleting_one_reopens_its_orders(
    client: httpx.AsyncClient, city: City, tilted: dict[str, Any]
) -> None:
    assert [
        t["name"] for t in (await client.get("/api/teams", headers=city.auth("telecom"))).json()
    ] == []
    r = await client.post("/api/teams", json={"name": "structures"}, headers=city.auth("lighting"))
    assert r.status_code == 409
    r = await client.patch(
        f"/api/teams/{tilted['team']}", json={"contact": "+86 755 1"}, headers=city.auth("lighting")
    )
    assert r.json()["contact"] == "+86 755 1"
    telecom_team = await make_team(client, city, "telecom", "radio")
    [wo] = (await orders(client, city, "lighting"))["items"]
    r = await client.post(
        f"/api/work-orders/{wo['id']}/assign",
        json={"team_id": telecom_team},
        headers=city.auth("lighting", Role.OPERATOR),
    )
    assert r.status_code == 404  # another tenant's team cannot take it
    r = await client.delete(f"/api/teams/{tilted['team']}", headers=city.auth("lighting"))
    assert r.status_code == 204
    [wo] = (await orders(client, city, "lighting"))["items"]
    assert (wo["status"], wo["team_id"]) == ("open", None)


async def test_an_order_by_hand_from_an_alarm_takes_its_tenant_and_severity(
    client: httpx.AsyncClient, city: City, tilted: dict[str, Any]
) -> None:
    [alarm] = (await client.get("/api/alarms", headers=city.auth("lighting"))).json()
    r = await client.post(
        "/api/work-orders",
        json={"alarm_id": alarm["id"], "title": "second look"},
        headers=city.auth("city", Role.OPERATOR),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["tenant_id"], body["severity"], body["pole_id"]) == (
        city.ids["lighting"],
        "major",
        tilted["pole"],
    )
    r = await client.post(
        "/api/work-orders",
        json={"alarm_id": alarm["id"]},
        headers=city.auth("telecom", Role.OPERATOR),
    )
    assert r.status_code == 404


def test_the_sla_table_reads_units_and_keeps_defaults() -> None:
    sla = parse_sla("critical=30m, minor=2d")
    assert sla[Severity.CRITICAL] == 30 * 60_000
    assert sla[Severity.MINOR] == 48 * HOUR_MS
    assert sla[Severity.MAJOR] == 24 * HOUR_MS
    with pytest.raises(InvalidInput):
        parse_sla("urgent=1h")


def test_the_cli_creates_lists_shows_and_moves_a_work_order(tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path)]
    r = runner.invoke(
        cli,
        ["pole", "add", "--code", "P-9", "--lat", "22.5", "--lon", "114.0", *base],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        cli,
        ["workorder", "create", "--pole", "P-9", "--title", "paint", "--json", *base],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["workorder", "transition", "1", "in_progress", *base])
    assert r.exit_code == 1  # open cannot go straight to in_progress
    r = runner.invoke(cli, ["workorder", "transition", "1", "closed", "--json", *base])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["workorder", "list", "--status", "closed", "--json", *base])
    assert r.exit_code == 0, r.output
    assert '"total": 1' in r.stdout
    r = runner.invoke(cli, ["workorder", "show", "1", *base])
    assert r.exit_code == 0, r.output
