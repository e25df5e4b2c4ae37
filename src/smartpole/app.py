"""The composition root: builds every part from one Settings object and wires them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from smartpole.config import Settings
from smartpole.control import Control
from smartpole.devices import DeviceApi, DeviceService, SessionLimits
from smartpole.errors import StoreUnavailable
from smartpole.hub.analytics.anomaly import AnomalyService
from smartpole.hub.analytics.detector import Detector
from smartpole.hub.analytics.forecast import Forecasts
from smartpole.hub.engine import Hub
from smartpole.hub.live import Live
from smartpole.hub.poles import PoleStates
from smartpole.hub.workorders.lifecycle import parse_sla
from smartpole.ingest.pipeline import Pipeline
from smartpole.lighting.conformance import Conformance
from smartpole.lighting.lamp_watch import LampWatch, RegistryLampFacts
from smartpole.lighting.lamps import LampInventory
from smartpole.lighting.runtime import LightingRuntime
from smartpole.lighting.store import LightingStore
from smartpole.metrics import Metrics
from smartpole.model.types import Role
from smartpole.ngsild.context import ContextLoader, fetch_over_http
from smartpole.ngsild.service import OpenData
from smartpole.registry.access import Principal, Tenants
from smartpole.registry.assets import Assets, seen_recently
from smartpole.registry.audit import AuditLog
from smartpole.registry.broker import BrokerAccounts
from smartpole.registry.census import Census
from smartpole.registry.claims import Claims
from smartpole.registry.credentials import Credentials
from smartpole.registry.firmware import Firmware
from smartpole.registry.grants import Grants
from smartpole.registry.provisioning import Provisioning
from smartpole.registry.throttle import LoginThrottle
from smartpole.registry.users import Users
from smartpole.store import Database, SeriesStore, open_database, open_series
from smartpole.store.backup import server_lock
from smartpole.store.database import store_unavailable
from smartpole.transport.broker import BrokerConsumer
from smartpole.transport.mqtt.server import MqttServer
from smartpole.transport.mqtt.websocket import MqttWebSocketServer
from smartpole.transport.polls import Polls

if TYPE_CHECKING:
    from smartpole.api import Services

__all__ = ["Channels", "Platform"]

log = logging.getLogger(__name__)


class Channels:
    """The platform's one command channel: the MQTT endpoints (plain, TLS, WebSocket) and the
    external broker, each from its start to its stop, then the devices polling over HTTP."""

    def __init__(self, polls: Polls) -> None:
        self.endpoints: list[MqttServer | BrokerConsumer] = []  # in the order they started
        self.polls = polls

    def open(self, endpoint: MqttServer | BrokerConsumer) -> None:
        """A started endpoint takes commands from now on."""
        self.endpoints.append(endpoint)

    def close(self, endpoint: MqttServer | BrokerConsumer) -> None:
        """An endpoint about to stop takes no more commands."""
        if endpoint in self.endpoints:  # one that failed to start never joined
            self.endpoints.remove(endpoint)

    async def send(self, device_id: int, request_id: int, method: str, params: Any) -> bool:
        """Send a command through whichever endpoint holds the device's session."""
        for endpoint in self.endpoints:
            if endpoint.is_connected(device_id):
                return await endpoint.send(device_id, request_id, method, params)
        return await self.polls.send(device_id, request_id, method, params)

    def is_connected(self, device_id: int) -> bool:
        """Whether any endpoint holds a session of the device (or the broker deems it online),
        or it has an HTTP poll open."""
        return any(
            endpoint.is_connected(device_id) for endpoint in self.endpoints
        ) or self.polls.is_connected(device_id)


