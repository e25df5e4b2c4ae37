"""Request dependencies: the services a route uses, and the calling principal.

``create_app`` keeps its :class:`~smartpole.api.services.Services` on ``app.state``; each
dependency hands a route one entry of it, so a route declares exactly what it uses
(``def get_pole(assets: AssetsDep, who: Caller, ...)``). They are async and do no I/O: no
thread hop per request.
"""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request, WebSocket
from fastapi.requests import HTTPConnection
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from smartpole.api.services import Connections, Health, Services
from smartpole.config import Settings
from smartpole.control import Control
from smartpole.devices import DeviceService
from smartpole.errors import Forbidden, SmartpoleError, Unauthenticated
from smartpole.hub.alarms.store import Alarms
from smartpole.hub.analytics.anomaly import AnomalyService
from smartpole.hub.analytics.forecast import Forecasts
from smartpole.hub.engine import Hub
from smartpole.hub.live import Live
from smartpole.hub.poles import PoleStates
from smartpole.hub.webhooks.store import Webhooks
from smartpole.hub.workorders.store import WorkOrders
from smartpole.ingest.pipeline import Pipeline
from smartpole.lighting.service import LightingService
from smartpole.metrics import Metrics
from smartpole.registry.access import Principal, Tenants
from smartpole.registry.assets import Assets
from smartpole.registry.audit import AuditLog
from smartpole.registry.claims import Claims
from smartpole.registry.credentials import Credentials
from smartpole.registry.firmware import Firmware
from smartpole.registry.grants import Grants
from smartpole.registry.provisioning import Provisioning
from smartpole.registry.throttle import LoginThrottle
from smartpole.registry.users import Login, Users
from smartpole.store import Database, SeriesStore
from smartpole.transport.broker import BrokerConsumer

__all__ = [
    "CSRF_HEADER",
    "NOT_A_CHANGE",
    "SESSION_COOKIE",
    "WRITES",
    "AlarmsDep",
    "AnomalyDep",
    "AssetsDep",
    "AuditDep",
    "BrokerDep",
    "Caller",
    "ClaimsDep",
    "ConnectionsDep",
    "ControlDep",
    "CredentialsDep",
    "DatabaseDep",
    "DevicesDep",
    "FirmwareDep",
    "ForecastsDep",
    "GrantsDep",
    "HealthDep",
    "HubDep",
    "LightingDep",
    "LiveDep",
    "LoginDep",
    "LoginsDep",
    "MaybeCaller",
    "MetricsDep",
    "PipelineDep",
    "PoleStatesDep",
    "ProvisioningDep",
    "SeriesDep",
    "SettingsDep",
    "TenantsDep",
    "UsersDep",
    "WebhooksDep",
    "WorkOrdersDep",
    "address_of",
    "websocket_principal",
]

SESSION_COOKIE = "smartpole_session"
CSRF_HEADER = "X-CSRF-Token"
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def services_of(conn: HTTPConnection) -> Services:
    """The services the app was built with (for a request or a WebSocket)."""
    services: Services = conn.app.state.services
    return services


async def settings(conn: HTTPConnection) -> Settings:
    """The node's settings."""
    return services_of(conn).settings


async def database(conn: HTTPConnection) -> Database:
    """The database (its engine, dialect and schema revision)."""
    return services_of(conn).database


async def tenants(conn: HTTPConnection) -> Tenants:
    """Tenants and their API keys."""
    return services_of(conn).tenants


async def users(conn: HTTPConnection) -> Users:
    """People who log in, and their sessions."""
    return services_of(conn).users


async def logins(conn: HTTPConnection) -> LoginThrottle:
    """Failed logins per user name and address."""
    return services_of(conn).logins


async def audit(conn: HTTPConnection) -> AuditLog:
    """The audit log."""
    return services_of(conn).audit


async def assets(conn: HTTPConnection) -> Assets:
    """Poles, devices and their attributes."""
    return services_of(conn).assets


async def grants(conn: HTTPConnection) -> Grants:
    """Gateway bindings and mount grants."""
    return services_of(conn).grants


async def credentials(conn: HTTPConnection) -> Credentials:
    """Devices' MQTT credentials."""
    return services_of(conn).credentials


