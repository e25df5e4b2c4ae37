"""The broker consumer: a smartpole node behind an external MQTT 5 broker (scale-out mode).

Each node connects as smartpole's service user under its own client id (``smartpole-<node id>``)
with a persistent session (clean start off, a session expiry), and takes the devices' uplink
through a shared subscription, so the nodes split it. A QoS 1 message is acknowledged only
once its readings are committed (``MqttClient`` sends PUBACKs in order, after the handler's
awaitable): whatever a node has not acknowledged when it crashes, loses the store or the broker
connection, the broker delivers again, and the store ignores a reading it already holds
(device, key, ts). Permanent refusals (unknown device, malformed payload) are acknowledged and
dropped, or the broker would deliver them for ever.

The consumer is also this mode's command channel. Commands go to the device's
``rpc/request/{id}`` topic; replies come to every node, and the node that sent the command
completes it at once (waking its caller), the others only after a grace period, in case the
sender is gone. A device counts as connected when its retained status topic says ``online``,
or, for devices without one, when it was heard from within the inactivity timeout (on any
node: last-seen times are re-read from the store every few seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import orjson

from smartpole.config import Settings
from smartpole.devices import DeviceApi
from smartpole.devices.gateway import command
from smartpole.errors import InvalidInput, NotFound, SmartpoleError
from smartpole.metrics import Metrics
from smartpole.model.clock import now_ms
from smartpole.model.types import DeviceRef
from smartpole.transport import refusals
from smartpole.transport.broker.topics import (
    GW_RPC_REQUEST,
    GW_SHARED,
    RPC_REQUEST,
    SHARED,
    STATUS,
    device_topic,
    parse,
    subscriptions,
)
from smartpole.transport.broker.uplink import Uplink
from smartpole.transport.mqtt import codec
from smartpole.transport.mqtt.client import MqttClient, PublishRefused

__all__ = ["BrokerConsumer", "BrokerStats", "BrokerUrl", "Directory"]

log = logging.getLogger(__name__)

BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
PUBLISH_TIMEOUT_S = 10.0
REFRESH_S = 5.0  # how often last-seen times are re-read from the store
REPLY_GRACE_S = 2.0  # a node that did not send a command completes it only after this
SENT_KEEP_S = 700.0  # how long a node remembers it sent a command (longest timeout + margin)
CACHE_S = 30.0  # device look-ups by name and id are trusted this long (as access tokens)
MISS_CACHE_S = 5.0
# After subscribing, the broker sends every device's retained status (with the retain flag).
# Until they are read, and the stream of them has paused this long, no device counts as online
# here: a node that has just connected must not send a queued command to a device (or gateway)
# whose "offline" it has not read yet.
STATUS_SETTLE_S = 0.25


class Directory(Protocol):
    """Device look-ups (``smartpole.registry.broker.BrokerAccounts``)."""

    def device_by_name(self, name: str) -> DeviceRef | None:
        """The device of a broker user name, or None."""
        ...

    def device_by_id(self, device_id: int) -> DeviceRef | None:
        """A device by id, or None."""
        ...

    def seen_since(self, since: int) -> dict[int, int]:
        """Last-seen times (ms) of the devices heard from since ``since``."""
        ...

    def waiting_commands(self) -> list[int]:
        """Devices with persistent commands queued."""
        ...

    def gateway_of(self, device_id: int) -> DeviceRef | None:
        """The gateway that last reported the device (any node), or None."""
        ...


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    """Where the broker is: ``mqtt://[user:password@]host[:1883]`` or ``mqtts://…[:8883]``."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        """Parse a broker URL; raise InvalidInput when it is not one."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise InvalidInput(f"broker URL {url!r} is not mqtt://host:port or mqtts://host:port")
        try:
            port = parts.port
        except ValueError as err:
            raise InvalidInput(f"broker URL {url!r} has a bad port") from err
        tls = parts.scheme == "mqtts"
        return cls(
            parts.hostname,
            port or (8883 if tls else 1883),
            tls,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )


@dataclass
class BrokerStats:
    """What one node's consumer has done since it started (``GET /api/broker/status``)."""

    connected: bool = False
    session_present: bool = False
    messages: int = 0  # uplink messages received
    redelivered: int = 0  # of which the broker marked as sent before (DUP)
    stored: int = 0  # telemetry messages committed
    dropped: int = 0  # refused for good: unknown device, bad topic or payload
    commands: int = 0  # commands published to devices
    attributes: int = 0  # shared-attribute updates published to devices
    reconnects: int = 0
    last_error: str | None = None


