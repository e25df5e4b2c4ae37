"""The NGSI-LD temporal API (``/ngsi-ld/v1/temporal/entities``): entities' history, read from
smartpole's readings and rollups and from the history of other systems' entities."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from smartpole.api.deps import SettingsDep, services_of
from smartpole.api.ngsi_ld_batch import query_params_of
from smartpole.api.ngsi_ld_http import (
    COUNT_HEADER,
    ENTITY_ANSWERS,
    JSON,
    LD,
    PREFIX,
    READ_ANSWERS,
    LoaderDep,
    NgsiScope,
    NgsiWrite,
    accepted,
    answer,
    entity_query,
    flag,
    int_param,
    names,
    read_body,
    request_context,
    selection,
)
from smartpole.ngsild.context import Context
from smartpole.ngsild.entity_query import EntityQuery
from smartpole.ngsild.errors import NgsiLdError
from smartpole.ngsild.history import TemporalBroker
from smartpole.ngsild.temporal import (
    AGGREGATED_VALUES,
    OBSERVED_AT,
    TEMPORAL_VALUES,
    InstanceRange,
    TemporalQuery,
    parse_window,
    render_temporal,
)

__all__ = ["router"]

router = APIRouter(prefix=f"{PREFIX}/temporal", tags=["ngsi-ld"])


async def _temporal(request: Request) -> TemporalBroker:
    temporal: TemporalBroker = services_of(request).open_data.temporal
    return temporal


TemporalDep = Annotated[TemporalBroker, Depends(_temporal)]


HISTORY_ANSWERS: dict[int | str, dict[str, Any]] = {
    **READ_ANSWERS,
    206: {
        "description": "Longer histories than an answer holds (ngsi_ld_temporal_limit instances"
        " of an attribute): the instances of the time range in Content-Range"
        " (date-time <first>-<last>/<lastN or *>)",
        "headers": {"Content-Range": {"schema": {"type": "string"}}},
        "content": {JSON: {}, LD: {}},
    },
}
_FORMATS = ("normalized", TEMPORAL_VALUES, AGGREGATED_VALUES)
# sysAttrs is a temporal option of the standard; temporal answers show no system times yet
_OPTIONS = (*_FORMATS, "sysAttrs")


def _representation(request: Request) -> tuple[str, bool]:
    """The representation ``format`` names, else ``options``; and whether either named it
    (``format`` takes precedence, clause 6.3.12). An unknown value is an InvalidRequest."""
    raw = request.query_params.get("options", "")
    options = {o.strip() for o in raw.split(",") if o.strip()}
    unknown = options - set(_OPTIONS)
    if unknown:
        raise NgsiLdError.invalid(
            f"unknown temporal options {sorted(unknown)} (one of {', '.join(_OPTIONS)})"
        )
    chosen = request.query_params.get("format")
    if chosen is not None:
        if chosen not in _FORMATS:
            raise NgsiLdError.invalid(f"unknown temporal format {chosen!r}")
        return chosen, True
    named = next((o for o in (AGGREGATED_VALUES, TEMPORAL_VALUES) if o in options), None)
    return named or "normalized", named is not None


def _temporal_q_of(body: dict[str, Any]) -> dict[str, Any]:
    """A ``Query`` object's ``temporalQ`` (``timerel``, ``timeAt``, ``endTimeAt``, ``lastN``,
    ``timeproperty``), checked."""
    temporal_q = body.get("temporalQ", {})
    if not isinstance(temporal_q, dict):
        raise NgsiLdError.bad_data("temporalQ must be an object")
    for member, value in temporal_q.items():
        if member in ("timerel", "timeAt", "endTimeAt"):
            if not isinstance(value, str):
                raise NgsiLdError.bad_data(f"temporalQ {member} must be a string")
        elif member == "lastN":
            if not isinstance(value, int) or isinstance(value, bool):
                raise NgsiLdError.bad_data("temporalQ lastN must be an integer")
        elif member != "timeproperty":  # checked with the URL's
            raise NgsiLdError.bad_data(f"temporalQ has no member {member!r}")
    return temporal_q


def _temporal_query(
    request: Request, attrs: frozenset[str] | None, temporal_q: Mapping[str, Any] | None = None
) -> tuple[TemporalQuery, str]:
    """The temporal query of the URL's parameters (a body's checked ``temporalQ`` over them).
    ``aggrMethods`` and ``aggrPeriodDuration`` are checked whatever the format, and used only
    for aggregations."""
    params = {**request.query_params, **(temporal_q or {})}
    representation, named = _representation(request)
    methods = params.get("aggrMethods")
    if representation == AGGREGATED_VALUES and methods is None:
        raise NgsiLdError.bad_data("aggregatedValues needs aggrMethods")
    if methods is not None and not named:  # aggrMethods alone asks for aggregations
        representation = AGGREGATED_VALUES
    window = parse_window(params.get("timerel"), params.get("timeAt"), params.get("endTimeAt"))
    last_n = int_param(request, "lastN", 0) or None
    if temporal_q is not None and "lastN" in temporal_q:
        last_n = temporal_q["lastN"] or None
    tq = TemporalQuery.of(
        window,
        last_n,
        attrs,
        [m.strip() for m in methods.split(",")] if methods is not None else None,
        params.get("aggrPeriodDuration"),
        representation,
        params.get("timerel"),
        params.get("timeproperty", OBSERVED_AT),
    )
    if representation != AGGREGATED_VALUES:
        tq = replace(tq, aggr_methods=None, aggr_period=None)
    return tq, representation


async def _query_answer(
    request: Request,
    scope: NgsiScope,
    temporal: TemporalBroker,
    ctx: Context,
    media: str,
    query: EntityQuery,
    temporal_q: Mapping[str, Any] | None = None,
) -> Response:
    """The histories of the entities ``query`` matches, as the request asks to see them."""
    tq, representation = _temporal_query(request, query.attrs, temporal_q)
    chosen = selection(request)
    count = flag(request, "count")
    series, total, shown = await run_in_threadpool(
        functools.partial(temporal.temporal_query, scope.who, query, tq, count=count)
    )
    body = [chosen.project(render_temporal(s, ctx, representation), ctx) for s in series]
    headers = {COUNT_HEADER: str(total)} if count else {}
    return _history_answer(body, ctx, media, shown, headers)


def _history_answer(
    body: Any, ctx: Context, media: str, shown: InstanceRange | None, headers: dict[str, str]
) -> Response:
    """Histories, whole (200) or cut to a time range: 206 with its ``Content-Range`` (clause
    6.3.10); the rest is asked for with ``timerel`` from the range's end."""
    if shown is None:
        return answer(body, ctx, media, headers=headers)
    headers = {**headers, "Content-Range": shown.header()}
    return answer(body, ctx, media, status=206, headers=headers)


