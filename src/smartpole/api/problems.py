"""Errors as RFC 9457 problem+json: the only place domain errors meet HTTP.

Every HTTP request gets a request id (``X-Request-Id`` on every response; a sane one the caller
sent is kept). An exception no handler knows answers a problem+json 500 that carries the id,
and the log line with the traceback names the same id. The OpenAPI document declares the
problem answers of every route once, here, from what the route takes (see :func:`declare`).
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DataError, DBAPIError
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smartpole.errors import InvalidInput, SmartpoleError, StoreUnavailable, Throttled
from smartpole.store.database import store_unavailable
from smartpole.transport.http.problems import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE, problem
from smartpole.transport.refusals import http_status

__all__ = ["PROBLEM_MEDIA_TYPE", "Problem", "RequestIds", "declare", "install", "problem"]

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
# A caller's own request id is kept only when it cannot forge a log line or a header.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Seconds a client should wait before retrying: a full queue drains fast, a database restart
# or failover takes seconds.
RETRY_AFTER: dict[type[SmartpoleError], int] = {StoreUnavailable: 5}


class Problem(BaseModel):
    """An error answer (RFC 9457); routes add fields of their own (``errors``, ``limit``, …)."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(examples=[PROBLEM_TYPE + "not-found"])
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["device 7 not found"])
    request_id: str | None = Field(
        None, description="On a 500: the id the server's log names this failure by."
    )
    errors: list[dict[str, Any]] | None = Field(
        None, description="On a 422: each problem with its location (``loc``, ``msg``, ``type``)."
    )


async def _domain(_: Request, err: Exception) -> Response:
    assert isinstance(err, SmartpoleError)
    extra: dict[str, Any] = dict(err.fields)
    if isinstance(err, InvalidInput) and err.errors:
        extra["errors"] = err.errors
    status = http_status(err)  # the one table of what each refusal answers (transport.refusals)
    retry_after = next((RETRY_AFTER[c] for c in type(err).__mro__ if c in RETRY_AFTER), 1)
    if isinstance(err, Throttled):  # its own wait, in the Retry-After header
        retry_after = int(extra.pop("retry_after"))
    return problem(status, err.title, err.detail, retry_after=retry_after, **extra)


async def _database(request: Request, err: Exception) -> Response:
    """A database error: an outage is a 503 to retry; anything else goes on to the request-id
    middleware, which logs it and answers a problem+json 500."""
    outage = store_unavailable(err)
    if outage is None:
        raise err
    return await _domain(request, outage)


async def _validation(_: Request, err: Exception) -> Response:
    assert isinstance(err, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in err.errors()
    ]
    return problem(422, "Invalid input", "the request does not match the schema", errors=errors)


async def _unstorable(request: Request, err: Exception) -> Response:
    # SQLSTATE class 22, "data exception": the request carried a value its column cannot hold
    # (PostgreSQL: a NUL character in text, say). The request's transaction was rolled back.
    assert isinstance(err, DataError)
    reason = str(err.orig).splitlines()[0] if err.orig is not None else "invalid value"
    log.warning("%s %s: a value cannot be stored (%s)", request.method, request.url.path, reason)
    return problem(422, "Invalid input", f"a value cannot be stored: {reason}")


async def _http(_: Request, err: Exception) -> Response:
    assert isinstance(err, StarletteHTTPException)
    return problem(err.status_code, str(err.detail), str(err.detail))


