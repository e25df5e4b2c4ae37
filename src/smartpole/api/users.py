"""Users (people who log in to the console), managed by admins.

A tenant's admin manages its own tenant's users; the city operator's admins manage everyone's.
Nobody gives a user a role above their own. A user may change its own password with its
current one; an admin resets anyone's it manages. Passwords never appear in an answer.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from smartpole.api.deps import Caller, LoginsDep, TenantsDep, UsersDep, address_of
from smartpole.api.schemas import Id
from smartpole.errors import Forbidden, NotFound, Throttled
from smartpole.model.types import Role
from smartpole.model.users import MIN_PASSWORD_LENGTH, User
from smartpole.registry.access import Principal
from smartpole.registry.users import MAX_PASSWORD_LENGTH, Users

__all__ = ["UserOut", "router"]

router = APIRouter(prefix="/api", tags=["users"])
PROBLEM: dict[str, Any] = {"application/problem+json": {}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"content": PROBLEM, "description": "no such user in a tenant the caller manages"}
}
Password = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_PASSWORD_LENGTH,
        description=f"at least {MIN_PASSWORD_LENGTH} characters",
    ),
]


class UserOut(BaseModel):
    """A user (never its password)."""

    id: int
    name: str
    tenant_id: int
    tenant: str
    role: Role
    disabled: bool
    created: int
    updated: int
    last_login: int | None

    @classmethod
    def of(cls, user: User) -> UserOut:
        """From the domain object."""
        return cls(**user.to_dict())


class UserIn(BaseModel):
    """A new user: login name, role, password, and (city operator only) its tenant."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, examples=["ops-wang"])
    role: Role
    password: Password
    tenant: str | None = Field(
        None, max_length=64, description="tenant name; only the city operator names another"
    )


class UserPatch(BaseModel):
    """A change of role, or disabling (its sessions end at once) or enabling."""

    model_config = ConfigDict(extra="forbid")
    role: Role | None = None
    disabled: bool | None = None


class PasswordIn(BaseModel):
    """A new password; a user changing its own also sends its current one."""

    model_config = ConfigDict(extra="forbid")
    password: Password
    current: str | None = Field(None, max_length=MAX_PASSWORD_LENGTH)


def _may_grant(who: Principal, role: Role | None) -> None:
    if role is not None and not who.role.at_least(role):
        raise Forbidden(f"a {who.role} may not give the {role} role", role=role)


def _managed(users: Users, who: Principal, user_id: int) -> User:
    """A user the caller's tenant manages (NotFound for anyone else's, as if absent)."""
    user = users.get(user_id)
    if not who.is_operator and user.tenant_id != who.tenant_id:
        raise NotFound(f"user {user_id} not found", user_id=user_id)
    return user


@router.get("/users", summary="List users")
def list_users(
    users: UsersDep,
    tenants: TenantsDep,
    who: Caller,
    tenant: Annotated[
        str | None, Query(max_length=64, description="one tenant's (city operator)")
    ] = None,
) -> list[UserOut]:
    """The users of the caller's tenant (admin role); the city operator sees every tenant's,
    or one's with ``tenant=``."""
    who.require(Role.ADMIN)
    tenant_id: int | None = who.tenant_id
    if who.is_operator:
        tenant_id = tenants.by_name(tenant)["id"] if tenant else None
    elif tenant and tenant != who.tenant:
        raise NotFound(f"tenant {tenant!r} not found", name=tenant)
    return [UserOut.of(u) for u in users.list(tenant_id)]


@router.post(
    "/users",
    status_code=201,
    summary="Create a user",
    responses={409: {"content": PROBLEM, "description": "the login name is taken"}},
)
def create_user(
    request: Request, users: UsersDep, tenants: TenantsDep, who: Caller, body: UserIn
) -> UserOut:
    """Add a user to the caller's tenant (admin role; the city operator may name another
    tenant) with a role no higher than the caller's own."""
    who.require(Role.ADMIN)
    _may_grant(who, body.role)
    tenant_id = who.tenant_id
    if body.tenant is not None and body.tenant != who.tenant:
        if not who.is_operator:
            raise Forbidden("only the city operator creates users of another tenant")
        tenant_id = tenants.by_name(body.tenant)["id"]
    user = users.create(tenant_id, body.name, body.role, body.password)
    request.state.audit_detail = {"name": user.name, "tenant": user.tenant, "role": user.role}
    return UserOut.of(user)


@router.get("/users/{user_id}", summary="Get a user", responses=NOT_FOUND)
def get_user(users: UsersDep, who: Caller, user_id: Id) -> UserOut:
    """A user of a tenant the caller manages (admin role), or the caller itself."""
    if who.user_id != user_id:
        who.require(Role.ADMIN)
    return UserOut.of(_managed(users, who, user_id))


@router.patch("/users/{user_id}", summary="Change a user", responses=NOT_FOUND)
def update_user(
    request: Request, users: UsersDep, who: Caller, user_id: Id, body: UserPatch
) -> UserOut:
    """Change a user's role (no higher than the caller's) or disable it (its sessions end at
    once) or enable it again (admin role)."""
    who.require(Role.ADMIN)
    _may_grant(who, body.role)
    target = _managed(users, who, user_id)
    request.state.audit_detail = {
        "name": target.name,
        **body.model_dump(exclude_none=True, mode="json"),
    }
    return UserOut.of(users.update(user_id, role=body.role, disabled=body.disabled))


@router.post(
    "/users/{user_id}/password",
    name="user.password",
    status_code=204,
    summary="Set a user's password",
    responses={
        **NOT_FOUND,
        403: {
            "content": PROBLEM,
            "description": "not an admin, or (changing one's own) the current password is wrong",
        },
        429: {"content": PROBLEM, "description": "too many wrong current passwords"},
    },
)
async def set_password(
    request: Request,
    users: UsersDep,
    logins: LoginsDep,
    who: Caller,
    user_id: Id,
    body: PasswordIn,
) -> Response:
    """A user changes its own password with its ``current`` one (its other sessions end); an
    admin resets the password of a user it manages (every session of that user ends)."""
    if who.user_id == user_id:
        target = await run_in_threadpool(_managed, users, who, user_id)
        address = address_of(request)
        wait = logins.retry_after(target.name, address)
        if wait > 0:
            raise Throttled("too many wrong passwords: wait", retry_after=math.ceil(wait))
        ok = await run_in_threadpool(users.check, user_id, body.current or "")
        if not ok:
            logins.failed(target.name, address)
            raise Forbidden("the current password is wrong")
        keep = getattr(request.state, "session_id", None)
    else:
        who.require(Role.ADMIN)
        target = await run_in_threadpool(_managed, users, who, user_id)
        keep = None
    await run_in_threadpool(users.set_password, user_id, body.password, keep=keep)
    request.state.audit_detail = {"name": target.name}
    return Response(status_code=204)