@router.get("/entities", summary="Query the history of entities", responses=HISTORY_ANSWERS)
async def query_temporal(
    request: Request, scope: NgsiScope, temporal: TemporalDep, loader: LoaderDep
) -> Response:
    """The history of the entities a query matches (``type``, ``id``, ``idPattern``, ``attrs``,
    ``q`` on their current state, geo-queries) within ``timerel``/``timeAt``/``endTimeAt``, the
    newest ``lastN`` of each attribute, as instances, ``temporalValues`` or aggregations
    (``aggrMethods``, ``aggrPeriodDuration``); ``pick``/``omit`` choose the members shown."""
    media = accepted(request)
    ctx = await request_context(request, loader)
    query = scope.narrow(entity_query(request, ctx))
    return await _query_answer(request, scope, temporal, ctx, media, query)


@router.post(
    "/entityOperations/query",
    summary="Query the history of entities with a body",
    responses=HISTORY_ANSWERS,
)
async def query_temporal_by_body(
    request: Request,
    scope: NgsiScope,
    temporal: TemporalDep,
    loader: LoaderDep,
    settings: SettingsDep,
) -> Response:
    """A temporal query too long for a URL: a ``Query`` object (``entities``, ``attrs``, ``q``,
    ``geoQ``, ``scopeQ`` and ``temporalQ``: ``timerel``, ``timeAt``, ``endTimeAt``,
    ``lastN``); ``limit``, ``offset``, ``count``, ``options``/``format``, ``aggrMethods`` and
    ``pick``/``omit`` stay in the URL."""
    media = accepted(request)
    body, ctx = await read_body(request, loader, settings.max_body_bytes)
    params = query_params_of(body)
    temporal_q = _temporal_q_of(body)
    query = scope.narrow(entity_query(request, ctx, params))
    return await _query_answer(request, scope, temporal, ctx, media, query, temporal_q)


@router.get(
    "/entities/{entity_id}",
    summary="Retrieve the history of an entity",
    responses=HISTORY_ANSWERS,
)
async def retrieve_temporal(
    entity_id: str, request: Request, scope: NgsiScope, temporal: TemporalDep, loader: LoaderDep
) -> Response:
    """One entity's history (``attrs``, ``timerel``, ``lastN``, ``aggrMethods``, ``pick``/
    ``omit``…)."""
    media = accepted(request)
    ctx = await request_context(request, loader)
    wanted = names(request, "attrs", ctx)
    tq, representation = _temporal_query(request, frozenset(wanted) if wanted else None)
    chosen = selection(request)
    if scope.only_types is not None:  # open data: only the open types
        scope.check(await run_in_threadpool(temporal.broker.retrieve, scope.who, entity_id))
    series, shown = await run_in_threadpool(temporal.temporal_retrieve, scope.who, entity_id, tq)
    body = chosen.project(render_temporal(series, ctx, representation), ctx)
    if not body:  # pick matched nothing, or omit left nothing
        raise NgsiLdError.not_found(f"nothing of entity {entity_id} is left to show")
    return _history_answer(body, ctx, media, shown, {})


@router.post(
    "/entities",
    status_code=201,
    summary="Add to the history of an entity",
    responses={**ENTITY_ANSWERS, 204: {"description": "The entity existed: instances added"}},
)
async def provide_temporal(write: NgsiWrite, temporal: TemporalDep) -> Response:
    """Add instances (each attribute an array of them) to an entity's history, creating the
    entity when it does not exist (201) with the newest instance of each attribute as its
    current state; 204 when it existed."""
    created = await run_in_threadpool(temporal.temporal_provide, write.who, write.body, write.ctx)
    if created:
        location = f"{PREFIX}/temporal/entities/{write.body['id']}"
        return Response(status_code=201, headers={"Location": location})
    return Response(status_code=204)


@router.delete(
    "/entities/{entity_id}",
    status_code=204,
    summary="Delete an entity with its history",
    responses=ENTITY_ANSWERS,
)
async def delete_temporal(entity_id: str, scope: NgsiScope, temporal: TemporalDep) -> Response:
    """Delete an entity and its history."""
    scope.require_write()
    await run_in_threadpool(temporal.broker.delete, scope.who, entity_id)
    return Response(status_code=204)
