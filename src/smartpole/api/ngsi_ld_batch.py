"""The NGSI-LD API (``/ngsi-ld/v1``): batch operations, types, attributes and the contexts
this node serves."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from smartpole.api.deps import SettingsDep, services_of
from smartpole.api.ngsi_ld_http import (
    COUNT_HEADER,
    ENTITY_ANSWERS,
    GEO,
    JSON,
    LD,
    LOCATION,
    NO_CONTEXT,
    PARTIAL_ANSWER,
    PREFIX,
    READ_ANSWERS,
    BrokerDep,
    LoaderDep,
    NgsiScope,
    NgsiWrite,
    accepted,
    answer,
    entity_query,
    flag,
    read_body,
    request_context,
)
from smartpole.api.ngsi_ld_view import view_of
from smartpole.ngsild.batch import BatchOperations, BatchResult
from smartpole.ngsild.context import core_document, own_document
from smartpole.ngsild.entity_query import EntityQuery
from smartpole.ngsild.errors import NgsiLdError

__all__ = ["router"]

router = APIRouter(prefix=PREFIX, tags=["ngsi-ld"])


async def _batches(request: Request) -> BatchOperations:
    batch: BatchOperations = services_of(request).open_data.batch
    return batch


BatchDep = Annotated[BatchOperations, Depends(_batches)]


def _batch_answer(result: BatchResult, *, created: bool = False) -> Response:
    if not result.errors:
        if created:
            return answer(result.success, NO_CONTEXT, JSON, status=201)
        return Response(status_code=204)
    body = {
        "success": result.success,
        "errors": [{"entityId": i, "error": err.body()} for i, err in result.errors],
    }
    return answer(body, NO_CONTEXT, JSON, status=207)


# Batch operations -----------------------------------------------------------------------------

_BATCH_ANSWERS = {
    **ENTITY_ANSWERS,
    207: PARTIAL_ANSWER,
}


@router.post(
    "/entityOperations/create",
    status_code=201,
    summary="Create entities in a batch",
    responses=_BATCH_ANSWERS,
)
async def batch_create(write: NgsiWrite, batch: BatchDep) -> Response:
    """Create many entities: 201 with their ids, or 207 with an error per failed one."""
    result = await run_in_threadpool(batch.batch_create, write.who, write.body, write.ctx)
    return _batch_answer(result, created=True)


@router.post(
    "/entityOperations/upsert",
    status_code=201,
    summary="Create or replace entities in a batch",
    responses={**_BATCH_ANSWERS, 204: {"description": "Every entity existed and was changed"}},
)
async def batch_upsert(request: Request, write: NgsiWrite, batch: BatchDep) -> Response:
    """Create the entities that do not exist, replace (``options=update``: update) the others:
    201 with the created ids, 204 when none was new, 207 when some failed."""
    replace = request.query_params.get("options", "replace") != "update"
    result, created = await run_in_threadpool(
        lambda: batch.batch_upsert(write.who, write.body, write.ctx, replace=replace)
    )
    if result.errors:
        return _batch_answer(result)
    if created:
        return answer(created, NO_CONTEXT, JSON, status=201)
    return Response(status_code=204)


@router.post(
    "/entityOperations/update",
    status_code=204,
    summary="Update entities in a batch",
    responses=_BATCH_ANSWERS,
)
async def batch_update(request: Request, write: NgsiWrite, batch: BatchDep) -> Response:
    """Update attributes of many existing entities (``options=noOverwrite``: only add the
    attributes they lack; those with attributes kept are reported, 207)."""
    overwrite = "noOverwrite" not in request.query_params.get("options", "").split(",")
    result = await run_in_threadpool(
        lambda: batch.batch_update(write.who, write.body, write.ctx, overwrite=overwrite)
    )
    return _batch_answer(result)


@router.post(
    "/entityOperations/merge",
    status_code=204,
    summary="Merge entities in a batch",
    responses=_BATCH_ANSWERS,
)
async def batch_merge(write: NgsiWrite, batch: BatchDep) -> Response:
    """Merge into many existing entities, each as ``PATCH /entities/{id}`` would
    (``urn:ngsi-ld:null`` deletes an attribute)."""
    result = await run_in_threadpool(batch.batch_merge, write.who, write.body, write.ctx)
    return _batch_answer(result)


@router.post(
    "/entityOperations/delete",
    status_code=204,
    summary="Delete entities in a batch",
    responses=_BATCH_ANSWERS,
)
async def batch_delete(write: NgsiWrite, batch: BatchDep) -> Response:
    """Delete many entities by id."""
    result = await run_in_threadpool(batch.batch_delete, write.who, write.body)
    return _batch_answer(result)


def query_params_of(body: Any) -> dict[str, Any]:
    """A ``Query`` object (``entities``, ``attrs``, ``q``, ``geoQ``, ``scopeQ``) as the URL
    parameters of the same query, for :func:`entity_query`."""
    if not isinstance(body, dict) or body.get("type") != "Query":
        raise NgsiLdError.bad_data('the body must be a Query object ("type": "Query")')
    params: dict[str, Any] = {}
    selectors = body.get("entities") or []
    if not isinstance(selectors, list):
        raise NgsiLdError.bad_data("entities must be an array of entity selectors")
    if not all(isinstance(sel, dict) for sel in selectors):
        raise NgsiLdError.bad_data("each of entities must be an object")
    for member in ("type", "id", "idPattern"):
        if any(not isinstance(sel.get(member, ""), str) for sel in selectors):
            raise NgsiLdError.bad_data(f"entities {member} must be a string")
    attrs = body.get("attrs")
    if attrs is not None and (
        not isinstance(attrs, list) or not all(isinstance(a, str) for a in attrs)
    ):
        raise NgsiLdError.bad_data("attrs must be an array of attribute names")
    for member in ("q", "scopeQ"):
        if body.get(member) is not None and not isinstance(body[member], str):
            raise NgsiLdError.bad_data(f"{member} must be a string")
    types = [s["type"] for s in selectors if isinstance(s, dict) and "type" in s]
    ids = [s["id"] for s in selectors if isinstance(s, dict) and "id" in s]
    patterns = [s["idPattern"] for s in selectors if isinstance(s, dict) and "idPattern" in s]
    if types:
        params["type"] = ",".join(types)
    if ids:
        params["id"] = ",".join(ids)
    if patterns:
        params["idPattern"] = "|".join(f"(?:{p})" for p in patterns)
    if body.get("attrs"):
        params["attrs"] = ",".join(body["attrs"])
    for name in ("q", "scopeQ"):
        if body.get(name) is not None:
            params[name] = body[name]
    geo = body.get("geoQ")
    if isinstance(geo, dict):
        params.update(
            georel=geo.get("georel"),
            geometry=geo.get("geometry"),
            coordinates=geo.get("coordinates"),
            geoproperty=geo.get("geoproperty"),
        )
    return {k: v for k, v in params.items() if v is not None}


@router.post(
    "/entityOperations/query", summary="Query entities with a body", responses=READ_ANSWERS
)
async def batch_query(
    request: Request, scope: NgsiScope, broker: BrokerDep, loader: LoaderDep, settings: SettingsDep
) -> Response:
    """A query too long for a URL: a ``Query`` object (``entities``, ``attrs``, ``q``,
    ``geoQ``, ``scopeQ``); ``limit``, ``offset``, ``count`` and ``options`` stay in the URL."""
    media = accepted(request, geo=True)
    body, ctx = await read_body(request, loader, settings.max_body_bytes)
    params = query_params_of(body)
    query = scope.narrow(entity_query(request, ctx, params))
    view = view_of(request, ctx, query.attrs)
    page, total = await run_in_threadpool(broker.query, scope.who, query)
    headers = {COUNT_HEADER: str(total)} if flag(request, "count") else None
    if media == GEO:
        geometry = request.query_params.get("geometryProperty", LOCATION)
        return answer(view.features(page, geometry), ctx, GEO, headers=headers)
    return answer([view.show(e) for e in page], ctx, media, headers=headers)


# Types, attributes and contexts ---------------------------------------------------------------


@router.get("/types", summary="Entity types", responses=READ_ANSWERS)
async def list_types(
    request: Request, scope: NgsiScope, broker: BrokerDep, loader: LoaderDep
) -> Response:
    """Every entity type of the tenant (``details=true``: with their attributes)."""
    media = accepted(request)
    ctx = await request_context(request, loader)
    found = scope.visible_types(await run_in_threadpool(broker.types, scope.who))
    if flag(request, "details"):
        details = [
            {
                "id": type_iri,
                "type": "EntityType",
                "typeName": ctx.compact(type_iri),
                "attributeNames": sorted(ctx.compact(a) for a in attrs),
            }
            for type_iri, attrs in sorted(found.items())
        ]
        return answer(details, ctx, media)
    body = {
        "id": "urn:ngsi-ld:EntityTypeList:smartpole",
        "type": "EntityTypeList",
        "typeList": sorted(ctx.compact(t) for t in found),
    }
    return answer(body, ctx, media)


@router.get("/types/{type_name}", summary="One entity type", responses=READ_ANSWERS)
async def type_info(
    type_name: str, request: Request, scope: NgsiScope, broker: BrokerDep, loader: LoaderDep
) -> Response:
    """An entity type: how many entities have it and their attributes."""
    media = accepted(request)
    ctx = await request_context(request, loader)
    iri = ctx.expand(type_name)
    found = scope.visible_types(await run_in_threadpool(broker.types, scope.who))
    if iri not in found:
        raise NgsiLdError.not_found(f"no entity has the type {type_name}")
    _page, total = await run_in_threadpool(
        broker.query, scope.who, EntityQuery(types=[iri], limit=0)
    )
    body = {
        "id": iri,
        "type": "EntityTypeInfo",
        "typeName": ctx.compact(iri),
        "entityCount": total,
        "attributeDetails": [
            {"id": a, "type": "Attribute", "attributeName": ctx.compact(a)}
            for a in sorted(found[iri])
        ],
    }
    return answer(body, ctx, media)


@router.get("/attributes", summary="Attribute names", responses=READ_ANSWERS)
async def list_attributes(
    request: Request, scope: NgsiScope, broker: BrokerDep, loader: LoaderDep
) -> Response:
    """Every attribute name in use in the tenant (``details=true``: with the types having it)."""
    media = accepted(request)
    ctx = await request_context(request, loader)
    found = scope.visible_types(await run_in_threadpool(broker.types, scope.who))
    by_attr: dict[str, set[str]] = {}
    for type_iri, attrs in found.items():
        for attr in attrs:
            by_attr.setdefault(attr, set()).add(type_iri)
    if flag(request, "details"):
        details = [
            {
                "id": a,
                "type": "Attribute",
                "attributeName": ctx.compact(a),
                "typeNames": sorted(ctx.compact(t) for t in types),
            }
            for a, types in sorted(by_attr.items())
        ]
        return answer(details, ctx, media)
    body = {
        "id": "urn:ngsi-ld:AttributeList:smartpole",
        "type": "AttributeList",
        "attributeList": sorted(ctx.compact(a) for a in by_attr),
    }
    return answer(body, ctx, media)


@router.get(
    "/jsonldContexts/{name}",
    summary="A JSON-LD context this node serves",
    responses={200: {"description": "The context document", "content": {LD: {}}}},
)
async def context_document(name: str) -> Response:
    """The core context (``ngsi-ld-core-context.jsonld``) or smartpole's own
    (``smartpole-context.jsonld``), served from the package."""
    document = core_document() if name == "ngsi-ld-core-context.jsonld" else own_document(name)
    if document is None:
        raise NgsiLdError.not_found(f"no @context {name} here")
    return answer(document, NO_CONTEXT, LD)
