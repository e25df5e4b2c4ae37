"""The audit log over HTTP: every change a user or an API key makes is recorded by
:class:`AuditTrail`, and admins read it at ``GET /api/audit`` (JSON or CSV).

What a change is: a POST, PUT, PATCH or DELETE under ``/api/`` that succeeded (status below
400), made by a caller the ``principal`` dependency authenticated. The ThingsBoard device API
(``/api/v1/...``) is devices' traffic, not a change by a person; routes that only read through
a POST say so with :data:`~smartpole.api.deps.NOT_A_CHANGE`; the login routes record their own
entries.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.requests import HTTPConnection
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smartpole.api.deps import WRITES, AuditDep, Caller, services_of
from smartpole.api.schemas import Millis
from smartpole.model.types import Role
from smartpole.registry.access import Principal
from smartpole.registry.audit import AuditFilter, entries_csv

__all__ = ["AuditTrail", "action_of", "router"]

router = APIRouter(prefix="/api", tags=["audit"])


def _singular(word: str) -> str:
    word = word.replace("-", "_")
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def action_of(name: str, path: str) -> str:
    """The audit action of a route: its name when dotted (``alarm.comment``), else from its
    function's name, verb first (``ack_alarm`` becomes ``alarm.ack``; a lone verb takes the
    path's first resource: ``transition`` on ``/api/work-orders/...`` is
    ``work_order.transition``)."""
    if "." in name:
        return name
    verb, _, thing = name.partition("_")
    if not thing:
        first = path.removeprefix("/api/").split("/", 1)[0]
        thing = first
    return f"{_singular(thing)}.{verb}"


def _target(params: dict[str, Any], action: str, body: bytes, status: int) -> tuple[Any, Any]:
    """What a change was made to: the last ``*_id`` path parameter (else the last one), or the
    ``id`` a 201 answer carries for what it created."""
    if params:
        named = [k for k in params if k.endswith("_id")] or list(params)
        key = named[-1]
        return key.removesuffix("_id"), params[key]
    if status == 201 and body[:1] == b"{":
        try:
            created = json.loads(body).get("id")
        except ValueError:
            created = None
        if created is not None:
            return action.split(".", 1)[0], created
    return None, None


def _audited(scope: Scope, status: int) -> bool:
    """Whether an answer is a change to record: it succeeded, a principal made it, and its
    route did not declare itself a read."""
    state = scope.get("state", {})
    return (
        status < 400
        and state.get("audited") is not False
        and isinstance(state.get("principal"), Principal)
    )


class AuditTrail:
    """ASGI middleware: one audit entry for each successful change under ``/api/``.

    The answer is held until its entry is committed: a client that saw the answer can find
    the entry. (Answers of writes are small; a failed write passes straight through.)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] not in WRITES
            or not path.startswith("/api/")
            or path.startswith("/api/v1/")
        ):
            await self.app(scope, receive, send)
            return
        held: list[Message] = []
        passthrough = False

        async def hold(message: Message) -> None:
            nonlocal passthrough
            if message["type"] == "http.response.start":
                passthrough = not _audited(scope, message["status"])
            if passthrough:
                await send(message)
                return
            held.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                await self._record(scope, held)
                for m in held:
                    await send(m)

        await self.app(scope, receive, hold)

    @staticmethod
    async def _record(scope: Scope, held: list[Message]) -> None:
        state = scope["state"]
        who: Principal = state["principal"]
        status = int(held[0]["status"])
        route = scope.get("route")
        template = route.path if isinstance(route, Route) else scope["path"]
        action = action_of(route.name if isinstance(route, Route) else "", template)
        body = b"".join(m.get("body", b"") for m in held[1:])
        target_type, target_id = _target(scope.get("path_params", {}), action, body, status)
        detail = {"method": scope["method"], "path": scope["path"]}
        detail.update(state.get("audit_detail") or {})
        client = scope.get("client")
        await run_in_threadpool(
            services_of(HTTPConnection(scope)).audit.record,
            who.actor,
            action,
            target_type=target_type,
            target_id=target_id,
            detail=detail,
            address=client[0] if client else "",
            status=status,
        )


class AuditEntryOut(BaseModel):
    """One audit entry."""

    id: int
    ts: int = Field(description="when (ms since the epoch)")
    tenant_id: int | None
    actor_type: Literal["user", "apikey", "cli"]
    actor_id: int | None = Field(description="the user's or the API key's id")
    actor_name: str
    action: str = Field(examples=["alarm.ack"])
    target_type: str | None = Field(examples=["alarm"])
    target_id: str | None
    address: str
    status: int = Field(description="the HTTP status of the answer (401: a failed login)")
    detail: dict[str, Any]


class AuditPage(BaseModel):
    """A page of entries, newest first, and the cursor of the next (older) page."""

    entries: list[AuditEntryOut]
    next_cursor: int | None = Field(description="pass as cursor= for older entries; null: done")


@router.get(
    "/audit",
    summary="Read the audit log",
    response_model=AuditPage,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def read_audit(
    request: Request,
    audit: AuditDep,
    who: Caller,
    since: Annotated[Millis | None, Query(description="at or after (ms)")] = None,
    until: Annotated[Millis | None, Query(description="before (ms)")] = None,
    actor: Annotated[str | None, Query(max_length=200, description="an actor's name")] = None,
    action: Annotated[
        str | None, Query(max_length=100, description="an action, or a prefix: alarm")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    cursor: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    format: Annotated[Literal["json", "csv"] | None, Query()] = None,
) -> Any:
    """Changes made in the caller's tenant, newest first (admin role); the city operator sees
    every tenant's. ``format=csv`` (or ``Accept: text/csv``) answers CSV, with the next page's
    cursor in ``X-Next-Cursor``."""
    who.require(Role.ADMIN)
    f = AuditFilter(since=since, until=until, actor=actor, action=action, cursor=cursor)
    entries = await run_in_threadpool(audit.list, who, f, limit + 1)
    more = len(entries) > limit
    entries = entries[:limit]
    next_cursor = entries[-1].id if more else None
    wants_csv = format == "csv" or (
        format is None and "text/csv" in request.headers.get("accept", "")
    )
    if wants_csv:
        headers = {"Content-Disposition": 'attachment; filename="audit.csv"'}
        if next_cursor is not None:
            headers["X-Next-Cursor"] = str(next_cursor)
        return Response(entries_csv(entries), media_type="text/csv", headers=headers)
    return AuditPage(
        entries=[AuditEntryOut(**e.to_dict()) for e in entries], next_cursor=next_cursor
    )
