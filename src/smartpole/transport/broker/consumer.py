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
from smartpole.errors import Forbidden, InvalidInput, NotFound, Overloaded, SmartpoleError
from smartpole.ingest.payload import decode_json
from smartpole.metrics import Metrics
from smartpole.model.clock import now_ms
from smartpole.model.types import DeviceKind, DeviceRef, split_keys
from smartpole.transport import firmware, gateway, refusals
from smartpole.transport.broker import topics
from smartpole.transport.broker.topics import (
    ATTR_REQUEST,
    ATTR_RESPONSE,
    ATTRIBUTES,
    CLAIM,
    FW_ERROR,
    FW_REQUEST,
    FW_RESPONSE,
    GATEWAY,
    GW_ATTR_REQUEST,
    GW_ATTR_RESPONSE,
    GW_ATTRIBUTES,
    GW_CLAIM,
    GW_CONNECT,
    GW_DISCONNECT,
    GW_RPC,
    GW_RPC_REQUEST,
    GW_SHARED,
    GW_TELEMETRY,
    RPC_CALL,
    RPC_REQUEST,
    RPC_RESPONSE,
    RPC_RESULT,
    SHARED,
    STATUS,
    TELEMETRY,
    device_topic,
)
from smartpole.transport.mqtt import codec
from smartpole.transport.mqtt.client import MqttClient, PublishRefused
from smartpole.transport.mqtt.port import SessionLimits

__all__ = ["BrokerConsumer", "BrokerStats", "BrokerUrl", "Directory", "Ingest"]

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


class Ingest(Protocol):
    """What the consumer needs from the platform (``smartpole.devices.DeviceService``)."""

    def telemetry(self, device: DeviceRef, data: Any, now: int) -> asyncio.Future[Any]:
        """Queue telemetry; the future resolves at its commit. Raises Overloaded when full."""
        ...

    async def client_attributes(self, device: DeviceRef, data: Any) -> None:
        """Store client-scope attributes."""
        ...

    async def attributes(
        self, device: DeviceRef, client_keys: list[str] | None, shared_keys: list[str] | None
    ) -> dict[str, dict[str, Any]]:
        """Client and shared attributes, all or the keys asked for."""
        ...

    async def rpc_reply(self, device: DeviceRef, request_id: int, response: Any) -> None:
        """A device answered a command."""
        ...

    async def rpc_delivered(self, device_id: int, request_id: int) -> None:
        """A command was delivered (here: the broker took it)."""
        ...

    async def rpc_ready(self, device: DeviceRef, *, resend: bool = True) -> None:
        """The device is back: send the commands queued for it (and, ``resend``, those sent
        before and never delivered)."""
        ...

    limits: SessionLimits  # the largest firmware chunk a device may ask for: max_payload

    async def client_rpc(self, device: DeviceRef, method: str, params: Any) -> Any:
        """A device-initiated RPC (``getCurrentTime``, ``getSessionLimits``, …)."""
        ...

    async def claim(self, device: DeviceRef, data: Any) -> None:
        """A device opened its claim window. Raises Forbidden."""
        ...

    async def firmware_chunk(self, device: DeviceRef, size: int, index: int) -> bytes | None:
        """Chunk ``index`` of ``size`` bytes of the device's firmware; None: none assigned."""
        ...

    def telemetry_of(
        self, items: list[tuple[DeviceRef, Any]], now: int, via: DeviceRef | None = None
    ) -> asyncio.Future[Any]:
        """Queue the telemetry of a gateway's sub-devices as one batch (the gateway ``via``
        heard from too)."""
        ...

    async def sub_devices(self, gateway: DeviceRef, names: list[str]) -> dict[str, DeviceRef]:
        """Those of ``names`` registered on the gateway's pole (one lookup for many)."""
        ...

    async def sub_device(self, gateway: DeviceRef, name: str, kind: str | None) -> DeviceRef:
        """The sub-device a gateway names; auto-created when the gateway may. Raises Forbidden."""
        ...

    async def reported_by(self, device: DeviceRef, gateway: DeviceRef) -> None:
        """Remember which gateway reports the device (for commands from any node)."""
        ...

    async def connected(self, device: DeviceRef, via: DeviceRef | None = None) -> None:
        """A gateway connected a sub-device: record it online, send its queued commands."""
        ...

    async def disconnected(self, device: DeviceRef, via: DeviceRef | None = None) -> None:
        """A gateway disconnected a sub-device: record it offline."""
        ...


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
    reconnects: int = 0
    last_error: str | None = None