class RequestIds:
    """ASGI middleware: a request id for every HTTP request, and a problem+json 500 (never a
    plain-text body) for an exception that no handler turned into an answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope.get("headers", ())).get(REQUEST_ID_HEADER.lower().encode(), b"")
        ours = sent.decode("latin-1")
        request_id = ours if _SANE_REQUEST_ID.match(ours) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception(
                "request %s: %s %s failed", request_id, scope.get("method"), scope.get("path")
            )
            if started:  # a streamed answer is half sent: only dropping the connection tells
                raise
            answer = problem(
                500,
                "Internal error",
                "the server failed to answer; its log names this failure by the request id",
                request_id=request_id,
            )
            await answer(scope, receive, send_with_id)


def _problem_answer(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Problem"}
    return {"description": description, "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}}}


# What each problem status means, as the OpenAPI document words it.
ANSWERS: dict[int, str] = {
    400: "Malformed body (not JSON, or not the declared format)",
    401: "No API key or session, or one nobody issued (or an ended session)",
    403: "The caller's role or tenant may not do this, or a session's write lacks X-CSRF-Token",
    404: "No such object, or one the caller's tenant may not see",
    408: "Nothing came within the timeout; ask again",
    409: "Conflicts with the current state (a name taken, a step not allowed)",
    413: "The body is larger than the limit",
    422: "A parameter or the body does not fit the schema",
    429: "Too many failed logins; retry after the Retry-After header's seconds",
    500: "An unexpected error; the body's request_id names it in the server's log",
    503: "Busy or stopping; retry after the Retry-After header's seconds",
    504: "The device did not answer in time",
}
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _statuses(method: str, operation: dict[str, Any]) -> set[int]:
    """The problem statuses an operation can answer, from what it takes."""
    params = operation.get("parameters", [])
    codes = {500, 503}
    if operation.get("security"):
        codes |= {401, 403, 404}
    if params or "requestBody" in operation:
        codes.add(422)
    if any(p.get("in") == "path" for p in params):
        codes.add(404)
    if method.upper() in WRITES:
        codes |= {400, 409, 413, 422}
    return codes


def _own_body(answer: dict[str, Any]) -> bool:
    """An error answer whose route declared a body of its own that is no problem (``/healthz``
    answers 503 with its usual health body): kept as declared. FastAPI's validation error is
    not one: it is replaced by ours."""
    content = answer.get("content") or {}
    return (
        bool(content)
        and PROBLEM_MEDIA_TYPE not in content
        and b"HTTPValidationError" not in (orjson.dumps(content))
    )


# NGSI-LD routes answer the standard's problem types as application/json (ETSI GS CIM 009,
# clause 6.3.2); smartpole's own refusals on them (401, 403, 413, 500) stay problem+json.
STANDARD_ERRORS_PREFIX = "/ngsi-ld/"


def declare(document: dict[str, Any]) -> None:
    """Declare the problem answers of every operation of an OpenAPI document: the statuses its
    traits imply (see :func:`_statuses`) and any error status a route names itself
    (``responses={408: {...}}``), each with the problem+json body it really has. FastAPI's own
    422 (an ``application/json`` validation error) is replaced: ours is a problem too."""
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            answers: dict[str, Any] = operation.setdefault("responses", {})
            for status in _statuses(method, operation):
                answers.setdefault(str(status), {"description": ANSWERS[status]})
            for code, answer in answers.items():
                if code.isdigit() and int(code) >= 400:
                    if _own_body(answer):
                        continue
                    if answer.get("description") in (None, "Validation Error"):
                        answer["description"] = ANSWERS.get(int(code), "Error")
                    answer["content"] = _problem_answer(answer["description"])["content"]
                    if path.startswith(STANDARD_ERRORS_PREFIX):
                        schema = {"$ref": "#/components/schemas/Problem"}
                        answer["content"]["application/json"] = {"schema": schema}
            operation["responses"] = dict(sorted(answers.items()))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["Problem"] = Problem.model_json_schema()


def install(app: FastAPI) -> None:
    """Register the problem+json handlers, the request ids and the documented answers."""
    app.add_exception_handler(SmartpoleError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(DataError, _unstorable)
    app.add_exception_handler(DBAPIError, _database)
    app.add_middleware(RequestIds)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        # FastAPI caches its document and rebuilds it when routes change; declaring is
        # idempotent and cheap, so it runs on whichever document is handed out.
        document = build()
        declare(document)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
