"""HTTP of the NGSI-LD API (ETSI GS CIM 009, clause 6.3): media types, the ``@context`` of a
request, the tenant, and answers in the caller's representation.

* A body is ``application/json`` (its ``@context`` in a ``Link`` header, or the core context) or
  ``application/ld+json`` (its ``@context`` inside); anything else is a 415.
* An answer is ``application/json`` with a ``Link`` header naming the context, or
  ``application/ld+json`` with ``@context`` inside each entity, or ``application/geo+json``
  (entities as GeoJSON features) for the entity routes that allow it; else a 406.
* ``NGSILD-Tenant`` names the smartpole tenant: the caller's own, or any tenant for the city
  operator; a tenant the caller may not see is ``NonexistentTenant``.
* Errors are the standard's problem types, ``application/json`` as the standard asks.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from smartpole.api.deps import MaybeCaller, SettingsDep, TenantsDep, services_of
from smartpole.errors import NotFound, PayloadTooLarge, Unauthenticated
from smartpole.model.types import Role
from smartpole.ngsild.broker import ContextBroker
from smartpole.ngsild.context import CORE, CORE_URL, LINK_REL, Context, ContextLoader
from smartpole.ngsild.entities import Entity, check_id, parse_lang
from smartpole.ngsild.entity_query import EntityQuery
from smartpole.ngsild.errors import NgsiLdError, ProblemType
from smartpole.ngsild.geo import parse_geo_query
from smartpole.ngsild.models import CONTEXT_TERMS
from smartpole.ngsild.patterns import caller_pattern
from smartpole.ngsild.query import (
    parse_projection,
    parse_q,
    parse_scope_q,
    parse_type_selection,
)
from smartpole.registry.access import Principal

__all__ = [
    "COUNT_HEADER",
    "ENTITY_ANSWERS",
    "GEO",
    "JSON",
    "LD",
    "LOCATION",
    "NO_CONTEXT",
    "PARTIAL_ANSWER",
    "PREFIX",
    "READ_ANSWERS",
    "TENANT_HEADER",
    "BrokerDep",
    "LoaderDep",
    "Ngsi",
    "NgsiCaller",
    "NgsiWrite",
    "Selection",
    "Write",
    "accepted",
    "answer",
    "entity_query",
    "flag",
    "install",
    "int_param",
    "names",
    "options",
    "read_body",
    "request_context",
    "selection",
]

log = logging.getLogger(__name__)

JSON = "application/json"
LD = "application/ld+json"
GEO = "application/geo+json"
MERGE_PATCH = "application/merge-patch+json"
TENANT_HEADER = "NGSILD-Tenant"
MAX_INT_PARAM = 1_000_000_000
_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[A-Za-z-]+\s*=\s*(?:\"[^\"]*\"|[^;,\s]*)\s*)*)")
_PARAM = re.compile(r";\s*([A-Za-z-]+)\s*=\s*(?:\"([^\"]*)\"|([^;,\s]*))")


async def _problem(_: Request, err: Exception) -> Response:
    assert isinstance(err, NgsiLdError)
    return Response(orjson.dumps(err.body(), default=str), err.kind.status, media_type=JSON)


def install(app: FastAPI) -> None:
    """Answer the standard's problem types for NGSI-LD errors."""
    app.add_exception_handler(NgsiLdError, _problem)


def link_context(request: Request) -> str | None:
    """The context URL of a ``Link`` header with the JSON-LD context relation, or None."""
    header = request.headers.get("link")
    if not header:
        return None
    found: list[str] = []
    for match in _LINK.finditer(header):
        params = {m.group(1).lower(): m.group(2) or m.group(3) for m in _PARAM.finditer(match[2])}
        if params.get("rel") == LINK_REL:
            found.append(match[1])
    if len(found) > 1:
        raise NgsiLdError.bad_data("more than one JSON-LD context Link header")
    if header and not found and "json-ld#context" in header:
        raise NgsiLdError.bad_data("the Link header is not a well-formed JSON-LD context link")
    return found[0] if found else None


