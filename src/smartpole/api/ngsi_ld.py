"""The NGSI-LD API (``/ngsi-ld/v1``): entities and their attributes.

Routes read their parameters from the request themselves (not through pydantic): the standard
says how a bad one is answered (``BadRequestData``), and a parameter such as ``q`` needs the
caller's ``@context`` to mean anything. Batch operations, types and contexts are in
:mod:`smartpole.api.ngsi_ld_batch`; everything else is in :mod:`smartpole.ngsild`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from smartpole.api.ngsi_ld_http import (
    COUNT_HEADER,
    ENTITY_ANSWERS,
    GEO,
    JSON,
    LOCATION,
    NO_CONTEXT,
    PARTIAL_ANSWER,
    PREFIX,
    READ_ANSWERS,
    BrokerDep,
    LoaderDep,
    Ngsi,
    NgsiScope,
    NgsiWrite,
    accepted,
    answer,
    entity_query,
    flag,
    names,
    request_context,
)
from smartpole.api.ngsi_ld_join import Join, join_of
from smartpole.api.ngsi_ld_view import View, view_of
from smartpole.ngsild.broker import ContextBroker, UpdateResult
from smartpole.ngsild.entities import Entity, require_any
from smartpole.ngsild.errors import NgsiLdError

__all__ = ["router"]

router = APIRouter(prefix=PREFIX, tags=["ngsi-ld"])


def _update_answer(result: UpdateResult) -> Response:
    if not result.not_updated:
        return Response(status_code=204)
    body = {
        "updated": result.updated,
        "notUpdated": [{"attributeName": n, "reason": r} for n, r in result.not_updated],
    }
    return answer(body, NO_CONTEXT, JSON, status=207)


# Entities -------------------------------------------------------------------------------------


@router.post(
    "/entities",
    status_code=201,
    summary="Create an entity",
    responses={**ENTITY_ANSWERS, 201: {"description": "Created; Location names it"}},
)
@router.post("/entities/", status_code=201, include_in_schema=False)  # as clients also call it
async def create_entity(write: NgsiWrite, broker: BrokerDep) -> Response:
    """Create an entity of the caller's tenant (AlreadyExists when its id is taken)."""
    entity = await run_in_threadpool(broker.create, write.who, write.body, write.ctx)
    location = f"{PREFIX}/entities/{quote(entity.id, safe=':')}"
    return Response(status_code=201, headers={"Location": location})


@router.get("/entities", summary="Query entities", responses=READ_ANSWERS)
@router.get("/entities/", include_in_schema=False)
async def query_entities(
    request: Request, scope: NgsiScope, broker: BrokerDep, loader: LoaderDep
) -> Response:
    """Entities matching ``type``, ``id``, ``idPattern``, ``attrs``, ``q``, ``scopeQ`` and a
    geo-query (``georel``, ``geometry``, ``coordinates``, ``geoproperty``), a page at a time
    (``limit``, ``offset``; ``count=true`` adds ``NGSILD-Results-Count``)."""
    media = accepted(request, geo=True)
    ctx = await request_context(request, loader)
    query = scope.narrow(entity_query(request, ctx))
    view = view_of(request, ctx, query.attrs)
    join = join_of(request)
    count = flag(request, "count")
    page, total = await run_in_threadpool(broker.query, scope.who, query)
    headers = {COUNT_HEADER: str(total)} if count else None
    if media == GEO:
        geometry = request.query_params.get("geometryProperty", LOCATION)
        return answer(view.features(page, geometry), ctx, GEO, headers=headers)
    shown = [view.show(e) for e in page]
    if join is not None:
        shown = await _joined(join, shown, page, scope, broker, view)
    return answer(shown, ctx, media, headers=headers)


@router.get("/entities/{entity_id}", summary="Retrieve an entity", responses=READ_ANSWERS)
async def retrieve_entity(
    entity_id: str, request: Request, scope: NgsiScope, broker: BrokerDep, loader: LoaderDep
) -> Response:
    """One entity (``attrs`` narrows its attributes; ``options=keyValues|sysAttrs``)."""
    media = accepted(request, geo=True)
    ctx = await request_context(request, loader)
    attrs = names(request, "attrs", ctx)
    view = view_of(request, ctx, attrs)
    join = join_of(request)
    entity = scope.check(await run_in_threadpool(broker.retrieve, scope.who, entity_id))
    require_any(entity, attrs)  # after the scope's check: a hidden entity is just not found
    if media == GEO:
        geometry = request.query_params.get("geometryProperty", LOCATION)
        return answer(view.features([entity], geometry)["features"][0], ctx, GEO)
    shown = view.show(entity)
    if join is not None:
        out = await _joined(join, [shown], [entity], scope, broker, view)
        return answer(out if join.kind == "flat" else out[0], ctx, media)
    return answer(shown, ctx, media)


async def _joined(
    join: Join,
    shown: list[dict[str, Any]],
    entities: list[Entity],
    scope: Ngsi,
    broker: ContextBroker,
    view: View,
) -> list[dict[str, Any]]:
    """The answer's entities with those their relationships name (``join``)."""
    visible = await run_in_threadpool(broker.linked, scope.who, entities, join.level, scope.sees)
    return join.apply(shown, visible, lambda e: view.show(e, asked=False), view.key_values)