class Platform:
    """Everything a running smartpole holds; ``start``/``stop`` manage its tasks."""

    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        self.settings = settings
        self.db = db or open_database(settings)
        self.metrics = Metrics()  # its own registry: platforms in one process stay apart
        self.series: SeriesStore = open_series(
            self.db,
            settings.retention_days,
            flush_ms=settings.derived_flush_ms,
            node=settings.node_id,
            writer_process=settings.store_writer_process,
        )
        self.tenants = Tenants(self.db.engine, settings.hub_timezone)
        self.users = Users(
            self.db.engine,
            idle_timeout_s=settings.session_idle_timeout_s,
            lifetime_s=settings.session_lifetime_s,
        )
        self.logins = LoginThrottle(settings.login_max_failures, settings.login_max_delay_s)
        self.audit = AuditLog(self.db.engine)
        self.assets = Assets(self.db.engine)
        self.grants = Grants(self.db.engine)
        self.polls = Polls()  # HTTP devices waiting for a command
        # the MQTT endpoints and the broker join the command channel as they start
        self.channels = Channels(self.polls)
        # live updates for the console: built first, every part that changes tells it
        self.live = Live(capacity=settings.live_queue)
        self.pole_states = PoleStates(
            self.db.engine, is_online=self.is_online, listeners=[self.live]
        )
        self.control = Control(self.db.engine, self.channels, listeners=[self.live.on_command])
        self.credentials = Credentials(self.db.engine, self.assets)
        self.provisioning = Provisioning(self.db.engine, self.assets, self.credentials)
        self.claims = Claims(self.db.engine, self.assets, settings.claim_allowed_by_default)
        self.firmware = Firmware(self.db.engine, self.assets, settings.firmware_max_bytes)
        # lighting: plans pushed to gateways, timed commands, rule holds (the hub's light action)
        self.lighting_runtime = LightingRuntime(
            LightingStore(self.db.engine),
            LampInventory(self.db.engine, self.tenants.zone),
            self.series,
            self.control,
            self.assets.set_attributes,
            self.push_shared,
        )
        self.lighting = self.lighting_runtime.service
        self.hub = Hub(
            self.db.engine,
            commander=self.control,
            series=self.series,
            work_order_sla=parse_sla(settings.work_order_sla),
            timezone=settings.hub_timezone,
            webhook_attempts=settings.hub_webhook_attempts,
            webhook_backoff_ms=settings.hub_webhook_backoff_ms,
            metrics=self.metrics,
            alarm_listeners=[self.pole_states.on_alarm, self.live.on_alarm],
            lamps=self.lighting_runtime,
            workers=settings.hub_workers,
        )
        self.work_orders = self.hub.work_orders
        # NGSI-LD open data: entities, history, subscriptions; contexts never fetched unless allowed
        self.open_data = OpenData.build(
            self.db.engine,
            self.assets,
            self.series,
            self.hub.alarms,
            self._reader_of,
            ContextLoader.from_file(
                settings.ngsi_ld_contexts,
                hosts=frozenset(h.strip() for h in settings.ngsi_ld_context_hosts.split(",") if h),
                offline=settings.ngsi_ld_offline,
                fetch=fetch_over_http,
            ),
            node=settings.node_id,
            allow_private=settings.ngsi_ld_private_endpoints,
            ttl_ms=settings.ngsi_ld_notification_ttl_s * 1000,
            instance_limit=settings.ngsi_ld_temporal_limit,
        )
        # a lamp or column alarm sets a Streetlight's status: subscriptions are told
        self.hub.alarms.add_listener(self.open_data.notifier.on_alarm)
        if settings.ngsi_ld_anonymous:
            log.warning(
                "NGSI-LD: requests WITHOUT credentials act as %s (ngsi_ld_anonymous); "
                "for sandboxes and conformance runs only",
                settings.ngsi_ld_anonymous,
            )
        detector = Detector(
            threshold=settings.anomaly_threshold,
            consecutive=settings.anomaly_consecutive,
            max_series=settings.anomaly_max_series,
        )
        self.anomaly = AnomalyService(
            self.db.engine,
            self.hub.alarms,
            detector,
            node=settings.node_id,
            worker=settings.anomaly_worker and settings.anomaly_enabled,
            on_worker_restart=self.metrics.anomaly_worker_restarts.inc,
        )
        self.lamp_watch = LampWatch(
            self.hub.alarms,
            RegistryLampFacts(self.db.engine, self.tenants.zone),
            work_orders=self.work_orders,
            commanded=self.lighting_runtime.commanded,
        )
        # out of program: reported levels against the plans the runtime keeps in memory
        self.conformance = Conformance(
            self.lighting_runtime.expected,
            self.hub.alarms,
            self.lighting_runtime.lamp_of,
            tolerance=settings.lighting_tolerance,
            hold_ms=int(settings.lighting_out_of_program_s * 1000),
        )
        self.census = Census(self.db.engine, self.metrics, settings.inactivity_timeout_s * 1000)
        analytics = [self.anomaly.on_batch] if settings.anomaly_enabled else []
        self.pipeline = Pipeline(
            self.series,
            batch_size=settings.batch_size,
            batch_age_ms=settings.batch_age_ms,
            capacity=settings.queue_readings,
            metrics=self.metrics,
            listeners=[
                self.hub.on_batch,
                *analytics,
                self.lamp_watch.on_batch,
                self.conformance.on_batch,
                self.census.on_batch,
                self.pole_states.on_batch,
                self.live.on_batch,
                self.open_data.notifier.on_batch,
            ],
        )
        self.devices = DeviceService(
            self.assets,
            self.pipeline,
            self.control,
            SessionLimits(
                max_payload=settings.mqtt_max_payload,
                max_inflight=settings.mqtt_max_inflight,
                messages_per_s=settings.mqtt_rate,
                burst=2 * settings.mqtt_rate,
            ),
            credentials=self.credentials,
            provisioning=self.provisioning,
            claims=self.claims,
            firmware=self.firmware,
        )
        self.device_api = DeviceApi(self.devices)  # what every device transport speaks to
        self.forecasts = Forecasts(
            self.series, self.assets, window_days=settings.forecast_window_days
        )
        self.mqtt: list[MqttServer] = []
        self.broker: BrokerConsumer | None = None
        if settings.broker:
            accounts = BrokerAccounts(self.assets)
            self.broker = BrokerConsumer.from_settings(
                settings, self.device_api, accounts, self.metrics
            )
        self._gauges()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._held = contextlib.ExitStack()  # the data directory's lock while running

    def _gauges(self) -> None:
        """The metrics read at scrape time (docs/operators.md lists them all)."""
        m = self.metrics
        m.gauge(
            "smartpole_pipeline_pending_readings",
            "Readings queued for commit (the ingest queue's depth).",
            lambda: self.pipeline.pending,
        )
        m.gauge(
            "smartpole_pipeline_load",
            "How full the ingest queue is, 0 to 1 (1: devices are refused).",
            lambda: self.pipeline.load,
        )
        m.gauge(
            "smartpole_hub_queued_batches",
            "Committed batches waiting for rule evaluation.",
            lambda: self.hub.queued,
        )
        m.gauge(
            "smartpole_hub_lag_seconds",
            "Age of the oldest committed batch not yet evaluated by the rules (0: none).",
            lambda: self.hub.lag,
        )
        m.gauge(
            "smartpole_anomaly_queued_batches",
            "Committed batches waiting for anomaly scoring.",
            lambda: self.anomaly.queued,
        )
        m.gauges(
            "smartpole_mqtt_connections",
            "Open MQTT connections, by listener (mqtt, mqtts, ws, wss).",
            ["listener"],
            lambda: [((_listener(s),), len(s.connections)) for s in self.mqtt],
        )
        m.gauges(
            "smartpole_tenant_devices",
            "Devices each tenant owns: all, and those reporting within the inactivity timeout.",
            ["tenant", "state"],
            self.census.devices,
        )

    def _reader_of(self, tenant_id: int) -> Principal:
        """A tenant as a reader (what its subscriptions may be told of)."""
        row = self.tenants.get(tenant_id)
        return Principal(tenant_id, row["name"], Role.VIEWER, bool(row["is_operator"]))

    def upgrade(self) -> str:
        """Bring the schema to this version's head."""
        return self.db.upgrade()

    async def start(self) -> None:
        """Start the pipeline and the background tasks."""
        if not self.settings.db:  # a restore must not replace the database under us
            self._held.enter_context(server_lock(self.settings.data_dir))
        await asyncio.to_thread(self.series.recover)
        await self.pipeline.start()
        await self.hub.start()
        await self.anomaly.start()
        await self.lamp_watch.start()
        await self.lighting_runtime.start()
        await self.pole_states.start()
        await self.open_data.notifier.start()
        await self._start_mqtt()
        self._stopping.clear()
        s = self.settings
        every: list[tuple[float, str, Callable[[], Awaitable[Any]]]] = [
            (s.retention_interval_s, "retention", self._purge),
            (1.0, "command expiry", self.control.expire),
            (1.0, "pole states", self.pole_states.sweep),
            (s.hub_tick_ms / 1000, "hub timer", self.hub.tick),
            (s.work_order_check_s, "work-order overdue check", self.work_orders.check_overdue),
            (s.anomaly_snapshot_s, "anomaly snapshot", self.anomaly.snapshot),
            (s.lighting_tick_s, "lighting plans and timed commands", self.lighting_runtime.tick),
            (s.lighting_recompile_s, "lighting recompile", self.lighting_runtime.roll_on),
        ]
        if s.derived_flush_ms:
            every.append((s.derived_flush_ms / 1000, "derived-state flush", self._flush))
        for seconds, name, work in every:
            self._tasks.append(asyncio.create_task(self._every(seconds, name, work), name=name))
        if s.metrics_port >= 0:
            port = self.metrics.serve(s.metrics_host, s.metrics_port)
            log.info("metrics on http://%s:%d/metrics", s.metrics_host, port)

    async def _start_mqtt(self) -> None:
        s = self.settings
        load = lambda: self.pipeline.load  # noqa: E731
        if s.mqtt_port >= 0:
            self.mqtt.append(
                MqttServer(self.device_api, s.host, s.mqtt_port, load=load, metrics=self.metrics)
            )
        if s.mqtt_tls_cert and s.mqtt_tls_key:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(s.mqtt_tls_cert, s.mqtt_tls_key)
            self.mqtt.append(
                MqttServer(
                    self.device_api,
                    s.host,
                    s.mqtt_tls_port,
                    ssl_context=ctx,
                    load=load,
                    metrics=self.metrics,
                )
            )
        if s.mqtt_ws_port >= 0:
            ws_ctx = None
            if s.mqtt_tls_cert and s.mqtt_tls_key:
                ws_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                ws_ctx.load_cert_chain(s.mqtt_tls_cert, s.mqtt_tls_key)
            self.mqtt.append(
                MqttWebSocketServer(
                    self.device_api,
                    s.host,
                    s.mqtt_ws_port,
                    ssl_context=ws_ctx,
                    load=load,
                    metrics=self.metrics,
                )
            )
        for server in self.mqtt:
            await server.start()
            self.channels.open(server)
        if self.broker is not None:
            await self.broker.start()
            self.channels.open(self.broker)

    async def push_shared(self, device_id: int, values: dict[str, Any]) -> bool:
        """Send shared-attribute updates to the device if it is connected (or polls for them
        over HTTP)."""
        if self.polls.push_attributes(device_id, values):
            return True
        for server in self.mqtt:
            if await server.push_attributes(device_id, values):
                return True
        if self.broker is not None:
            return await self.broker.push_attributes(device_id, values)
        return False

    def unready(self) -> StoreUnavailable | None:
        """Why this node should get no traffic now, or None when it is ready: the store cannot
        commit (the writer is holding a batch it could not commit, or the database does not
        answer). Blocking: call it in a worker thread."""
        if self.pipeline.outage is not None:
            return self.pipeline.outage
        try:
            self.db.revision()  # one round trip through the pool
        except Exception as err:
            outage = store_unavailable(err)
            if outage is None:
                raise
            return outage
        return None

    def unbound(self, device_id: int) -> None:
        """A gateway binding of the device was revoked: the built-in endpoint's gateway
        sessions stop speaking for it now (broker mode looks sub-devices up again within
        its cache time)."""
        for server in self.mqtt:
            server.drop_sub_device(device_id)

    def is_online(self, device_id: int, last_seen: int | None) -> bool:
        """Connected now, or heard from within the inactivity timeout."""
        status = self.broker.presence(device_id) if self.broker is not None else None
        if status is not None:  # the device's retained status topic at the broker
            return status
        if device_id in self.devices.online or self.polls.is_connected(device_id):
            return True
        if device_id in self.devices.offline:
            return False
        return seen_recently(last_seen, self.settings.inactivity_timeout_s)

    async def stop(self) -> None:
        """Drain the pipeline, stop the tasks, close connections."""
        self._stopping.set()
        self.metrics.stop()
        await asyncio.gather(*self._tasks)
        self._tasks.clear()
        if self.broker is not None:
            self.channels.close(self.broker)
            await self.broker.stop()
        for server in self.mqtt:
            self.channels.close(server)
            await server.stop()
        self.mqtt.clear()
        await self.pipeline.stop()
        await self.open_data.notifier.stop()
        await self.anomaly.stop()
        await self.lamp_watch.stop()
        await self.hub.stop()
        try:
            self.series.close()
        except StoreUnavailable as err:
            # the readings are committed; their derived state is recovered at the next start
            log.warning("latest values and rollups not flushed at stop: %s", err.detail)
        self.db.dispose()
        self._held.close()

    async def _every(self, seconds: float, name: str, work: Callable[[], Awaitable[Any]]) -> None:
        """Run ``work`` now and every ``seconds`` until stop; never cut it off mid-way.

        Stopping sets an event instead of cancelling, because cancelling a coroutine that waits
        for a worker thread leaves the thread running against a store being closed.
        """
        while not self._stopping.is_set():
            try:
                await work()
            except Exception:
                log.exception("%s failed", name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _flush(self) -> None:
        await asyncio.to_thread(self.series.flush)

    async def _purge(self) -> None:
        deleted = await asyncio.to_thread(self.series.purge)
        if deleted:
            log.info("retention deleted %d expired readings", deleted)

    def api_services(self) -> Services:
        """What the REST API uses of this platform (``create_app(platform.api_services())``)."""
        # imported here while transport/http/device.py imports this module (a circle otherwise)
        from smartpole.api import Services

        return Services(
            settings=self.settings,
            database=self.db,
            tenants=self.tenants,
            users=self.users,
            logins=self.logins,
            audit=self.audit,
            assets=self.assets,
            grants=self.grants,
            credentials=self.credentials,
            provisioning=self.provisioning,
            claims=self.claims,
            firmware=self.firmware,
            series=self.series,
            pipeline=self.pipeline,
            control=self.control,
            hub=self.hub,
            alarms=self.hub.alarms,
            pole_states=self.pole_states,
            live=self.live,
            webhooks=self.hub.webhooks,
            work_orders=self.work_orders,
            anomaly=self.anomaly,
            forecasts=self.forecasts,
            lighting=self.lighting,
            open_data=self.open_data,
            devices=self.devices,
            device_api=self.device_api,
            polls=self.polls,
            broker=self.broker,
            metrics=self.metrics,
            connections=self,
            health=self,
        )


def _listener(server: MqttServer) -> str:
    """The name of an MQTT endpoint's kind for the metrics."""
    kind = "ws" if isinstance(server, MqttWebSocketServer) else "mqtt"
    return kind + ("s" if server.ssl_context is not None else "")
