"""The hub's entities and the REST API's answers: each response model takes every field it
answers with from the entity, unchanged (the entities are what the CLI prints as JSON)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

import pytest
from pydantic import BaseModel

from smartpole.api.alarms import AlarmOut, CommentOut
from smartpole.api.rules import RuleOut
from smartpole.api.webhooks import DeliveryOut, WebhookOut
from smartpole.api.workorders import HistoryEntry, TeamOut, WorkOrderDetail, WorkOrderOut
from smartpole.hub.workorders.lifecycle import TRANSITIONS
from smartpole.model.alarms import Alarm, AlarmComment
from smartpole.model.lifecycle import AlarmStatus, Severity, WorkOrderStatus
from smartpole.model.rules import StoredRule
from smartpole.model.webhooks import Webhook, WebhookDelivery
from smartpole.model.workorders import Team, WorkOrder, WorkOrderEntry

T0 = 1_764_000_000_000
ENTRY = WorkOrderEntry(
    id=3,
    work_order_id=7,
    ts=T0,
    actor="city (operator)",
    action="transition",
    from_status=WorkOrderStatus.ASSIGNED,
    to_status=WorkOrderStatus.IN_PROGRESS,
    comment="on site",
    details={"team_id": 2},
)
ORDER = WorkOrder(
    id=7,
    tenant_id=1,
    alarm_id=11,
    device_id=5,
    pole_id=4,
    title="pole_tilt on device 5",
    description="check the foundation",
    severity=Severity.MAJOR,
    status=WorkOrderStatus.IN_PROGRESS,
    team_id=2,
    created=T0,
    updated=T0 + 1,
    deadline=T0 + 86_400_000,
    resolved=None,
    closed=None,
    resolve_suggested=True,
    overdue_since=None,
    team="structures",
    overdue=False,
)
CASES = [
    pytest.param(
        StoredRule(1, 2, "tilt", True, T0, T0 + 5, {"name": "tilt", "description": "x"}),
        RuleOut,
        id="rule",
    ),
    pytest.param(
        Alarm(
            id=11,
            tenant_id=1,
            originator_type="device",
            originator_id=5,
            type="pole_tilt",
            severity=Severity.MAJOR,
            status=AlarmStatus.ACTIVE_ACK,
            details={"values": {"tilt": 7.5}},
            first_ts=T0,
            last_ts=T0 + 9,
            count=3,
            assignee="crew-7",
            cleared_ts=None,
            acked_ts=T0 + 8,
            pole_id=4,
            root_id=None,
            latch=True,
            released_ts=None,
            children=2,
        ),
        AlarmOut,
        id="alarm",
    ),
    pytest.param(AlarmComment(1, 11, T0, "police", "on my way"), CommentOut, id="alarm-comment"),
    pytest.param(Team(2, 1, "structures", "Structures crew", "+86", T0), TeamOut, id="team"),
    pytest.param(ORDER, WorkOrderOut, id="work-order"),
    pytest.param(replace(ORDER, history=(ENTRY,)), WorkOrderDetail, id="work-order-history"),
    pytest.param(ENTRY, HistoryEntry, id="work-order-entry"),
    pytest.param(Webhook(1, 2, "ops", "https://ops.example/h", True, T0), WebhookOut, id="webhook"),
    pytest.param(
        WebhookDelivery(
            9, 1, "rule.raised", {"rule": "tilt"}, "failed", 5, 502, "HTTP 502", T0, T0, T0
        ),
        DeliveryOut,
        id="webhook-delivery",
    ),
]


def _steps(order: Any) -> list[str]:
    return [str(s) for s in TRANSITIONS[order.status]]


# Fields an answer adds from the entity's own values by a documented rule, not carried as is.
DERIVED: dict[type[BaseModel], dict[str, Any]] = {
    WorkOrderOut: {"steps": _steps},
    WorkOrderDetail: {"steps": _steps},
}


class Entity(Protocol):
    """A hub entity: a frozen dataclass that says itself as JSON-ready values."""

    def to_dict(self) -> dict[str, Any]: ...


@pytest.mark.parametrize(("entity", "model"), CASES)
def test_the_api_answers_every_field_as_the_entity_has_it(
    entity: Entity, model: type[BaseModel]
) -> None:
    values = entity.to_dict()
    of = getattr(model, "of", None)
    answer = (of(entity) if of else model(**values)).model_dump(mode="json")
    derived = DERIVED.get(model, {})
    assert set(model.model_fields) - set(derived) <= set(values), (
        "a field the API answers is not the entity's"
    )
    expected = {k: v for k, v in values.items() if k in model.model_fields}
    expected |= {name: rule(entity) for name, rule in derived.items()}
    if "history" in expected:  # each entry as the API answers it: without its order's id
        expected["history"] = [_fields(h, HistoryEntry) for h in expected["history"]]
    assert answer == expected


def _fields(values: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k in model.model_fields}


def test_a_listed_work_order_has_no_history_and_one_read_alone_has_it() -> None:
    assert "history" not in ORDER.to_dict()
    [entry] = replace(ORDER, history=(ENTRY,)).to_dict()["history"]
    assert entry == ENTRY.to_dict()
    assert (type(entry["from_status"]), entry["from_status"]) == (str, "assigned")  # plain JSON
