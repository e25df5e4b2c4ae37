"""NGSI-LD subscriptions (``/ngsi-ld/v1/subscriptions``): create, list, retrieve, update and
delete; notifications go out through :class:`smartpole.ngsild.notifier.Notifier`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from smartpole.api.deps import services_of
from smartpole.api.ngsi_ld_http import (
    COUNT_HEADER,
    ENTITY_ANSWERS,
    PREFIX,
    READ_ANSWERS,
    LoaderDep,
    NgsiScope,
    NgsiWrite,
    accepted,
    answer,
    flag,
    int_param,
    options,
    request_context,
)
from smartpole.model.clock import now_ms
from smartpole.ngsild.errors import NgsiLdError
from smartpole.ngsild.service import OpenData
from smartpole.ngsild.subscriptions import parse_subscription, render_subscription

__all__ = ["router"]

router = APIRouter(prefix=f"{PREFIX}/subscriptions", tags=["ngsi-ld"])


async def _open_data(request: Request) -> OpenData:
    open_data: OpenData = services_of(request).open_data
    return open_data


OpenDataDep = Annotated[OpenData, Depends(_open_data)]


@router.post(
    "",
    status_code=201,
    summary="Create a subscription",
    responses={**ENTITY_ANSWERS, 201: {"description": "Created; Location names it"}},
)
async def create_subscription(write: NgsiWrite, data: OpenDataDep) -> Response:
    """Subscribe an HTTP endpoint to changes of entities (``entities``,
    ``watchedAttributes``, ``q``, ``geoQ``), at most every ``throttling`` seconds, or to their
    state every ``timeInterval`` seconds."""
    now = now_ms()
    sub = await run_in_threadpool(  # may resolve the endpoint's host name
        lambda: parse_subscription(write.body, write.ctx, allow_private=data.allow_private, now=now)
    )
    await run_in_threadpool(
        data.subscriptions.create, write.who.tenant_id, sub, write.ctx.sent, now
    )
    await data.notifier.reload()
    return Response(status_code=201, headers={"Location": f"{PREFIX}/subscriptions/{sub.id}"})


@router.get("", summary="List subscriptions", responses=READ_ANSWERS)
async def list_subscriptions(
    request: Request, scope: NgsiScope, data: OpenDataDep, loader: LoaderDep
) -> Response:
    """The tenant's subscriptions, a page at a time (``limit``, ``offset``, ``count``), each
    with the truth about its notifications."""
    scope.require_identified()
    media = accepted(request)
    ctx = await request_context(request, loader)
    limit, offset = int_param(request, "limit", 20), int_param(request, "offset", 0)
    if not 0 <= limit <= 1000 or offset < 0:
        raise NgsiLdError.bad_data("limit must be 0 to 1000 and offset not negative")
    _, sys_attrs = options(request)
    page, total = await run_in_threadpool(
        data.subscriptions.page, scope.who.tenant_id, limit, offset
    )
    now = now_ms()
    body = [render_subscription(s, st, ctx, sys_attrs=sys_attrs, now=now) for s, _, st in page]
    headers = {COUNT_HEADER: str(total)} if flag(request, "count") else None
    return answer(body, ctx, media, headers=headers)


@router.get("/{sub_id}", summary="Retrieve a subscription", responses=READ_ANSWERS)
async def retrieve_subscription(
    sub_id: str, request: Request, scope: NgsiScope, data: OpenDataDep, loader: LoaderDep
) -> Response:
    """One subscription with its notification status (``lastSuccess``, ``lastFailure``,
    ``timesSent``, ``timesFailed``)."""
    scope.require_identified()
    media = accepted(request)
    ctx = await request_context(request, loader)
    _, sys_attrs = options(request)
    sub, _, status = await run_in_threadpool(data.subscriptions.get, scope.who.tenant_id, sub_id)
    return answer(
        render_subscription(sub, status, ctx, sys_attrs=sys_attrs, now=now_ms()), ctx, media
    )


@router.patch(
    "/{sub_id}", status_code=204, summary="Update a subscription", responses=ENTITY_ANSWERS
)
async def update_subscription(sub_id: str, write: NgsiWrite, data: OpenDataDep) -> Response:
    """Change some members of a subscription (the others, and its status, stay)."""
    if not isinstance(write.body, dict):
        raise NgsiLdError.bad_data("a subscription update must be a JSON object")
    if write.body.get("id", sub_id) != sub_id:
        raise NgsiLdError.bad_data("the body's id differs from the URL's")
    tenant_id = write.who.tenant_id
    sub, context, status = await run_in_threadpool(data.subscriptions.get, tenant_id, sub_id)
    now = now_ms()
    ctx = await data.contexts.active(context)
    current: dict[str, Any] = render_subscription(sub, status, ctx, sys_attrs=False, now=now)
    for member in ("status",):
        current.pop(member, None)
    merged = {**current, **write.body, "id": sub_id}
    if isinstance(write.body.get("notification"), dict):
        merged["notification"] = {**current["notification"], **write.body["notification"]}
    if "expiresAt" in write.body and write.body["expiresAt"] is None:
        merged.pop("expiresAt")
    updated = await run_in_threadpool(
        lambda: parse_subscription(
            merged, ctx, allow_private=data.allow_private, now=now, sub_id=sub_id
        )
    )
    await run_in_threadpool(data.subscriptions.replace, tenant_id, updated, context, now)
    await data.notifier.reload()
    return Response(status_code=204)


@router.delete(
    "/{sub_id}", status_code=204, summary="Delete a subscription", responses=ENTITY_ANSWERS
)
async def delete_subscription(sub_id: str, scope: NgsiScope, data: OpenDataDep) -> Response:
    """Delete a subscription and the notifications still waiting for it."""
    scope.require_write()
    await run_in_threadpool(data.subscriptions.delete, scope.who.tenant_id, sub_id)
    await data.notifier.reload()
    return Response(status_code=204)