class BrokerConsumer:
    """Consumes the devices' messages from the broker; publishes commands and attributes."""

    def __init__(
        self,
        ingest: Ingest,
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
        self.ingest = ingest
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
        # gateways: (gateway id, name) -> its sub-device, and how this node last heard a device
        self._subs: dict[tuple[int, str], tuple[float, DeviceRef]] = {}
        self._via: dict[int, DeviceRef | None] = {}  # device id -> its gateway; None: direct
        self._gateways: dict[int, tuple[float, DeviceRef | None]] = {}  # registry's, by device
        self._statuses_read = 0.0  # when the last status message was read (monotonic)
        self._statuses_in_hand = 0  # retained statuses of this connection read, not handled yet
        self._connection = 0  # counts connections: a handler of an earlier one is not counted

    @classmethod
    def from_settings(
        cls, s: Settings, ingest: Ingest, directory: Directory, metrics: Metrics | None = None
    ) -> BrokerConsumer:
        """A consumer configured by the ``broker_*`` settings."""
        assert s.broker is not None
        return cls(
            ingest,
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
        filters = topics.subscriptions(self.group)
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

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
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
        where = topics.parse(packet.topic)
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
            device = await self._device(name)
            if device is None:
                raise NotFound(f"no device is named {name!r}")
            if suffix == STATUS:
                self._on_status(device, payload)
                return
            if suffix.startswith(GATEWAY):
                await self._gateway(device, suffix, payload)
            elif suffix == TELEMETRY:
                await self._telemetry(device, payload)
            elif suffix == ATTRIBUTES:
                await self.ingest.client_attributes(device, decode_json(payload))
            elif suffix.startswith(ATTR_REQUEST):
                request, asked = suffix[len(ATTR_REQUEST) :], decode_json(payload)
                if not isinstance(asked, dict):
                    raise InvalidInput("an attribute request is a JSON object")
                self._spawn(self._attribute_request(device, request, asked))
            elif suffix.startswith(RPC_RESPONSE):
                await self._reply(device, _request_id(suffix[len(RPC_RESPONSE) :]), payload)
            elif suffix.startswith(RPC_CALL):
                call = decode_json(payload)
                if not isinstance(call, dict) or not isinstance(call.get("method"), str):
                    raise InvalidInput('client RPC needs {"method": "...", "params": ...}')
                self._spawn(self._client_rpc(device, suffix[len(RPC_CALL) :], call))
            elif suffix == CLAIM:
                await self.ingest.claim(device, decode_json(payload))
            elif suffix.startswith(FW_REQUEST):
                chunk = firmware.chunk_request(suffix[len(FW_REQUEST) :], payload)
                self._spawn(self._firmware(device, *chunk))
            else:
                raise InvalidInput(f"{suffix!r} is not a broker-mode topic")
        except SmartpoleError as err:  # a refusal, for good (a full queue waits in _commit)
            self.stats.dropped += 1
            refusals.unheard(name, suffix, err, self.metrics)
            return
        if not suffix.startswith(GATEWAY):  # (a gateway message: heard as soon as it is read)
            self._heard(device)
            self._via[device.id] = None  # it speaks for itself: commands go to its own topics

    async def _telemetry(self, device: DeviceRef, payload: bytes) -> None:
        data = decode_json(payload)
        now = now_ms()
        await self._commit(lambda: self.ingest.telemetry(device, data, now))

    async def _commit(self, queue: Callable[[], asyncio.Future[Any]]) -> None:
        """Queue readings, waiting while the pipeline is full; return once they are committed."""
        pause = 0.01
        while True:
            try:
                committed = queue()
                break
            except Overloaded:  # back-pressure: hold the acknowledgement, the broker waits
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)
        await asyncio.shield(committed)  # a failed commit raises: no PUBACK, delivered again
        self.stats.stored += 1

    # -- the gateway API ------------------------------------------------------------------
    async def _gateway(self, gw: DeviceRef, suffix: str, payload: bytes) -> None:
        """ThingsBoard's gateway API on ``sp/v1/{gateway}/gateway/...``."""
        if gw.kind is not DeviceKind.GATEWAY:
            raise Forbidden(f"device {gw.name} is not a gateway: it has no gateway API")
        data = decode_json(payload)
        self._heard(gw)  # now: its sub-devices are reachable once it has connected them
        if suffix == GW_TELEMETRY:
            reports = gateway.reports(data, "telemetry")
            now = now_ms()
            subs = await self._subs_of(gw, list(reports))
            items = [(subs[name], values) for name, values in reports.items() if name in subs]
            # the gateway's heard-from time goes to every node with the batch: its sub-devices
            # count as online only while it does
            await self._commit(lambda: self.ingest.telemetry_of(items, now, via=gw))
            for sub in subs.values():
                self._heard(sub)
        elif suffix == GW_ATTRIBUTES:
            reports = gateway.reports(data, "attributes")
            subs = await self._subs_of(gw, list(reports))
            for name, values in reports.items():
                if name in subs:
                    await self.ingest.client_attributes(subs[name], values)
        elif suffix == GW_CONNECT:
            sub = await self._sub(gw, gateway.device_of(data, "connect"), data.get("type"))
            self._status[sub.id] = True
            self._seen[sub.id] = now_ms()
            await self.ingest.connected(sub, via=gw)  # also sends the commands queued for it
            await self._tell_status(sub, b"online")
        elif suffix == GW_DISCONNECT:
            sub = await self._sub(gw, gateway.device_of(data, "disconnect"))
            self._status[sub.id] = False
            await self.ingest.disconnected(sub, via=gw)
            await self._tell_status(sub, b"offline")
        elif suffix == GW_CLAIM:
            reports = gateway.reports(data, "claim")
            subs = await self._subs_of(gw, list(reports))
            for name, body in reports.items():
                if name in subs:
                    await self.ingest.claim(subs[name], body)
        elif suffix == GW_ATTR_REQUEST:
            name, keys, client = gateway.attribute_request(data)
            sub = await self._sub(gw, name)
            self._spawn(self._gw_attribute_request(gw, sub, data, keys, client))
        elif suffix == GW_RPC:  # every node gets the replies: look up only, never create
            name, request_id, response = gateway.rpc_reply(data)
            if not isinstance(name, str):
                raise InvalidInput("a gateway RPC reply names its device")
            found = await self._subs_of(gw, [name], create=False)
            if name not in found:
                raise NotFound(f"gateway {gw.name} has no device {name!r}")
            await self._reply_with(found[name], request_id, response)
        else:
            raise InvalidInput(f"{suffix!r} is not part of the gateway API")

    async def _tell_status(self, sub: DeviceRef, status: bytes) -> None:
        """Tell every node (and those that start later) what the gateway said of a sub-device:
        its retained status topic, as a device keeps its own."""
        if not await self._publish(device_topic(sub.name, STATUS), status, retain=True):
            log.warning("broker: could not publish the status of %s to other nodes", sub.name)

    async def _sub(self, gw: DeviceRef, name: Any, kind: Any = None) -> DeviceRef:
        """The sub-device ``name`` of a gateway (auto-created when the gateway may)."""
        if not isinstance(name, str) or not name:
            raise InvalidInput("a gateway message must name its device")
        hit = self._subs.get((gw.id, name))
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        sub = await self.ingest.sub_device(gw, name, kind if isinstance(kind, str) else None)
        await self._learn(gw, name, sub)
        return sub

    async def _subs_of(
        self, gw: DeviceRef, names: list[str], *, create: bool = True
    ) -> dict[str, DeviceRef]:
        """The sub-devices of a report: cached, else one registry query, else one by one
        (``create``: created when the gateway may). A device the gateway may not speak for
        (logged by the device service) is left out without refusing the rest; a report of
        such devices only is refused."""
        found: dict[str, DeviceRef] = {}
        missing: list[str] = []
        refusal: Forbidden | None = None
        now = time.monotonic()
        for name in names:
            hit = self._subs.get((gw.id, name))
            if hit is not None and hit[0] > now:
                found[name] = hit[1]
            else:
                missing.append(name)
        if missing:
            known = await self.ingest.sub_devices(gw, missing)
            for name in missing:
                if name in known:
                    await self._learn(gw, name, known[name])
                    found[name] = known[name]
                elif create:
                    try:
                        found[name] = await self._sub(gw, name)
                    except Forbidden as err:
                        refusal = refusal or err
        if refusal is not None and not found:
            raise refusal
        return found

    async def _learn(self, gw: DeviceRef, name: str, sub: DeviceRef) -> None:
        """Cache a sub-device; when it is new to this node, record its gateway (for commands
        sent from any node)."""
        self._subs[(gw.id, name)] = (time.monotonic() + CACHE_S, sub)
        if self._via.get(sub.id) != gw:
            self._via[sub.id] = gw
            self._gateways[sub.id] = (time.monotonic() + CACHE_S, gw)
            await self.ingest.reported_by(sub, gw)

    async def _gw_attribute_request(
        self,
        gw: DeviceRef,
        sub: DeviceRef,
        data: dict[str, Any],
        keys: list[str] | None,
        client: bool,
    ) -> None:
        answer = await self.ingest.attributes(
            sub, keys if client else None, None if client else keys
        )
        body = gateway.attribute_response(data, sub.name, answer)
        await self._publish(device_topic(gw.name, GW_ATTR_RESPONSE), body)

    async def _attribute_request(
        self, device: DeviceRef, request: str, data: dict[str, Any]
    ) -> None:
        def keys(name: str) -> list[str] | None:
            value = data.get(name)
            if value is None or value == "":
                return None
            if isinstance(value, list):
                return [str(k) for k in value]
            return split_keys(str(value))

        answer = await self.ingest.attributes(device, keys("clientKeys"), keys("sharedKeys"))
        await self._publish(device_topic(device.name, ATTR_RESPONSE + request), answer)

    async def _client_rpc(self, device: DeviceRef, request: str, call: dict[str, Any]) -> None:
        try:
            result = await self.ingest.client_rpc(device, call["method"], call.get("params"))
        except SmartpoleError as err:
            result = {"error": err.detail}
        await self._publish(device_topic(device.name, RPC_RESULT + request), result)

    async def _firmware(self, device: DeviceRef, request: str, index: int, size: int) -> None:
        """A firmware chunk on ``fw/response/{request}/chunk/{n}``, or a ThingsBoard status
        (``PAYLOAD_TOO_LARGE``, ``NOT_FOUND``) on ``fw/error``."""
        status = "PAYLOAD_TOO_LARGE"
        if size <= self.ingest.limits.max_payload:
            data = await self.ingest.firmware_chunk(device, size, index)
            if data is not None:
                topic = device_topic(device.name, f"{FW_RESPONSE}{request}/chunk/{index}")
                await self._publish(topic, data)
                return
            status = "NOT_FOUND"
        log.warning("broker: firmware request of device %s refused: %s", device.name, status)
        await self._publish(device_topic(device.name, FW_ERROR), status.encode())

    async def _reply(self, device: DeviceRef, request_id: int, payload: bytes) -> None:
        await self._reply_with(device, request_id, decode_json(payload))

    async def _reply_with(self, device: DeviceRef, request_id: int, data: Any) -> None:
        if self._sent.pop((device.id, request_id), None) is not None:
            await self.ingest.rpc_reply(device, request_id, data)
        else:
            self._spawn(self._late_reply(device, request_id, data))

    async def _late_reply(self, device: DeviceRef, request_id: int, data: Any) -> None:
        """A reply to a command another node sent: complete it only if that node does not."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), REPLY_GRACE_S)
            return
        await self.ingest.rpc_reply(device, request_id, data)

    # -- presence -------------------------------------------------------------------------
    def _heard(self, device: DeviceRef) -> None:
        """A device spoke: it is online, and if it was not, its queued commands go out."""
        was = self.is_connected(device.id)
        if self._status.get(device.id) is False:
            del self._status[device.id]  # traffic outdates a retained "offline"
        self._seen[device.id] = now_ms()
        if not was:
            self._spawn(self.ingest.rpc_ready(device))

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
                self._spawn(self.ingest.rpc_ready(device))

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
                    self._spawn(self.ingest.rpc_ready(device, resend=False))
        for cache in (self._names, self._ids, self._subs, self._gateways, self._via):
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

    async def _device(self, name: str) -> DeviceRef | None:
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
    async def _publish(self, topic: str, body: Any, *, retain: bool = False) -> bool:
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
            body = gateway.command(device.name, request_id, method, params)
        else:
            topic = device_topic(device.name, RPC_REQUEST + str(request_id))
            body = {"method": method, "params": params}
        if not await self._publish(topic, body):
            self._sent.pop(key, None)
            return False
        self.stats.commands += 1
        self._spawn(self.ingest.rpc_delivered(device_id, request_id))
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
            return await self._publish(device_topic(gw.name, GW_SHARED), body)
        return await self._publish(device_topic(device.name, SHARED), values)

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


def _request_id(text: str) -> int:
    try:
        return int(text)
    except ValueError as err:
        raise InvalidInput(f"request id {text!r} is not an integer") from err