async def provisioning(conn: HTTPConnection) -> Provisioning:
    """Provisioning profiles."""
    return services_of(conn).provisioning


async def claims(conn: HTTPConnection) -> Claims:
    """Device claiming."""
    return services_of(conn).claims


async def firmware(conn: HTTPConnection) -> Firmware:
    """Firmware packages and their assignment."""
    return services_of(conn).firmware


async def series(conn: HTTPConnection) -> SeriesStore:
    """Telemetry: latest values, history, rollups, retention, quarantine."""
    return services_of(conn).series


async def pipeline(conn: HTTPConnection) -> Pipeline:
    """The ingest pipeline."""
    return services_of(conn).pipeline


async def control(conn: HTTPConnection) -> Control:
    """Commands to devices."""
    return services_of(conn).control


async def hub(conn: HTTPConnection) -> Hub:
    """The rules engine (rules, the alarm stream, its queue)."""
    return services_of(conn).hub


async def alarms(conn: HTTPConnection) -> Alarms:
    """Alarms."""
    return services_of(conn).alarms


async def pole_states(conn: HTTPConnection) -> PoleStates:
    """Every pole's state per tenant (the map)."""
    return services_of(conn).pole_states


async def live(conn: HTTPConnection) -> Live:
    """The console's live socket service."""
    return services_of(conn).live


async def webhooks(conn: HTTPConnection) -> Webhooks:
    """Webhooks and their deliveries."""
    return services_of(conn).webhooks


async def work_orders(conn: HTTPConnection) -> WorkOrders:
    """Work orders and maintenance teams."""
    return services_of(conn).work_orders


async def anomaly(conn: HTTPConnection) -> AnomalyService:
    """The anomaly detector."""
    return services_of(conn).anomaly


async def forecasts(conn: HTTPConnection) -> Forecasts:
    """Demand forecasts."""
    return services_of(conn).forecasts


async def lighting(conn: HTTPConnection) -> LightingService:
    """Lighting programs, calendars, overrides, plans and energy."""
    return services_of(conn).lighting


async def devices(conn: HTTPConnection) -> DeviceService:
    """The device API (what devices do, whichever transport carries them)."""
    return services_of(conn).devices


async def broker(conn: HTTPConnection) -> BrokerConsumer | None:
    """The external broker's consumer, or None without one."""
    return services_of(conn).broker


async def metrics(conn: HTTPConnection) -> Metrics:
    """The node's metrics."""
    return services_of(conn).metrics


async def connections(conn: HTTPConnection) -> Connections:
    """The devices' live connections."""
    return services_of(conn).connections


async def health(conn: HTTPConnection) -> Health:
    """Whether the node can take traffic."""
    return services_of(conn).health


SettingsDep = Annotated[Settings, Depends(settings)]
DatabaseDep = Annotated[Database, Depends(database)]
TenantsDep = Annotated[Tenants, Depends(tenants)]
UsersDep = Annotated[Users, Depends(users)]
LoginsDep = Annotated[LoginThrottle, Depends(logins)]
AuditDep = Annotated[AuditLog, Depends(audit)]
AssetsDep = Annotated[Assets, Depends(assets)]
GrantsDep = Annotated[Grants, Depends(grants)]
CredentialsDep = Annotated[Credentials, Depends(credentials)]
ProvisioningDep = Annotated[Provisioning, Depends(provisioning)]
ClaimsDep = Annotated[Claims, Depends(claims)]
FirmwareDep = Annotated[Firmware, Depends(firmware)]
SeriesDep = Annotated[SeriesStore, Depends(series)]
PipelineDep = Annotated[Pipeline, Depends(pipeline)]
ControlDep = Annotated[Control, Depends(control)]
HubDep = Annotated[Hub, Depends(hub)]
AlarmsDep = Annotated[Alarms, Depends(alarms)]
WebhooksDep = Annotated[Webhooks, Depends(webhooks)]
PoleStatesDep = Annotated[PoleStates, Depends(pole_states)]
LiveDep = Annotated[Live, Depends(live)]
WorkOrdersDep = Annotated[WorkOrders, Depends(work_orders)]
AnomalyDep = Annotated[AnomalyService, Depends(anomaly)]
ForecastsDep = Annotated[Forecasts, Depends(forecasts)]
LightingDep = Annotated[LightingService, Depends(lighting)]
DevicesDep = Annotated[DeviceService, Depends(devices)]
BrokerDep = Annotated[BrokerConsumer | None, Depends(broker)]
MetricsDep = Annotated[Metrics, Depends(metrics)]
ConnectionsDep = Annotated[Connections, Depends(connections)]
HealthDep = Annotated[Health, Depends(health)]

