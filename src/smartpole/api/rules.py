"""REST endpoints of hub rules: create or replace, check, import, list, delete (JSON or YAML)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from smartpole.api.deps import NOT_A_CHANGE, Caller, HubDep
from smartpole.api.schemas import Id
from smartpole.errors import InvalidInput
from smartpole.hub.rules.conditions import ANY_KEY
from smartpole.hub.rules.documents import check_each, rules_in, rules_yaml
from smartpole.model.documents import is_yaml, locate_lines, parse_document
from smartpole.model.rules import StoredRule
from smartpole.model.types import Role

__all__ = ["RuleOut", "router"]

router = APIRouter(prefix="/api", tags=["rules"])
PROBLEM: dict[str, Any] = {"application/problem+json": {}}
RULE_EXAMPLE = {
    "name": "pm25-light",
    "scope": {"kinds": ["air"], "districts": ["Futian"]},
    "condition": {"key": "pm25", "op": ">", "value": 75, "for": "10m"},
    "actions": [{"alarm": {"type": "air_quality", "severity": "minor"}}],
}
BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}, "example": RULE_EXAMPLE},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}
LOCATED = (
    "the rule is invalid; `errors` lists why, each at its location (`loc`) and, in a YAML"
    " body, its line (`line`, from 1)"
)


class RuleOut(BaseModel):
    """A stored rule: its body as written and when it changed."""

    id: int
    tenant_id: int
    name: str
    enabled: bool
    created: int
    updated: int
    body: dict[str, Any] = Field(description="scope, condition and actions, as written")

    @classmethod
    def of(cls, rule: StoredRule) -> RuleOut:
        """From the domain object."""
        return cls(**rule.to_dict())


@contextlib.contextmanager
def _lines(text: bytes, content_type: str, prefix: list[Any] | None = None) -> Iterator[None]:
    """A YAML body's problems located at their lines too."""
    try:
        yield
    except InvalidInput as err:
        if is_yaml(content_type):
            locate_lines(err, text, prefix or [])
        raise


async def _body(request: Request) -> tuple[Any, bytes, str]:
    """The parsed body, its text and its content type."""
    text, content_type = await request.body(), request.headers.get("content-type", "")
    return parse_document(text, content_type), text, content_type


@router.get("/rules", summary="List rules")
def list_rules(hub: HubDep, who: Caller) -> list[RuleOut]:
    """The caller's tenant's rules (every tenant's for the city operator)."""
    return [RuleOut.of(r) for r in hub.rules.visible(who)]


@router.post(
    "/rules",
    summary="Create or replace a rule",
    status_code=201,
    openapi_extra=BODY,
    responses={
        200: {"model": RuleOut, "description": "a rule of that name was replaced"},
        422: {"content": PROBLEM, "description": LOCATED},
    },
)
async def put_rule(hub: HubDep, who: Caller, request: Request, response: Response) -> RuleOut:
    """Add a rule of the caller's tenant (operator role), or replace the one of that name.

    The body is JSON, or YAML with ``Content-Type: application/yaml``. Every problem is
    reported at once, each with its location (``["condition", "all", 1, "op"]``). The rule
    takes effect at once, without a restart.
    """
    body, text, content_type = await _body(request)
    with _lines(text, content_type):
        rule, created = await run_in_threadpool(hub.rules.put, who, body)
    await hub.reload()
    if not created:
        response.status_code = 200
    return RuleOut.of(rule)


@router.post(
    "/rules/check",
    summary="Check a rule without saving it",
    openapi_extra=BODY,
    dependencies=[NOT_A_CHANGE],
    responses={422: {"content": PROBLEM, "description": LOCATED}},
)
async def check_rule(hub: HubDep, who: Caller, request: Request) -> dict[str, Any]:
    """Validate a rule body as ``POST /api/rules`` would, and say which keys it reads
    (``any_key``: any reading wakes it, as ``missing`` without a key does)."""
    body, text, content_type = await _body(request)
    with _lines(text, content_type):
        rule = await run_in_threadpool(hub.check, who.tenant_id, who.is_operator, body)
    keys = sorted(k for k in rule.keys if k != ANY_KEY)
    return {"name": rule.name, "keys": keys, "any_key": ANY_KEY in rule.keys, "timed": rule.timed}


@router.post(
    "/rules/import",
    summary="Import a list of rules",
    openapi_extra=BODY,
    responses={422: {"content": PROBLEM, "description": "some rule is invalid; none is saved"}},
)
async def import_rules(hub: HubDep, who: Caller, request: Request) -> list[RuleOut]:
    """Create or replace every rule of a list (or of ``{"rules": [...]}``), as YAML or JSON.

    All rules are checked first; if any is invalid, none is saved and ``errors`` locates each
    problem by the rule's position in the list.
    """
    who.require(Role.OPERATOR)
    doc, text, content_type = await _body(request)
    items = rules_in(doc)
    errors = await run_in_threadpool(
        check_each, items, lambda item: hub.check(who.tenant_id, who.is_operator, item)
    )
    if errors:
        with _lines(text, content_type, ["rules"] if isinstance(doc, dict) else []):
            raise InvalidInput(
                f"{len(errors)} problem(s) in the rules; none was saved", errors=errors
            )
    out = [RuleOut.of((await run_in_threadpool(hub.rules.put, who, item))[0]) for item in items]
    await hub.reload()
    return out


@router.get(
    "/rules/{rule_id}",
    summary="Get a rule",
    response_model=RuleOut,
    responses={
        200: {
            "content": {"application/yaml": {"schema": {"type": "string"}}},
            "description": "the rule; with `Accept: application/yaml`, its body as YAML",
        }
    },
)
def get_rule(hub: HubDep, who: Caller, rule_id: Id, request: Request) -> Any:
    """A visible rule; asked with ``Accept: application/yaml``, just its body written as YAML
    (what ``POST /api/rules`` takes back), as an editor shows it."""
    rule = hub.rules.get(who, rule_id)
    if is_yaml(request.headers.get("accept", "")):
        return Response(rules_yaml(rule.body), media_type="application/yaml")
    return RuleOut.of(rule)


@router.delete("/rules/{rule_id}", status_code=204, summary="Delete a rule")
async def delete_rule(hub: HubDep, who: Caller, rule_id: Id) -> Response:
    """Delete a visible rule (operator role); its alarms stay as they are."""
    await run_in_threadpool(hub.rules.delete, who, rule_id)
    await hub.reload()
    return Response(status_code=204)
