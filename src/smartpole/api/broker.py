"""Broker mode over HTTP: EMQX's authentication and authorization hooks, and a node's status.

EMQX's HTTP authenticator and authorizer post each CONNECT and each PUBLISH/SUBSCRIBE here and
obey ``{"result": "allow" | "deny"}``. Devices log in with their name and access token;
smartpole's nodes with ``broker_username``/``broker_password``. The topic rules are the ones the
Mosquitto ACL file is generated from (``transport/broker/topics.py``). The hooks answer only
requests carrying ``X-Smartpole-Broker-Secret: <broker_hook_secret>``, and are off while that
setting is unset. See docs/brokers.md for EMQX's side.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, Field

from smartpole.api.deps import AssetsDep, BrokerDep, Caller, SettingsDep
from smartpole.config import Settings
from smartpole.errors import NotFound, Unauthenticated
from smartpole.model.types import DeviceKind, Role
from smartpole.registry.broker import USERNAME_RE, BrokerAccounts
from smartpole.transport.broker.topics import may

__all__ = ["AuthnIn", "AuthzIn", "Verdict", "router"]

router = APIRouter(
    prefix="/api/broker",
    tags=["broker"],
    responses={
        401: {"description": "A hook request without the broker secret"},
        404: {"description": "The hooks are off (no broker_hook_secret set)"},
    },
)
SECRET_HEADER = "X-Smartpole-Broker-Secret"  # noqa: S105 - a header name


class AuthnIn(BaseModel):
    """What EMQX's HTTP authenticator posts (``${username}``, ``${password}``, ``${clientid}``)."""

    username: str = ""
    password: str = ""
    clientid: str = ""


class AuthzIn(BaseModel):
    """What EMQX's HTTP authorizer posts (``${username}``, ``${topic}``, ``${action}``)."""

    username: str = ""
    topic: str = Field(min_length=1, examples=["sp/v1/FT-SN-0001-lamp/telemetry"])
    action: str = Field(examples=["publish", "subscribe"])
    clientid: str = ""


class Verdict(BaseModel):
    """EMQX's answer format."""

    result: Literal["allow", "deny"]
    is_superuser: bool = False


def _same(given: str, expected: str | None) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), (expected or "").encode())


def hook(
    settings: SettingsDep,
    secret: Annotated[str | None, Header(alias=SECRET_HEADER)] = None,
) -> Settings:
    """The settings, for a request that carries the broker hooks' shared secret."""
    expected = settings.broker_hook_secret
    if not expected:
        raise NotFound("the broker hooks are off: set broker_hook_secret")
    if not _same(secret or "", expected):
        raise Unauthenticated(f"a wrong or missing {SECRET_HEADER} header")
    return settings


Hook = Annotated[Settings, Depends(hook)]


@router.post("/authenticate", summary="EMQX HTTP authentication hook")
def authenticate(s: Hook, assets: AssetsDep, body: AuthnIn) -> Verdict:
    """Allow a device (name + access token) or smartpole's own broker user; deny the rest."""
    if body.username == s.broker_username:
        ok = _same(body.password, s.broker_password)
    else:
        ok = BrokerAccounts(assets).authenticate(body.username, body.password) is not None
    return Verdict(result="allow" if ok else "deny")


@router.post("/authorize", summary="EMQX HTTP authorization hook")
async def authorize(s: Hook, assets: AssetsDep, body: AuthzIn) -> Verdict:
    """Allow a device its own topics (a gateway its gateway API's too), smartpole's user the
    service topics; deny the rest."""
    user = body.username
    device = None
    if user != s.broker_username and USERNAME_RE.match(user):
        device = await asyncio.to_thread(assets.device_by_name, user)
    gateway = device is not None and device.kind is DeviceKind.GATEWAY
    ok = may(user, body.topic, body.action, s.broker_username, gateway=gateway)
    return Verdict(result="allow" if ok else "deny")


@router.get("/status", summary="This node's broker consumer")
async def status(broker: BrokerDep, settings: SettingsDep, who: Caller) -> dict[str, Any]:
    """Whether this node is connected to the broker, and what it has consumed (city operator)."""
    who.require_city(Role.VIEWER)
    if broker is None:
        return {"enabled": False}
    return {"enabled": True, "node": settings.node_id, **broker.status()}