async def request_context(request: Request, loader: ContextLoader) -> Context:
    """The active context of a request without a body (a GET, a DELETE)."""
    return await loader.active(link_context(request))


def _media(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(
    request: Request, loader: ContextLoader, max_bytes: int, *, merge_patch: bool = False
) -> tuple[Any, Context]:
    """The JSON body and its active context (415, 413, InvalidRequest, BadRequestData)."""
    media = _media(request)
    allowed = (JSON, LD, MERGE_PATCH) if merge_patch else (JSON, LD)
    if media not in allowed:
        raise NgsiLdError(
            ProblemType.UNSUPPORTED_MEDIA_TYPE,
            f"the body must be {' or '.join(allowed)}, not {media or 'untyped'}",
        )
    raw = await request.body()
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"the body is larger than {max_bytes} bytes", limit=max_bytes)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise NgsiLdError.invalid(f"the body is not JSON: {err}") from None
    if media == LD:
        sent = _inline_context(body)
        if link_context(request) is not None:
            raise NgsiLdError.bad_data("application/ld+json carries its @context in the body")
        return _without_context(body, sent), await loader.active(sent)
    if isinstance(body, dict) and "@context" in body:
        raise NgsiLdError.bad_data("application/json cannot carry @context; use a Link header")
    return body, await loader.active(link_context(request))


def _inline_context(body: Any) -> Any:
    if isinstance(body, dict):
        if "@context" not in body:
            raise NgsiLdError.bad_data("application/ld+json needs an @context in the body")
        return body["@context"]
    if isinstance(body, list) and body and all(isinstance(e, str) for e in body):
        return None  # a batch delete's ids: nothing to expand
    if isinstance(body, list) and body and all(isinstance(e, dict) for e in body):
        # the batch's context is its first entity's; those without it are refused one by one
        return next((e["@context"] for e in body if e.get("@context") is not None), None)
    raise NgsiLdError.bad_data("application/ld+json needs an @context in the body")


def _without_context(body: Any, shared: Any = None) -> Any:
    """The body without its @context; in a batch, an entity whose @context is missing or not
    the batch's keeps (``null``) it, for the batch to refuse that entity alone."""
    if isinstance(body, dict):
        return {k: v for k, v in body.items() if k != "@context"}
    if isinstance(body, list):
        return [_batch_member(e, shared) for e in body]
    return body


def _batch_member(entity: Any, shared: Any) -> Any:
    if not isinstance(entity, dict):
        return entity
    own = entity.get("@context")
    if own is not None and own == shared:
        return _without_context(entity)
    return {**entity, "@context": own}


def accepted(request: Request, *, geo: bool = False) -> str:
    """The media type to answer in, from ``Accept`` (406 when none fits)."""
    header = request.headers.get("accept", "")
    if not header.strip():
        return JSON
    offered = [JSON, LD, GEO] if geo else [JSON, LD]
    best: tuple[float, str] | None = None
    for part in header.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        media = media.lower()
        if media in ("*/*", "application/*"):
            media = JSON
        if media in offered and quality > 0 and (best is None or quality > best[0]):
            best = (quality, media)
    if best is None:
        raise NgsiLdError(
            ProblemType.NOT_ACCEPTABLE, f"this answer can be {', '.join(offered)}, not {header}"
        )
    return best[1]


