"""The console's login: ``POST /api/session`` opens a session (a cookie), ``GET`` tells who is
logged in, ``DELETE`` logs out. Failed logins are slowed down per user name and per address
(:mod:`smartpole.registry.throttle`); every attempt is in the audit log."""

from __future__ import annotations

import contextlib
import math
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from smartpole.api.deps import (
    SESSION_COOKIE,
    AuditDep,
    LoginDep,
    LoginsDep,
    UsersDep,
    address_of,
    session_login,
)
from smartpole.errors import NotFound, Throttled, Unauthenticated
from smartpole.model.types import Role
from smartpole.model.users import Actor, ActorType
from smartpole.registry.audit import AuditLog
from smartpole.registry.users import MAX_PASSWORD_LENGTH, Login, Users

__all__ = ["SessionOut", "router"]

router = APIRouter(prefix="/api", tags=["session"])
PROBLEM: dict[str, Any] = {"application/problem+json": {}}


class LoginIn(BaseModel):
    """A login name and its password."""

    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1, max_length=64, examples=["ops-wang"])
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


class SessionUser(BaseModel):
    """Who is logged in."""

    id: int
    name: str
    tenant: str
    role: Role


class SessionOut(BaseModel):
    """The logged-in user and the token its page sends as ``X-CSRF-Token`` with every write."""

    user: SessionUser
    csrf: str

    @classmethod
    def of(cls, login: Login) -> SessionOut:
        """From a session."""
        who = login.principal
        return cls(
            user=SessionUser(id=who.user_id or 0, name=who.name, tenant=who.tenant, role=who.role),
            csrf=login.session.csrf,
        )


@router.post(
    "/session",
    summary="Log in",
    responses={
        401: {"content": PROBLEM, "description": "wrong user name or password (one answer)"},
        429: {
            "content": PROBLEM,
            "description": "too many failed logins for this name or address; see Retry-After",
        },
    },
)
async def login(
    request: Request,
    response: Response,
    body: LoginIn,
    users: UsersDep,
    logins: LoginsDep,
    audit: AuditDep,
) -> SessionOut:
    """Check a user's password and open a session: the ``smartpole_session`` cookie (HttpOnly,
    SameSite=Strict, Secure over https) and, in the body, the CSRF token writes must send."""
    address = address_of(request)
    wait = logins.retry_after(body.user, address)
    if wait > 0:
        raise Throttled(
            "too many failed logins: wait before trying again", retry_after=math.ceil(wait)
        )
    try:
        user = await run_in_threadpool(users.verify, body.user, body.password)
    except Unauthenticated:
        logins.failed(body.user, address)
        await run_in_threadpool(_refused, users, audit, body.user, address)
        raise
    logins.succeeded(body.user, address)
    session, secret = await run_in_threadpool(users.open_session, user, address)
    await run_in_threadpool(
        audit.record, session.principal.actor, "session.login", address=address, status=200
    )
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return SessionOut.of(session)


def _refused(users: Users, audit: AuditLog, name: str, address: str) -> None:
    """Record a failed login, under the user it named when there is one (its tenant's admins
    see it)."""
    actor = Actor(ActorType.USER, None, name, None)
    with contextlib.suppress(NotFound):
        user = users.by_name(name)
        actor = Actor(ActorType.USER, user.id, user.name, user.tenant_id)
    audit.record(actor, "session.login_failed", address=address, status=401)


@router.get("/session", summary="Who is logged in")
def current_session(login: LoginDep) -> SessionOut:
    """The session's user and CSRF token (401 when not logged in or the session ended)."""
    return SessionOut.of(login)


@router.delete("/session", status_code=204, summary="Log out")
async def logout(request: Request, users: UsersDep, audit: AuditDep) -> Response:
    """End the session and clear its cookie (a write: send ``X-CSRF-Token``); without a live
    session there is nothing to end and the answer is the same."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        try:
            login = await run_in_threadpool(session_login, request, users, cookie)
        except Unauthenticated:
            pass  # ended already
        else:
            await run_in_threadpool(users.close_session, login.session.id)
            await run_in_threadpool(
                audit.record,
                login.principal.actor,
                "session.logout",
                address=address_of(request),
                status=204,
            )
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