@router.api_route("/entities/", methods=["PUT", "PATCH", "DELETE"], include_in_schema=False)
async def entity_without_id() -> Response:
    """``/entities/`` with no id after it: the caller's error, said as one (not a 405)."""
    raise NgsiLdError.bad_data("the entity id is missing from the URL (/entities/{entityId})")


@router.api_route("/entities//attrs", methods=["POST", "PATCH"], include_in_schema=False)
@router.api_route("/entities//attrs/", methods=["POST", "PATCH"], include_in_schema=False)
@router.api_route(
    "/entities//attrs/{attr}", methods=["PATCH", "PUT", "DELETE"], include_in_schema=False
)
async def attributes_without_entity_id() -> Response:
    """``/entities//attrs…``: the entity id left out of an attribute operation's URL."""
    raise NgsiLdError.bad_data("the entity id is missing from the URL (/entities/{entityId}/attrs)")


@router.delete(
    "/entities/{entity_id}", status_code=204, summary="Delete an entity", responses=ENTITY_ANSWERS
)
async def delete_entity(entity_id: str, scope: NgsiScope, broker: BrokerDep) -> Response:
    """Delete an entity."""
    scope.require_write()
    await run_in_threadpool(broker.delete, scope.who, entity_id)
    return Response(status_code=204)


@router.put(
    "/entities/{entity_id}",
    status_code=204,
    summary="Replace an entity",
    responses=ENTITY_ANSWERS,
)
async def replace_entity(
    entity_id: str,
    write: NgsiWrite,
    broker: BrokerDep,
) -> Response:
    """Replace an entity's type and attributes (its creation time stays)."""
    await run_in_threadpool(broker.replace, write.who, entity_id, write.body, write.ctx)
    return Response(status_code=204)


@router.patch(
    "/entities/{entity_id}", status_code=204, summary="Merge an entity", responses=ENTITY_ANSWERS
)
async def merge_entity(
    entity_id: str,
    write: NgsiWrite,
    broker: BrokerDep,
) -> Response:
    """Merge attributes into an entity (``urn:ngsi-ld:null`` deletes one)."""
    await run_in_threadpool(broker.merge, write.who, entity_id, write.body, write.ctx)
    return Response(status_code=204)


# Attributes -----------------------------------------------------------------------------------


@router.post(
    "/entities/{entity_id}/attrs",
    status_code=204,
    summary="Append attributes",
    responses={**ENTITY_ANSWERS, 207: PARTIAL_ANSWER},
)
async def append_attributes(
    entity_id: str,
    request: Request,
    write: NgsiWrite,
    broker: BrokerDep,
) -> Response:
    """Add attributes to an entity (``options=noOverwrite`` keeps existing ones)."""
    overwrite = "noOverwrite" not in request.query_params.get("options", "")
    result = await run_in_threadpool(
        lambda: broker.append(write.who, entity_id, write.body, write.ctx, overwrite=overwrite)
    )
    return _update_answer(result)


@router.patch(
    "/entities/{entity_id}/attrs",
    status_code=204,
    summary="Update attributes",
    responses={**ENTITY_ANSWERS, 207: PARTIAL_ANSWER},
)
async def update_attributes(
    entity_id: str,
    write: NgsiWrite,
    broker: BrokerDep,
) -> Response:
    """Replace attributes an entity has (the others are reported in a 207)."""
    result = await run_in_threadpool(broker.update, write.who, entity_id, write.body, write.ctx)
    return _update_answer(result)


@router.patch(
    "/entities/{entity_id}/attrs/{attr}",
    status_code=204,
    summary="Partially update an attribute",
    responses=ENTITY_ANSWERS,
)
async def patch_attribute(
    entity_id: str,
    attr: str,
    write: NgsiWrite,
    broker: BrokerDep,
) -> Response:
    """Change some members of one attribute."""
    await run_in_threadpool(
        broker.patch_attribute, write.who, entity_id, attr, write.body, write.ctx
    )
    return Response(status_code=204)


@router.put(
    "/entities/{entity_id}/attrs/{attr}",
    status_code=204,
    summary="Replace an attribute",
    responses=ENTITY_ANSWERS,
)
async def replace_attribute(
    entity_id: str,
    attr: str,
    write: NgsiWrite,
    broker: BrokerDep,
) -> Response:
    """Replace one attribute as a whole."""
    await run_in_threadpool(
        broker.replace_attribute, write.who, entity_id, attr, write.body, write.ctx
    )
    return Response(status_code=204)


@router.delete(
    "/entities/{entity_id}/attrs/{attr}",
    status_code=204,
    summary="Delete an attribute",
    responses=ENTITY_ANSWERS,
)
async def delete_attribute(
    entity_id: str,
    attr: str,
    request: Request,
    scope: NgsiScope,
    broker: BrokerDep,
    loader: LoaderDep,
) -> Response:
    """Delete an attribute (``datasetId`` one instance, ``deleteAll=true`` every one)."""
    scope.require_write()
    ctx = await request_context(request, loader)
    dataset = request.query_params.get("datasetId")
    delete_all = flag(request, "deleteAll")
    await run_in_threadpool(
        lambda: broker.delete_attribute(
            scope.who, entity_id, attr, ctx, dataset_id=dataset, delete_all=delete_all
        )
    )
    return Response(status_code=204)