def answer(
    data: Any,
    ctx: Context,
    media: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """An answer in the caller's media type: ``@context`` inside for ld+json (and in each
    GeoJSON Feature), else a Link."""
    out_headers = dict(headers or {})
    if media == GEO and isinstance(data, dict):  # each Feature names its @context (6.3.7)
        named = ctx.sent if ctx.sent is not None else CORE_URL  # one URL: as a string
        if data.get("type") == "Feature":
            data = {**data, "@context": named}
        elif data.get("type") == "FeatureCollection":
            data = {**data, "features": [{**f, "@context": named} for f in data["features"]]}
    if media == LD:
        if isinstance(data, dict):
            data = {"@context": ctx.body_context(), **data}
        elif isinstance(data, list):
            data = [
                {"@context": ctx.body_context(), **e} if isinstance(e, dict) else e for e in data
            ]
    else:
        out_headers["Link"] = f'<{ctx.link}>; rel="{LINK_REL}"; type="{LD}"'
    return Response(orjson.dumps(data), status, headers=out_headers, media_type=media)


def _anonymous(setting: str, tenants: Any) -> Principal:
    name, _, role = setting.rpartition(":")
    row = tenants.by_name(name)
    return Principal(
        row["id"], row["name"], Role(role), bool(row["is_operator"]), name="ngsi-ld anonymous"
    )


def open_types(setting: str) -> frozenset[str]:
    """The IRIs of the entity types ``ngsi_ld_open_types`` names (smartpole's own terms, or
    full IRIs)."""
    names = [n.strip() for n in setting.split(",") if n.strip()]
    return frozenset(n if ":" in n else CONTEXT_TERMS.get(n, CORE.expand(n)) for n in names)


async def ngsi_caller(
    request: Request, settings: SettingsDep, tenants: TenantsDep, who: MaybeCaller
) -> Principal:
    """Who calls: an API key or a session as for the REST API. Without any credential: the
    ``ngsi_ld_anonymous`` tenant and role when that is set (a sandbox); else, for a read, the
    ``ngsi_ld_open_tenant`` as a viewer of only the ``ngsi_ld_open_types`` (open data); else a
    401."""
    if who is not None:
        return who
    if settings.ngsi_ld_anonymous:
        anonymous = await run_in_threadpool(_anonymous, settings.ngsi_ld_anonymous, tenants)
    elif settings.ngsi_ld_open_types and request.method == "GET":
        setting = f"{settings.ngsi_ld_open_tenant}:{Role.VIEWER.value}"
        anonymous = await run_in_threadpool(_anonymous, setting, tenants)
        request.state.open_types = open_types(settings.ngsi_ld_open_types)
    else:
        raise Unauthenticated("an API key (Authorization: Bearer <key>) or a session is required")
    request.state.principal = anonymous
    return anonymous


NgsiCaller = Annotated[Principal, Depends(ngsi_caller)]


class Ngsi:
    """What an NGSI-LD route needs about its request: who acts, in the tenant it acts on (the
    city operator naming another tenant acts as that tenant, with its own role), and, for an
    anonymous reader of open data, the only entity types it may see."""

    def __init__(self, who: Principal, only_types: frozenset[str] | None = None) -> None:
        self.who = who
        self.only_types = only_types

    def require_write(self) -> None:
        """Writes need the operator role (viewers read)."""
        self.who.require(Role.OPERATOR)

    def require_identified(self) -> None:
        """Subscriptions and the like are not open data: they need credentials."""
        if self.only_types is not None:
            raise Unauthenticated("this needs an API key (only entities are open data)")

    def narrow(self, query: EntityQuery) -> EntityQuery:
        """A query limited to the types the caller may see."""
        if self.only_types is None:
            return query
        if query.types is None:
            return replace(query, types=sorted(self.only_types))
        return replace(query, types=[t for t in query.types if t in self.only_types])

    def sees(self, entity: Entity) -> bool:
        """Whether the caller may see the entity's type."""
        return self.only_types is None or bool(self.only_types.intersection(entity.types))

    def check(self, entity: Entity) -> Entity:
        """The entity, if the caller may see its type (ResourceNotFound otherwise)."""
        if self.only_types is not None and not self.only_types.intersection(entity.types):
            raise NgsiLdError.not_found(f"entity {entity.id} not found")
        return entity

    def visible_types(self, found: dict[str, set[str]]) -> dict[str, set[str]]:
        """Of ``/types``' answer, the types the caller may see."""
        if self.only_types is None:
            return found
        return {t: a for t, a in found.items() if t in self.only_types}


async def ngsi_scope(request: Request, who: NgsiCaller, tenants: TenantsDep) -> Ngsi:
    """The caller and the tenant ``NGSILD-Tenant`` names (the caller's own by default)."""
    only = getattr(request.state, "open_types", None)
    name = request.headers.get(TENANT_HEADER)
    if name is None or name == who.tenant:
        return Ngsi(who, only)
    if not who.is_operator or only is not None:  # open data is one tenant's view, no other
        raise NgsiLdError(
            ProblemType.NONEXISTENT_TENANT, f"tenant {name!r} does not exist for this caller"
        )
    try:
        row = await run_in_threadpool(tenants.by_name, name)
    except NotFound:
        raise NgsiLdError(
            ProblemType.NONEXISTENT_TENANT, f"tenant {name!r} does not exist"
        ) from None
    acting = replace(
        who, tenant_id=int(row["id"]), tenant=row["name"], is_operator=bool(row["is_operator"])
    )
    return Ngsi(acting)


NgsiScope = Annotated[Ngsi, Depends(ngsi_scope)]


PREFIX = "/ngsi-ld/v1"
LOCATION = "location"
COUNT_HEADER = "NGSILD-Results-Count"


async def broker_of(request: Request) -> ContextBroker:
    broker: ContextBroker = services_of(request).open_data.broker
    return broker


async def loader_of(request: Request) -> ContextLoader:
    loader: ContextLoader = services_of(request).open_data.contexts
    return loader


BrokerDep = Annotated[ContextBroker, Depends(broker_of)]
LoaderDep = Annotated[ContextLoader, Depends(loader_of)]

ENTITY_ANSWERS: dict[int | str, dict[str, Any]] = {
    400: {"description": "InvalidRequest or BadRequestData (the standard's problem types)"},
    404: {"description": "ResourceNotFound, or NonexistentTenant"},
    406: {"description": "The Accept header names no media type this route answers in"},
    409: {"description": "AlreadyExists"},
    415: {"description": "The body is neither application/json nor application/ld+json"},
    503: {"description": "LdContextNotAvailable: the @context cannot be had offline"},
}
READ_ANSWERS: dict[int | str, dict[str, Any]] = {
    **ENTITY_ANSWERS,
    200: {
        "description": "Entities in the representation asked for (Accept)",
        "content": {JSON: {}, LD: {}, GEO: {}},
    },
}
PARTIAL_ANSWER: dict[str, Any] = {
    "description": "Some items failed: what succeeded and why each other one did not",
    "content": {JSON: {}},
}


def options(request: Request) -> tuple[str, bool]:
    """(representation, sysAttrs) from ``options`` and ``format``."""
    options = {o.strip() for o in request.query_params.get("options", "").split(",") if o.strip()}
    unknown = options - {"keyValues", "sysAttrs", "concise", "normalized", "noOverwrite"}
    if unknown:
        raise NgsiLdError.bad_data(f"unknown options {sorted(unknown)}")
    chosen = request.query_params.get("format") or next(
        (o for o in ("keyValues", "concise", "normalized") if o in options), "normalized"
    )
    if chosen not in ("keyValues", "concise", "normalized"):
        raise NgsiLdError.bad_data(f"unknown format {chosen!r}")
    return chosen, "sysAttrs" in options


def selection(request: Request) -> Selection:
    """What of each entity an answer shows besides ``attrs``: ``datasetId`` (instances of
    these dataset ids, ``@none`` the default one) and ``lang``."""
    raw_datasets = request.query_params.get("datasetId")
    datasets = None
    if raw_datasets is not None:
        ids = [d.strip() for d in raw_datasets.split(",") if d.strip()]
        if not ids:
            raise NgsiLdError.bad_data("datasetId is empty")
        datasets = frozenset(None if d == "@none" else check_id(d, "datasetId") for d in ids)
    raw_lang = request.query_params.get("lang")
    params = request.query_params
    pick = parse_projection(params["pick"], "pick") if "pick" in params else None
    omit = parse_projection(params["omit"], "omit") if "omit" in params else None
    if (pick is not None or omit is not None) and "attrs" in params:
        raise NgsiLdError.bad_data("pick and omit replace attrs: give one or the other")
    both = set(pick or ()) & set(omit or ())
    if both:
        raise NgsiLdError.bad_data(f"{sorted(both)} both picked and omitted")
    return Selection(datasets, parse_lang(raw_lang) if raw_lang is not None else None, pick, omit)


@dataclass(frozen=True, slots=True)
class Selection:
    """Instances (by dataset id), the language and the members (``pick``, ``omit``, names as
    the caller wrote them) an answer shows."""

    datasets: frozenset[str | None] | None = None
    lang: tuple[str, ...] | None = None
    pick: tuple[str, ...] | None = None
    omit: tuple[str, ...] | None = None

    def project(self, shown: dict[str, Any], ctx: Context) -> dict[str, Any]:
        """A rendered entity with only the members picked, or without those omitted."""
        if self.pick is None and self.omit is None:
            return shown
        picked = None if self.pick is None else {_member(n, ctx) for n in self.pick}
        omitted = {_member(n, ctx) for n in self.omit or ()}
        return {
            k: v
            for k, v in shown.items()
            if k == "@context" or ((picked is None or k in picked) and k not in omitted)
        }


def _member(name: str, ctx: Context) -> str:
    """A picked or omitted name as it appears in an answer (compacted)."""
    return name if name in ("id", "type", "scope") else ctx.compact(ctx.expand(name))


def names(request: Request, name: str, ctx: Context) -> list[str] | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if not names:
        raise NgsiLdError.bad_data(f"{name} is empty")
    return [ctx.expand(n) for n in names]


def int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise NgsiLdError.bad_data(f"{name} must be an integer, not {raw!r}") from None
    if abs(value) > MAX_INT_PARAM:
        raise NgsiLdError.bad_data(f"{name} must be at most {MAX_INT_PARAM}")
    return value


def flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise NgsiLdError.bad_data(f"{name} must be true or false")
    return raw == "true"


def entity_query(request: Request, ctx: Context, params: Any = None) -> EntityQuery:
    """An entity query from URL parameters (or a POST query body's members)."""
    get = (params or request.query_params).get
    type_param = get("type")
    selection = None if type_param is None else parse_type_selection(str(type_param), ctx)
    ids_param = get("id")
    ids = None
    if ids_param is not None:
        ids = [check_id(i.strip()) for i in str(ids_param).split(",") if i.strip()]
    pattern = None
    if get("idPattern") is not None:
        pattern = caller_pattern(str(get("idPattern")), "idPattern")
    attrs_param = get("attrs")
    attrs = None
    if attrs_param is not None:
        listed = [n.strip() for n in str(attrs_param).split(",") if n.strip()]
        members = sorted({"id", "type", "@id", "@type"}.intersection(listed))
        if members:
            raise NgsiLdError.bad_data(f"attrs names attributes, not the members {members}")
        attrs = frozenset(ctx.expand(n) for n in listed)
    q = parse_q(str(get("q")), ctx) if get("q") is not None else None
    scope_q = parse_scope_q(str(get("scopeQ"))) if get("scopeQ") is not None else None
    geo = parse_geo_query(
        get("georel"),
        get("geometry"),
        get("coordinates"),
        ctx.expand(str(get("geoproperty") or LOCATION)),
    )
    return EntityQuery(
        None if selection is None else selection.names,
        ids,
        pattern,
        attrs,
        q,
        scope_q,
        geo,
        int_param(request, "limit", 20),
        int_param(request, "offset", 0),
        None if selection is None else selection.matches,
        str(get("local", "false")).lower() == "true",
    )


class _NoContext(Context):
    def __init__(self) -> None:
        super().__init__({}, "", None)


NO_CONTEXT = _NoContext()


@dataclass(frozen=True, slots=True)
class Write:
    """A write's author (in the tenant it acts on), body and active context (its role checked)."""

    who: Principal
    body: Any
    ctx: Context


async def ngsi_write(
    request: Request, scope: NgsiScope, loader: LoaderDep, settings: SettingsDep
) -> Write:
    """A write request: the operator role, then its body and context (PATCH also takes
    ``application/merge-patch+json``)."""
    scope.require_write()
    body, ctx = await read_body(
        request, loader, settings.max_body_bytes, merge_patch=request.method == "PATCH"
    )
    return Write(scope.who, body, ctx)


NgsiWrite = Annotated[Write, Depends(ngsi_write)]
