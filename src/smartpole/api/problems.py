"""Errors as RFC 9457 problem+json: the only place domain errors meet HTTP."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from smartpole.errors import (
    Conflict,
    DeviceOffline,
    Forbidden,
    InvalidInput,
    NotFound,
    Overloaded,
    PayloadError,
    PayloadTooLarge,
    SmartpoleError,
    StoreUnavailable,
    Timeout,
    Unauthenticated,
)
from smartpole.store.database import store_unavailable

__all__ = ["install", "problem"]

log = logging.getLogger(__name__)

STATUS: dict[type[SmartpoleError], int] = {
    NotFound: 404,
    Conflict: 409,
    Forbidden: 403,
    Unauthenticated: 401,
    PayloadError: 422,
    InvalidInput: 422,
    PayloadTooLarge: 413,
    Overloaded: 503,
    StoreUnavailable: 503,
    DeviceOffline: 409,
    Timeout: 504,
}
PROBLEM_TYPE = "https://smartpole.dev/problems/"
# Seconds a client should wait before retrying: a full queue drains fast, a database restart
# or failover takes seconds.
RETRY_AFTER: dict[type[SmartpoleError], int] = {StoreUnavailable: 5}


def problem(
    status: int, title: str, detail: str, *, retry_after: int = 1, **extra: Any
) -> Response:
    """A problem+json response (a 503 tells when to retry: ``Retry-After``, in seconds)."""
    body = {
        "type": PROBLEM_TYPE + title.lower().replace(" ", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    headers = {"Retry-After": str(retry_after)} if status == 503 else None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return Response(
        orjson.dumps(body, default=str),
        status,
        headers=headers,
        media_type="application/problem+json",
    )


def _status(err: SmartpoleError) -> int:
    for cls in type(err).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


async def _domain(_: Request, err: Exception) -> Response:
    assert isinstance(err, SmartpoleError)
    extra: dict[str, Any] = dict(err.fields)
    if isinstance(err, InvalidInput) and err.errors:
        extra["errors"] = err.errors
    status = _status(err)
    # A malformed-JSON body is a 400; a well-formed body of the wrong shape a 422.
    if isinstance(err, PayloadError) and "pos" in err.fields:
        status = 400
    retry_after = next((RETRY_AFTER[c] for c in type(err).__mro__ if c in RETRY_AFTER), 1)
    return problem(status, err.title, err.detail, retry_after=retry_after, **extra)


async def _database(request: Request, err: Exception) -> Response:
    """A database error in a read: an outage is a 503 to retry, anything else a 500."""
    outage = store_unavailable(err)
    if outage is None:
        log.error("%s %s: database error", request.method, request.url.path, exc_info=err)
        return problem(500, "Internal error", "the database failed to answer")
    return await _domain(request, outage)


async def _validation(_: Request, err: Exception) -> Response:
    assert isinstance(err, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in err.errors()
    ]
    return problem(422, "Invalid input", "the request does not match the schema", errors=errors)


async def _http(_: Request, err: Exception) -> Response:
    assert isinstance(err, StarletteHTTPException)
    return problem(err.status_code, str(err.detail), str(err.detail))


def install(app: FastAPI) -> None:
    """Register the problem+json handlers on an app."""
    app.add_exception_handler(SmartpoleError, _domain)
    app.add_exception_handler(sqlalchemy.exc.DBAPIError, _database)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
