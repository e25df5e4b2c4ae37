"""What the REST API uses of the platform: one typed container, built by the composition root.

``create_app`` receives a :class:`Services`; ``api.deps`` hands each route the few entries it
declares. The API never sees the ``Platform`` itself: the three small protocols below name what
it asks of the node beyond its services (readiness, the devices' live connections, start/stop).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from smartpole.config import Settings
from smartpole.control import Control
from smartpole.devices import DeviceApi, DeviceService
from smartpole.errors import StoreUnavailable
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
from smartpole.ngsild.service import OpenData
from smartpole.registry.access import Tenants
from smartpole.registry.assets import Assets
from smartpole.registry.audit import AuditLog
from smartpole.registry.claims import Claims
from smartpole.registry.credentials import Credentials
from smartpole.registry.firmware import Firmware
from smartpole.registry.grants import Grants
from smartpole.registry.provisioning import Provisioning
from smartpole.registry.throttle import LoginThrottle
from smartpole.registry.users import Users
from smartpole.store import Database, SeriesStore
from smartpole.transport.broker import BrokerConsumer
from smartpole.transport.polls import Polls

__all__ = ["Connections", "Health", "Lifecycle", "Services"]


class Health(Protocol):
    """Whether this node can take traffic (``/readyz``, ``/healthz``)."""

    def unready(self) -> StoreUnavailable | None:
        """Why the node should get no traffic now, or None when it is ready (blocking)."""


class Connections(Protocol):
    """The devices' live connections, whichever endpoint holds them (MQTT, broker, HTTP poll)."""

    def is_online(self, device_id: int, last_seen: int | None) -> bool:
        """Connected now, or heard from within the inactivity timeout."""

    async def push_shared(self, device_id: int, values: dict[str, Any]) -> bool:
        """Send shared-attribute updates to the device if it is connected."""

    def unbound(self, device_id: int) -> None:
        """A gateway binding of the device was revoked: gateways stop speaking for it."""


class Lifecycle(Protocol):
    """What the app's lifespan starts and stops when it owns the platform."""

    async def start(self) -> None:
        """Start the platform's tasks and endpoints."""

    async def stop(self) -> None:
        """Drain and stop them."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Services:
    """Every service a route or the HTTP device API uses, and nothing else."""

    settings: Settings
    database: Database
    tenants: Tenants
    users: Users  # people who log in, and their sessions
    logins: LoginThrottle  # failed logins per user name and address (this node's memory)
    audit: AuditLog
    assets: Assets
    grants: Grants
    credentials: Credentials
    provisioning: Provisioning
    claims: Claims
    firmware: Firmware
    series: SeriesStore
    pipeline: Pipeline
    control: Control
    hub: Hub  # rules (check, reload), the alarm stream, the evaluation queue
    alarms: Alarms
    pole_states: PoleStates  # every pole's state per tenant, for the map
    live: Live  # the console's live socket
    webhooks: Webhooks
    work_orders: WorkOrders
    anomaly: AnomalyService
    forecasts: Forecasts
    lighting: LightingService  # programs, calendars, overrides, plans, energy
    open_data: OpenData  # NGSI-LD: entities, history, batches, subscriptions, contexts
    devices: DeviceService  # the platform as devices see it (provisioning)
    device_api: DeviceApi  # the one device API (the HTTP device routes)
    polls: Polls  # the HTTP device API's long polls
    broker: BrokerConsumer | None  # None without an external broker
    metrics: Metrics
    connections: Connections
    health: Health