_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")
_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description=f"The console's session (POST /api/session); writes also send {CSRF_HEADER}",
)


def address_of(conn: HTTPConnection) -> str:
    """The caller's address, as the audit log and the login throttle know it."""
    return conn.client.host if conn.client else ""


def check_csrf(request: Request, login: Login) -> None:
    """The one CSRF rule: a write authenticated by the session cookie carries the session's
    token in ``X-CSRF-Token`` (a page of another site can make the browser send the cookie,
    never the header). API keys need no token: a browser never sends one by itself."""
    if request.method not in WRITES:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), login.session.csrf.encode()):
        raise Forbidden(f"a write with the session cookie needs the {CSRF_HEADER} header")


def session_login(
    request: Request,
    users: UsersDep,
    cookie: Annotated[str | None, Depends(_cookie)],
) -> Login:
    """The caller's console session (from the cookie), CSRF-checked on writes."""
    if not cookie:
        raise Unauthenticated("not logged in")
    login = users.session(cookie)
    check_csrf(request, login)
    return login


def principal(
    request: Request,
    tenants: TenantsDep,
    users: UsersDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> Principal:
    """Who calls: an API key (``Authorization: Bearer`` or ``X-API-Key``; it wins over a
    cookie), else the console's session cookie (writes CSRF-checked). The principal is kept
    on ``request.state`` for the audit log."""
    secret = bearer.credentials if bearer else header
    if secret:
        who = tenants.authenticate(secret)
    elif cookie:
        login = session_login(request, users, cookie)
        request.state.session_id = login.session.id
        who = login.principal
    else:
        raise Unauthenticated(
            "an API key (Authorization: Bearer <key>) or a session (POST /api/session) is required"
        )
    request.state.principal = who
    return who


def principal_or_none(
    request: Request,
    tenants: TenantsDep,
    users: UsersDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> Principal | None:
    """Who calls, as :func:`principal`, or None when the request carries no credential at all
    (a route that also serves anonymous callers decides what they get)."""
    if not (bearer or header or cookie):
        return None
    return principal(request, tenants, users, bearer, header, cookie)


def _same_origin(ws: WebSocket) -> bool:
    origin = ws.headers.get("origin")
    host = ws.headers.get("host")
    return bool(origin and host) and urlsplit(origin).netloc == host


async def websocket_principal(ws: WebSocket) -> Principal | None:
    """Who opens a WebSocket: an API key (``?key=`` or ``Authorization: Bearer``), else the
    session cookie of a page of this very host (the ``Origin`` must match ``Host``: browsers
    send cookies with a cross-site WebSocket too). None after closing the socket with 1008."""
    auth = ws.headers.get("authorization", "")
    secret = auth[7:] if auth.lower().startswith("bearer ") else ws.query_params.get("key")
    services = services_of(ws)
    try:
        if secret:
            return await run_in_threadpool(services.tenants.authenticate, secret)
        cookie = ws.cookies.get(SESSION_COOKIE)
        if cookie and _same_origin(ws):
            login = await run_in_threadpool(services.users.session, cookie)
            return login.principal
    except SmartpoleError:
        pass
    await ws.close(code=1008, reason="an API key or a session of this site is required")
    return None


def _unaudited(request: Request) -> None:
    request.state.audited = False


NOT_A_CHANGE = Depends(_unaudited)
"""A route dependency for a POST that changes nothing (a query too big for a URL, a dry run):
the audit log (``api.audit.AuditTrail``) leaves it out."""

Caller = Annotated[Principal, Depends(principal)]
MaybeCaller = Annotated[Principal | None, Depends(principal_or_none)]
LoginDep = Annotated[Login, Depends(session_login)]