class BrokerConsumer:
    """Consumes the devices' messages from the broker; publishes commands and attributes."""

    def __init__(
        self,
        api: DeviceApi,
        directory: Directory,
        url: str,
        *,
        username: str,
        password: str | None,
        client_id: str,
        group: str = "smartpole",
        session_expiry_s: int = 86_400,
        inactivity_s: int = 600,
        keep_alive_s: int = 30,
        metrics: Metrics | None = None,
    ) -> None:
        self.api = api
        self.platform = api.platform
        self.metrics = metrics
        self.directory = directory
        self.url = BrokerUrl.parse(url)
        self.username = self.url.username or username
        self.password = self.url.password or password
        self.client_id = client_id
        self.group = group
        self.session_expiry_s = session_expiry_s
        self.inactivity_ms = inactivity_s * 1000
        self.keep_alive_s = keep_alive_s
        self.stats = BrokerStats()
        self._client: MqttClient | None = None
        self._stopping = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._names: dict[str, tuple[float, DeviceRef | None]] = {}
        self._ids: dict[int, tuple[float, DeviceRef | None]] = {}
        self._seen: dict[int, int] = {}  # device id -> last heard (ms), from any node
        self._status: dict[int, bool] = {}  # device id -> its retained status topic
        self._sent: dict[tuple[int, int], float] = {}  # commands this node sent -> forget at
        # how this node last heard a device: directly, or through which gateway
        self._via: dict[int, DeviceRef | None] = {}  # device id -> its gateway; None: direct
        self._gateways: dict[int, tuple[float, DeviceRef | None]] = {}  # registry's, by device
        self._statuses_read = 0.0  # when the last status message was read (monotonic)
        self._statuses_in_hand = 0  # retained statuses of this connection read, not handled yet
        self._connection = 0  # counts connections: a handler of an earlier one is not counted
        self.uplink = Uplink(self)

    @classmethod
    def from_settings(
        cls, s: Settings, api: DeviceApi, directory: Directory, metrics: Metrics | None = None
    ) -> BrokerConsumer:
        """A consumer configured by the ``broker_*`` settings."""
        assert s.broker is not None
        return cls(
            api,
            directory,
            s.broker,
            username=s.broker_username,
            password=s.broker_password,
            client_id=f"smartpole-{s.node_id}",
            group=s.broker_group,
            session_expiry_s=s.broker_session_expiry_s,
            inactivity_s=s.inactivity_timeout_s,
            metrics=metrics,
        )

    @property
    def where(self) -> str:
        """``host:port`` of the broker, for logs."""
        return f"{self.url.host}:{self.url.port}"

    # -- life cycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Read presence from the store, then connect (and keep reconnecting) in the background."""
        self._stopping.clear()
        try:
            await self._refresh()
        except Exception:
            log.exception("broker: reading last-seen times failed")
        self._runner = asyncio.create_task(self._run(), name="broker consumer")
        self._refresher = asyncio.create_task(self._refresh_every(), name="broker presence")

    async def stop(self) -> None:
        """Disconnect (the broker keeps the session and what was not acknowledged) and stop."""
        self._stopping.set()
        if self._client is not None:
            await self._client.close()
        for task in (self._runner, self._refresher):
            if task is not None:
                await task
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)
        for task in list(self._tasks):
            task.cancel()
        self._runner = self._refresher = None

    async def _run(self) -> None:
        delay = BACKOFF_MIN_S
        while not self._stopping.is_set():
            client = MqttClient(
                self.url.host,
                self.url.port,
                client_id=self.client_id,
                username=self.username,
                password=self.password,
                keep_alive=self.keep_alive_s,
                clean_start=False,
                session_expiry=self.session_expiry_s,
                on_message=self._on_message,
                tls=ssl.create_default_context() if self.url.tls else None,
            )
            try:
                await self._connect(client)
                delay = BACKOFF_MIN_S
                assert client.closed is not None
                if self._stopping.is_set():  # stop() came while connecting
                    continue
                cause = await asyncio.shield(client.closed)
                if not self._stopping.is_set():
                    self.stats.last_error = str(cause or "closed by the broker")
                    log.warning("broker %s: connection lost: %s", self.where, self.stats.last_error)
            except (OSError, TimeoutError) as err:  # ConnectionError, ConnectRefused included
                self.stats.last_error = str(err) or type(err).__name__
                log.warning("broker %s: cannot connect: %s", self.where, self.stats.last_error)
            finally:
                self._client = None
                self.stats.connected = False
                await client.close()
            if self._stopping.is_set():
                break
            self.stats.reconnects += 1
            wait = delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not a secret
            log.info("broker %s: reconnecting in %.1f s", self.where, wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), wait)
            delay = min(delay * 2, BACKOFF_MAX_S)
        log.info("broker %s: consumer stopped", self.where)

    async def _connect(self, client: MqttClient) -> None:
        ack = await client.connect()
        # the retained statuses come after the SUBACK: count this connection's from zero (a
        # handler cut off with the last connection never finishes)
        self._statuses_in_hand = 0
        self._connection += 1
        filters = subscriptions(self.group)
        granted = await asyncio.wait_for(client.subscribe(filters), PUBLISH_TIMEOUT_S)
        refused = [f for (f, _), code in zip(filters, granted, strict=False) if code >= 0x80]
        if refused:
            raise ConnectionError(f"the broker refused the subscriptions {refused} (ACL?)")
        self._client = client
        self.stats.connected = True
        self._statuses_read = time.monotonic()  # ready STATUS_SETTLE_S after the last of them
        self.stats.session_present = ack.session_present
        log.info(
            "broker %s: connected as %s, client id %s (%s session), subscribed to %s",
            self.where,
            self.username,
            self.client_id,
            "resumed" if ack.session_present else "new",
            ", ".join(f for f, _ in filters),
        )

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run work in the background (waited for at stop; a failure is logged)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("broker: background work failed: %r", task.exception())

    # -- uplink ---------------------------------------------------------------------------
    def _on_message(self, packet: codec.Publish) -> Awaitable[None] | None:
        self.stats.messages += 1
        self.stats.redelivered += packet.dup
        where = parse(packet.topic)
        if where is None:
            self._drop(packet.topic, "not a broker-mode topic")
            return None
        if where[1] == STATUS and packet.retain:  # kept by the broker, sent on subscribing
            self._statuses_read = time.monotonic()
            self._statuses_in_hand += 1
            return self._retained_status(self._connection, *where, packet.payload)
        return self._handle(*where, packet.payload)

    async def _retained_status(self, connection: int, name: str, suffix: str, body: bytes) -> None:
        try:
            await self._handle(name, suffix, body)
        finally:
            if connection == self._connection:
                self._statuses_in_hand -= 1

    def _drop(self, what: str, why: str) -> None:
        self.stats.dropped += 1
        log.warning("broker: dropped a message on %s: %s", what, why)

    async def _handle(self, name: str, suffix: str, payload: bytes) -> None:
        """Handle one message; return (so that it is acknowledged) unless it should come again."""
        try:
            device = await self.device(name)
            if device is None:
                raise NotFound(f"no device is named {name!r}")
            if suffix == STATUS:
                self._on_status(device, payload)
                return
            stored = await self.uplink.handle(device, suffix, payload)
        except SmartpoleError as err:  # a refusal, for good (a full queue waits in the uplink)
            self.stats.dropped += 1
            refusals.unheard(name, suffix, err, self.metrics)
            return
        self.stats.stored += stored

    # -- the gateway API ------------------------------------------------------------------
    async def sub_device_status(self, gw: DeviceRef, sub: DeviceRef, *, online: bool) -> None:
        """A gateway connected (or disconnected) a sub-device: so it is here at once, it is
        recorded (connected: its queued commands go), and every node (and those that start
        later) is told on its retained status topic, as a device keeps its own."""
        self._status[sub.id] = online
        if online:
            self._seen[sub.id] = now_ms()
            await self.platform.connected(sub, via=gw)
        else:
            await self.platform.disconnected(sub, via=gw)
        status = b"online" if online else b"offline"
        if not await self.publish(device_topic(sub.name, STATUS), status, retain=True):
            log.warning("broker: could not publish the status of %s to other nodes", sub.name)

    async def learn(self, gw: DeviceRef, name: str, sub: DeviceRef) -> None:
        """A sub-device (re)named; when it is new to this node, record its gateway (for
        commands sent from any node)."""
        if self._via.get(sub.id) != gw:
            self._via[sub.id] = gw
            self._gateways[sub.id] = (time.monotonic() + CACHE_S, gw)
            await self.platform.reported_by(sub, gw)

    async def reply(self, device: DeviceRef, request_id: int, data: Any) -> None:
        """A device's reply to a command: completed at once when this node sent it, else after
        a grace period (the node that sent it completes it, waking its caller)."""
        if self._sent.pop((device.id, request_id), None) is not None:
            await self.platform.rpc_reply(device, request_id, data)
        else:
            self.spawn(self._late_reply(device, request_id, data))

    async def _late_reply(self, device: DeviceRef, request_id: int, data: Any) -> None:
        """A reply to a command another node sent: complete it only if that node does not."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), REPLY_GRACE_S)
            return
        await self.platform.rpc_reply(device, request_id, data)

    # -- presence -------------------------------------------------------------------------
    def spoke(self, device: DeviceRef) -> None:
        """A device's own message was handled: it is heard from, and it speaks for itself
        (commands go to its own topics)."""
        self.heard(device)
        self._via[device.id] = None

    def heard(self, device: DeviceRef) -> None:
        """A device spoke: it is online, and if it was not, its queued commands go out."""
        was = self.is_connected(device.id)
        if self._status.get(device.id) is False:
            del self._status[device.id]  # traffic outdates a retained "offline"
        self._seen[device.id] = now_ms()
        if not was:
            self.spawn(self.platform.rpc_ready(device))

    def _on_status(self, device: DeviceRef, payload: bytes) -> None:
        text = payload.strip().lower()
        if not text:  # the retained status was cleared
            self._status.pop(device.id, None)
            return
        if text not in (b"online", b"offline"):
            raise InvalidInput("a status is 'online' or 'offline'")
        was = self.is_connected(device.id)
        self._status[device.id] = online = text == b"online"
        if online:
            self._seen[device.id] = now_ms()
            if not was:
                self.spawn(self.platform.rpc_ready(device))

    def presence(self, device_id: int) -> bool | None:
        """What the device's status topic says, or None when it keeps none."""
        return self._status.get(device_id)

    def is_connected(self, device_id: int) -> bool:
        """Whether a command sent now should reach the device (and its gateway, if it has one)."""
        if not self.ready:
            return False
        via = self._gateway_known(device_id)
        if via is not None and not self._online(via.id):
            return False
        return self._online(device_id)

    @property
    def ready(self) -> bool:
        """Connected, and the retained statuses the broker sent on subscribing are read: until
        then no device counts as online here (about ``STATUS_SETTLE_S`` after connecting)."""
        if not self.stats.connected or self._statuses_in_hand:
            return False
        return time.monotonic() - self._statuses_read >= STATUS_SETTLE_S

    def _gateway_known(self, device_id: int) -> DeviceRef | None:
        """The gateway a device is reached through, as far as this node knows without asking
        the registry: heard here, or looked up for an earlier command."""
        if device_id in self._via:
            return self._via[device_id]
        hit = self._gateways.get(device_id)
        return hit[1] if hit is not None else None

    def _online(self, device_id: int) -> bool:
        status = self._status.get(device_id)
        if status is not None:
            return status
        seen = self._seen.get(device_id)
        return seen is not None and now_ms() - seen < self.inactivity_ms

    async def _refresh(self) -> None:
        """Merge the last-seen times every node wrote; forget what is too old."""
        since = now_ms() - self.inactivity_ms
        for device_id, seen in (await asyncio.to_thread(self.directory.seen_since, since)).items():
            if seen > self._seen.get(device_id, 0):
                self._seen[device_id] = seen
        for device_id in [d for d, seen in self._seen.items() if seen < since]:
            del self._seen[device_id]
        now = time.monotonic()
        for key in [k for k, until in self._sent.items() if until < now]:
            del self._sent[key]
        # A command queued on any node while its device was coming online here (or heard by
        # another node) is not lost: devices online now get their queued commands.
        if self.stats.connected:
            for device_id in await asyncio.to_thread(self.directory.waiting_commands):
                device = await self._device_by_id(device_id)
                if device is not None and self.is_connected(device_id):
                    # queued ones only: a command sent a moment ago (not yet recorded as
                    # delivered) must not go again
                    self.spawn(self.platform.rpc_ready(device, resend=False))
        self.uplink.forget_if_over(200_000)
        for cache in (self._names, self._ids, self._gateways, self._via):
            if len(cache) > 200_000:
                cache.clear()

    async def _refresh_every(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), REFRESH_S)
                return
            try:
                await self._refresh()
            except Exception:
                log.exception("broker: reading last-seen times failed")

    # -- look-ups -------------------------------------------------------------------------
    @staticmethod
    async def _cached(
        cache: dict[Any, tuple[float, DeviceRef | None]],
        key: Any,
        look_up: Callable[[Any], DeviceRef | None],
    ) -> DeviceRef | None:
        """A registry look-up, trusted ``CACHE_S`` (a miss ``MISS_CACHE_S``)."""
        hit = cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        ref = await asyncio.to_thread(look_up, key)
        cache[key] = (time.monotonic() + (CACHE_S if ref else MISS_CACHE_S), ref)
        return ref

    async def device(self, name: str) -> DeviceRef | None:
        """The device of a broker user name (cached), or None."""
        return await self._cached(self._names, name, self.directory.device_by_name)

    async def _device_by_id(self, device_id: int) -> DeviceRef | None:
        return await self._cached(self._ids, device_id, self.directory.device_by_id)

    async def _route(self, device_id: int) -> DeviceRef | None:
        """The gateway to reach a device through, or None for its own topics: as this node
        last heard it, else the gateway that last reported it on any node."""
        if device_id in self._via:
            return self._via[device_id]
        return await self._cached(self._gateways, device_id, self.directory.gateway_of)

    # -- downlink (the command channel) ---------------------------------------------------
    async def publish(self, topic: str, body: Any, *, retain: bool = False) -> bool:
        """Publish QoS 1 and wait for the broker's PUBACK; False when it did not take it."""
        client = self._client
        if client is None or not client.is_connected:
            return False
        payload = body if isinstance(body, bytes) else orjson.dumps(body)
        try:
            await asyncio.wait_for(
                client.publish(topic, payload, qos=1, retain=retain), PUBLISH_TIMEOUT_S
            )
        except (ConnectionError, TimeoutError, PublishRefused) as err:
            log.warning("broker: publishing to %s failed: %s", topic, err)
            return False
        return True

    async def send(self, device_id: int, request_id: int, method: str, params: Any) -> bool:
        """Publish a command to ``sp/v1/{device}/rpc/request/{id}``; True once the broker has it.

        "Delivered" means the broker took it: it hands it to the device's session, and keeps it
        for a device that is away with a persistent session.
        """
        device = await self._device_by_id(device_id)
        if device is None:
            return False
        gw = await self._route(device_id)
        if gw is not None and not self._online(gw.id):
            return False  # its gateway is gone: the command waits (persistent) or is refused
        key = (device_id, request_id)
        self._sent[key] = time.monotonic() + SENT_KEEP_S
        if gw is not None:
            topic = device_topic(gw.name, GW_RPC_REQUEST)
            body = command(device.name, request_id, method, params)
        else:
            topic = device_topic(device.name, RPC_REQUEST + str(request_id))
            body = {"method": method, "params": params}
        if not await self.publish(topic, body):
            self._sent.pop(key, None)
            return False
        self.stats.commands += 1
        self.spawn(self.platform.rpc_delivered(device_id, request_id))
        return True

    async def push_attributes(self, device_id: int, values: dict[str, Any]) -> bool:
        """Publish shared-attribute updates to ``sp/v1/{device}/attributes/shared`` (or, for a
        gateway's sub-device, ``{"device": name, "data": {...}}`` to the gateway's)."""
        device = await self._device_by_id(device_id)
        if device is None:
            return False
        gw = await self._route(device_id)
        if gw is not None:
            body = {"device": device.name, "data": values}
            sent = await self.publish(device_topic(gw.name, GW_SHARED), body)
        else:
            sent = await self.publish(device_topic(device.name, SHARED), values)
        self.stats.attributes += sent
        return sent

    def status(self) -> dict[str, Any]:
        """The consumer's connection and counters."""
        return {
            "broker": self.where,
            "client_id": self.client_id,
            "username": self.username,
            "group": self.group,
            **asdict(self.stats),
            "ready": self.ready,
        }
