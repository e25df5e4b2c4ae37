"""Request dependencies: the platform and the calling principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from smartpole.app import Platform
from smartpole.errors import Unauthenticated
from smartpole.registry.access import Principal

__all__ = ["Caller", "Plat"]

_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


async def platform(request: Request) -> Platform:
    """The running platform (async: no thread hop for a dependency that does no I/O)."""
    return request.app.state.platform  # type: ignore[no-any-return]


def principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> Principal:
    """Authenticate the API key from ``Authorization: Bearer`` or ``X-API-Key``."""
    secret = bearer.credentials if bearer else header
    if not secret:
        raise Unauthenticated("an API key is required (Authorization: Bearer <key>)")
    plat: Platform = request.app.state.platform
    return plat.tenants.authenticate(secret)


Plat = Annotated[Platform, Depends(platform)]
Caller = Annotated[Principal, Depends(principal)]
