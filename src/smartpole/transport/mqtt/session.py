"""One MQTT connection: the ThingsBoard device and gateway APIs over MQTT 3.1.1 and 5.0.

Packets are decoded in ``data_received`` and handled in order by one task per connection.
A QoS 1 PUBLISH is acknowledged only after its readings are committed, in the order the
publishes came, while many can be in flight (the commit futures are chained, not awaited).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import orjson

from smartpole.errors import (
    Forbidden,
    InvalidInput,
    SmartpoleError,
    StoreUnavailable,
)
from smartpole.ingest.payload import decode_json
from smartpole.model.clock import now_ms
from smartpole.model.types import DeviceKind, DeviceRef, split_keys
from smartpole.model.writes import Quarantine
from smartpole.transport import firmware, gateway, refusals
from smartpole.transport.mqtt import codec
from smartpole.transport.mqtt.codec import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    MqttError,
    PingReq,
    PingResp,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
)

if TYPE_CHECKING:
    from smartpole.transport.mqtt.server import MqttServer

__all__ = ["Connection", "topic_matches"]

log = logging.getLogger(__name__)

DEVICE = "v1/devices/me/"
TELEMETRY = ("v1/devices/me/telemetry", "v2/t")
ATTRIBUTES = ("v1/devices/me/attributes", "v2/a")
ATTR_REQUEST = "v1/devices/me/attributes/request/"
ATTR_RESPONSE = "v1/devices/me/attributes/response/"
RPC_REQUEST = "v1/devices/me/rpc/request/"
RPC_RESPONSE = "v1/devices/me/rpc/response/"
GATEWAY = "v1/gateway/"
CLAIM = "v1/devices/me/claim"
FW_REQUEST = "v2/fw/request/"
FW_RESPONSE = "v2/fw/response/"
FW_ERROR = "v2/fw/error"
PROVISION = "provision"  # the user name (or client id) of a provisioning session
PROVISION_REQUEST = "/provision/request"
PROVISION_RESPONSE = "/provision/response"
PROVISION_SESSION_S = 60.0  # ThingsBoard closes a provisioning session a minute after connect
# Topic filters a session may subscribe to: the answers the server can send it.
SUBSCRIBABLE = ("v1/devices/me/", "v1/gateway/", "v2/", "/provision/")
CONNECT_TIMEOUT_S = 10.0
MAX_KEEPALIVE_S = 1200
MAX_QUEUED_ACKS = 1000

# MQTT 5 reason codes used here (3.1.1 has no negative acknowledgements: it disconnects).
RC_UNSPECIFIED = 0x80
RC_MALFORMED = 0x81
RC_PROTOCOL = 0x82
RC_IMPLEMENTATION = 0x83
RC_NOT_AUTHORIZED = 0x87
RC_BAD_CREDENTIALS = 0x86
RC_SERVER_BUSY = 0x89
RC_BAD_AUTH_METHOD = 0x8C
RC_KEEPALIVE = 0x8D
RC_TAKEN_OVER = 0x8E
RC_FILTER_INVALID = 0x8F
RC_TOPIC_INVALID = 0x90
RC_RECEIVE_MAX = 0x93
RC_TOO_LARGE = 0x95
RC_RATE = 0x96
RC_QOS_UNSUPPORTED = 0x9B


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether an MQTT topic filter (with ``+`` and ``#``) matches a topic name."""
    if topic_filter == topic or topic_filter == "#":
        return True
    f_parts = topic_filter.split("/")
    t_parts = topic.split("/")
    for i, part in enumerate(f_parts):
        if part == "#":
            return True
        if i >= len(t_parts) or (part != "+" and part != t_parts[i]):
            return False
    return len(f_parts) == len(t_parts)


class _Closing(Exception):
    """Stop handling this connection, after telling the client ``reason`` (v5)."""

    def __init__(self, reason: int, why: str) -> None:
        super().__init__(why)
        self.reason = reason


class Connection(asyncio.Protocol):
    """The server side of one MQTT connection."""

    def __init__(self, server: MqttServer) -> None:
        self.server = server
        self.port = server.port
        self.limits = server.port.limits
        self.version = 4
        self.device: DeviceRef | None = None
        self.provision_only = False  # a session that may only ask for credentials
        self.problem_info = True  # MQTT 5: PUBACKs may carry a Reason String (the default)
        self.client_id = ""
        self.subscriptions: dict[str, int] = {}
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self._reader = codec.Reader(self.limits.max_payload + 1024)
        self._inbox: asyncio.Queue[tuple[int, int, bytes] | None] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._acks: collections.deque[tuple[int, asyncio.Future[Any]]] = collections.deque()
        self._inflight: dict[int, tuple[int, int] | None] = {}  # our packet id -> (device, rpc)
        self._next_id = 0
        self._keepalive = 0
        self._last_packet = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._will: codec.Will | None = None
        self._clean_exit = False
        self._taken_over = False
        self._paused = False
        self._tokens = float(self.limits.burst)
        self._token_time = time.monotonic()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.gateway_devices: dict[str, DeviceRef] = {}
        # lookups under way, shared by the messages that name the same new sub-device
        self._sub_lookups: dict[str, asyncio.Future[DeviceRef]] = {}
        # the futures of the last QoS 0 and QoS 1 PUBLISH (several share one: one callback)
        self._last_qos0: asyncio.Future[Any] | None = None
        self._last_qos1: asyncio.Future[Any] | None = None
        self.session_expiry = 0
        self.closed = False

    # -- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the packet worker and the CONNECT deadline."""
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self._worker = asyncio.get_running_loop().create_task(self._work())
        self._timer = asyncio.get_running_loop().call_later(CONNECT_TIMEOUT_S, self._check_alive)
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        """Split the stream into packets and queue them for the worker."""
        self._last_packet = time.monotonic()
        try:
            for packet in self._reader.feed(data):
                self._inbox.put_nowait(packet)
        except MqttError as err:
            self._abort(err.reason_code, f"bad packet stream: {err}")
            return
        if self._inbox.qsize() > MAX_QUEUED_ACKS and not self._paused:
            self._pause()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the worker; publish the will and mark the device offline unless it left cleanly."""
        self.closed = True
        self.server.connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
        self._inbox.put_nowait(None)
        if self.device is not None:
            self.server.detach(self)
            if self._will is not None and not self._clean_exit:
                will = self._will
                self._spawn(self._publish_will(will))
            if not self._taken_over:
                self._spawn(self._offline())

    # -- plumbing -------------------------------------------------------------------------
    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _write(self, packet: codec.Packet) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(codec.encode(packet, self.version))

    def _abort(self, reason: int, why: str) -> None:
        """Close the connection (with a DISCONNECT carrying ``reason`` on MQTT 5)."""
        if self.closed:
            return
        who = f"device {self.device.id} ({self.device.name})" if self.device else self.peer
        log.warning("MQTT %s disconnected: %s (reason 0x%02X)", who, why, reason)
        if self.version == 5 and self.device is not None:
            self._write(Disconnect(reason_code=reason))
        if self.transport is not None:
            self.transport.close()
        self.closed = True

    def _check_alive(self) -> None:
        if self.closed:
            return
        if self.provision_only:
            self._abort(RC_NOT_AUTHORIZED, "provisioning session over")
            return
        if self.device is None:
            self._abort(RC_PROTOCOL, "no CONNECT in time")
            return
        idle = time.monotonic() - self._last_packet
        if self._keepalive and idle > self._keepalive * 1.5:
            self._abort(RC_KEEPALIVE, f"keep-alive of {self._keepalive} s expired")
            return
        period = self._keepalive / 2 if self._keepalive else 60.0
        self._timer = asyncio.get_running_loop().call_later(period, self._check_alive)

    def _pause(self) -> None:
        if self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()
            asyncio.get_running_loop().call_later(0.005, self._maybe_resume)

    def _maybe_resume(self) -> None:
        if not self._paused or self.closed or self.transport is None:
            return
        if (
            len(self._acks) < MAX_QUEUED_ACKS // 2
            and self._inbox.qsize() < MAX_QUEUED_ACKS // 2
            and self.server.load() < 0.8
        ):
            self._paused = False
            self.transport.resume_reading()
        else:
            asyncio.get_running_loop().call_later(0.005, self._maybe_resume)

    def _packet_id(self) -> int:
        for _ in range(65_535):
            self._next_id = self._next_id % 65_535 + 1
            if self._next_id not in self._inflight:
                return self._next_id
        raise _Closing(RC_RECEIVE_MAX, "no free packet identifier")

    # -- the worker -----------------------------------------------------------------------
    async def _work(self) -> None:
        try:
            while True:
                item = await self._inbox.get()
                if item is None:
                    return
                kind, flags, body = item
                try:
                    packet = codec.decode(kind, flags, body, self.version)
                    await self._handle(packet)
                except codec.UnsupportedProtocol:
                    if self.device is not None or self.provision_only:  # 0x84: no DISCONNECT code
                        self._abort(RC_PROTOCOL, "second CONNECT")
                        return
                    self._write_raw_connack(0x01)
                    self._abort(0x84, "unsupported protocol version")
                    return
                except MqttError as err:
                    self._abort(err.reason_code, f"{type(err).__name__}: {err}")
                    return
                except _Closing as err:
                    self._abort(err.reason, str(err))
                    return
                if self.server.load() > 0.9:
                    self._pause()
        except Exception:
            log.exception("MQTT connection %s failed", self.peer)
            self._abort(RC_UNSPECIFIED, "internal error")

    def _write_raw_connack(self, code: int) -> None:
        if self.transport is not None:
            self.transport.write(bytes((0x20, 0x02, 0x00, code)))

    async def _handle(self, packet: codec.Packet) -> None:
        if self.device is None and not self.provision_only:
            if not isinstance(packet, Connect):
                raise _Closing(RC_PROTOCOL, f"{type(packet).__name__} before CONNECT")
            await self._connect(packet)
            return
        if isinstance(packet, Publish):
            self._publish(packet)
        elif isinstance(packet, PubAck):
            self._puback(packet)
        elif isinstance(packet, PingReq):
            self._write(PingResp())
        elif isinstance(packet, Subscribe):
            self._subscribe(packet)
        elif isinstance(packet, Unsubscribe):
            self._unsubscribe(packet)
        elif isinstance(packet, Disconnect):
            self._clean_exit = packet.reason_code != 0x04  # 0x04: "with will message"
            if self.transport is not None:
                self.transport.close()
        elif isinstance(packet, Auth):
            # no authentication method was given in CONNECT, so AUTH is a protocol error
            # (0x8C "bad authentication method" is no DISCONNECT reason code)
            raise _Closing(RC_PROTOCOL, "enhanced authentication is not supported")
        elif isinstance(packet, Connect):
            raise _Closing(RC_PROTOCOL, "second CONNECT")
        else:
            raise _Closing(RC_QOS_UNSUPPORTED, f"{type(packet).__name__}: QoS 2 is not supported")

    # -- CONNECT --------------------------------------------------------------------------
    async def _connect(self, packet: Connect) -> None:
        self.version = packet.protocol_level
        v5 = self.version == 5
        props: dict[str, Any] = {}
        client_id = packet.client_id
        if not client_id:
            if not v5 and not packet.clean_start:
                self._write(ConnAck(reason_code=0x02))
                raise _Closing(0x85, "empty client id with a persistent session")
            client_id = f"sp-{uuid.uuid4().hex[:16]}"
            if v5:
                props["assigned_client_identifier"] = client_id
        if PROVISION in (packet.username, packet.client_id):
            self._provision_session(client_id, props)
            return
        try:
            device, bad_credentials, why = await self._authenticate(packet)
        except StoreUnavailable as err:
            # Tell the device to come back later rather than accept what cannot be stored;
            # 3.1.1's nearest code is 0x03 "server unavailable".
            self._refuse(RC_SERVER_BUSY if v5 else 0x03, client_id, f"server busy: {err}")
            return
        if device is None:
            # 3.1.1: 0x04 bad user name or password / 0x05 not authorised (no token at all).
            code = (
                (RC_BAD_CREDENTIALS if v5 else 0x04)
                if bad_credentials
                else (RC_NOT_AUTHORIZED if v5 else 0x05)
            )
            self._refuse(code, client_id, why)
            return
        self.client_id = client_id
        self.device = device
        self.problem_info = packet.properties.get("request_problem_information", 1) != 0
        self._will = packet.will
        keepalive = packet.keep_alive
        if v5 and (keepalive == 0 or keepalive > MAX_KEEPALIVE_S):
            keepalive = MAX_KEEPALIVE_S
            props["server_keep_alive"] = keepalive
        self._keepalive = keepalive
        if self._timer is not None:
            self._timer.cancel()
        period = keepalive / 2 if keepalive else 60.0
        self._timer = asyncio.get_running_loop().call_later(period, self._check_alive)
        if v5:
            props.update(
                receive_maximum=self.limits.max_inflight,
                maximum_packet_size=self.limits.max_payload + 1024,
                maximum_qos=1,
                retain_available=0,
                topic_alias_maximum=0,
                subscription_identifier_available=0,
                shared_subscription_available=0,
                wildcard_subscription_available=1,
            )
        present = self.server.attach(self, packet.clean_start, packet.properties)
        self._write(ConnAck(reason_code=0, session_present=present, properties=props))
        log.debug(
            "MQTT device %s (%s) connected from %s, MQTT %s",
            device.id,
            device.name,
            self.peer,
            "5.0" if v5 else "3.1.1",
        )
        await self.port.connected(device)
        if any(topic_matches(f, RPC_REQUEST + "1") for f in self.subscriptions):
            await self.port.rpc_ready(device)  # a resumed session with its subscriptions

    def _refuse(self, code: int, client_id: str, why: str) -> None:
        """Answer a CONNECT with a refusal ``code`` and close."""
        self._write(ConnAck(reason_code=code))
        log.warning("MQTT CONNECT refused from %s (client %r): %s", self.peer, client_id, why)
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def _authenticate(self, packet: Connect) -> tuple[DeviceRef | None, bool, str]:
        """The device of a CONNECT, whether its credentials were bad, and why it was refused.

        The access token (cached) first, then MQTT Basic credentials, as ThingsBoard checks.
        """
        loop = asyncio.get_running_loop()
        username = packet.username or None
        if username:
            device = await loop.run_in_executor(None, self.port.authenticate, username)
            if device is not None:
                return device, False, ""
        elif not packet.client_id:
            return None, False, "no access token"
        password = None if packet.password is None else packet.password.decode("utf-8", "replace")
        auth = await loop.run_in_executor(
            None, self.port.authenticate_basic, packet.client_id, username, password
        )
        if auth.device is not None:
            return auth.device, False, ""
        if auth.wrong_password:
            return None, True, "wrong password for MQTT Basic credentials"
        if username:
            return None, True, "unknown access token or MQTT Basic user name"
        return None, False, "no access token, and the client id has no MQTT Basic credentials"

    def _provision_session(self, client_id: str, props: dict[str, Any]) -> None:
        """Accept a provisioning session: it may only ask for credentials, for a minute."""
        self.provision_only = True
        self.client_id = client_id
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(PROVISION_SESSION_S, self._check_alive)
        self._write(ConnAck(reason_code=0, properties=props))
        log.info("MQTT provisioning session from %s (client %r)", self.peer, client_id)

    async def _provision(self, payload: bytes) -> None:
        try:
            request = decode_json(payload)
        except InvalidInput:
            request = None  # answered FAILURE, as any request that is not a JSON object
        answer = await self.port.provision(request)
        self.send(PROVISION_RESPONSE, answer, always=True)

    async def _offline(self) -> None:
        assert self.device is not None
        for sub in list(self.gateway_devices.values()):
            with contextlib.suppress(Exception):
                await self.port.disconnected(sub, via=self.device)
        await self.port.disconnected(self.device)
        log.debug("MQTT device %s (%s) disconnected", self.device.id, self.device.name)

    async def _publish_will(self, will: codec.Will) -> None:
        try:
            await self._route(Publish(will.topic, will.payload, 0), will=True)
        except Exception as err:
            log.info("will message of device %s dropped: %s", self.device and self.device.id, err)

    # -- SUBSCRIBE ------------------------------------------------------------------------
    def _subscribe(self, packet: Subscribe) -> None:
        codes: list[int] = []
        rpc_before = self._subscribed_to(RPC_REQUEST + "1") or self._subscribed_to(GATEWAY + "rpc")
        for topic_filter, options in packet.subscriptions:
            try:
                codec.validate_topic_filter(topic_filter)
            except MqttError:
                codes.append(RC_FILTER_INVALID if self.version == 5 else 0x80)
                continue
            if not topic_filter.startswith(SUBSCRIBABLE) and topic_filter != "#":
                codes.append(RC_NOT_AUTHORIZED if self.version == 5 else 0x80)
                continue
            if self.provision_only and topic_filter != PROVISION_RESPONSE:
                codes.append(RC_FILTER_INVALID if self.version == 5 else 0x80)
                continue
            qos = min(options & 3, 1)
            self.subscriptions[topic_filter] = qos
            codes.append(qos)
        self._write(SubAck(packet.packet_id, codes))
        self.server.remember(self)
        rpc_after = self._subscribed_to(RPC_REQUEST + "1") or self._subscribed_to(GATEWAY + "rpc")
        if rpc_after and not rpc_before and self.device is not None:
            self._spawn(self.port.rpc_ready(self.device))

    def _unsubscribe(self, packet: Unsubscribe) -> None:
        codes = []
        for topic_filter in packet.topics:
            codes.append(0x00 if self.subscriptions.pop(topic_filter, None) is not None else 0x11)
        self._write(UnsubAck(packet.packet_id, codes if self.version == 5 else []))
        self.server.remember(self)

    def _subscribed_to(self, topic: str) -> int | None:
        best: int | None = None
        for topic_filter, qos in self.subscriptions.items():
            if topic_matches(topic_filter, topic) and (best is None or qos > best):
                best = qos
        return best

    # -- outgoing PUBLISH -----------------------------------------------------------------
    def send(
        self,
        topic: str,
        payload: Any,
        *,
        rpc: tuple[int, int] | None = None,
        needs: str | None = None,
        always: bool = False,
    ) -> bool:
        """Publish to the client if it subscribed to ``needs`` (default: the topic itself).

        With ``always`` it is sent anyway, at QoS 0 without a subscription: ThingsBoard sends
        provisioning and firmware answers whatever the device subscribed to.
        """
        if self.closed:
            return False
        qos = self._subscribed_to(needs or topic)
        if qos is None:
            if not always:
                return False
            qos = 0
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        packet_id = None
        if qos:
            packet_id = self._packet_id()
            self._inflight[packet_id] = rpc
        self._write(Publish(topic, body, qos, packet_id=packet_id))
        if rpc is not None and not qos:
            self._spawn(self.port.rpc_delivered(*rpc))
        return True

    def _puback(self, packet: PubAck) -> None:
        if packet.packet_id not in self._inflight:
            return  # a duplicate or unknown acknowledgement: nothing to do
        rpc = self._inflight.pop(packet.packet_id)
        if rpc is not None and packet.reason_code < 0x80:
            self._spawn(self.port.rpc_delivered(*rpc))

    # -- incoming PUBLISH -----------------------------------------------------------------
    def _rate_ok(self) -> bool:
        now = time.monotonic()
        self._tokens = min(
            float(self.limits.burst),
            self._tokens + (now - self._token_time) * self.limits.messages_per_s,
        )
        self._token_time = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _publish(self, packet: Publish) -> None:
        if not self._rate_ok():
            raise _Closing(RC_RATE, f"more than {self.limits.messages_per_s} messages/s")
        if len(packet.payload) > self.limits.max_payload:
            raise _Closing(RC_TOO_LARGE, f"payload of {len(packet.payload)} bytes over the limit")
        if packet.qos and len(self._acks) >= self.limits.max_inflight and self.version == 5:
            raise _Closing(RC_RECEIVE_MAX, "receive maximum exceeded")
        try:
            result = self._route(packet)
        except SmartpoleError as err:
            result = self._failed(err)
        # Messages of one turn of the loop share their commit's future: one callback for them.
        if packet.qos == 0:
            if result is not self._last_qos0:
                self._last_qos0 = result
                result.add_done_callback(self._dropped)  # nobody to tell: log, do not leak it
            return
        assert packet.packet_id is not None
        self._acks.append((packet.packet_id, result))
        if result is not self._last_qos1:
            self._last_qos1 = result
            result.add_done_callback(self._drain)
        if len(self._acks) >= MAX_QUEUED_ACKS:
            self._pause()

    @staticmethod
    def _failed(err: BaseException) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_exception(err)
        return fut

    def _dropped(self, fut: asyncio.Future[Any]) -> None:
        """A QoS 0 PUBLISH failed: there is no acknowledgement to carry the refusal."""
        err = fut.exception() if not fut.cancelled() else None
        if err is not None:
            dev = self.device
            self.server.metrics.reject("mqtt", err)
            log.warning(
                "MQTT QoS 0 publish of device %s (%s) dropped: %s",
                dev and dev.id,
                dev and dev.name,
                refusals.reason_string(err),
            )

    def _drain(self, _: object = None) -> None:
        """Send the PUBACKs that are due, in the order the PUBLISHes came (in one write: the
        messages of one commit are acknowledged together)."""
        out: list[bytes] = []
        while self._acks and self._acks[0][1].done():
            packet_id, fut = self._acks.popleft()
            err = fut.exception() if not fut.cancelled() else asyncio.CancelledError()
            if err is None:
                note = fut.result()
                if type(note) is Quarantine and self.version == 5 and self.problem_info:
                    out.append(codec.encode(PubAck(packet_id, 0, refusals.noted(note)), 5))
                else:
                    out.append(codec.encode(PubAck(packet_id), self.version))
                continue
            dev = self.device
            self.server.metrics.reject("mqtt", err)
            log.warning(
                "MQTT publish of device %s (%s) rejected: %s",
                dev and dev.id,
                dev and dev.name,
                refusals.reason_string(err),
            )
            if self.version == 5:
                props = refusals.told(err) if self.problem_info else {}
                out.append(codec.encode(PubAck(packet_id, refusals.mqtt_reason(err), props), 5))
            else:
                # 3.1.1 cannot refuse one message: leave, so the device does not believe it.
                self._write_raw(out)
                self._abort(RC_UNSPECIFIED, f"publish failed: {err}")
                return
        self._write_raw(out)
        if self._paused:
            self._maybe_resume()

    def _write_raw(self, packets: list[bytes]) -> None:
        if packets and self.transport is not None and not self.closed:
            self.transport.write(b"".join(packets))

    def _route(self, packet: Publish, will: bool = False) -> asyncio.Future[Any]:
        """Dispatch a PUBLISH by topic; return a future that resolves when it is done."""
        topic = packet.topic
        if self.provision_only:
            if topic != PROVISION_REQUEST:
                raise InvalidInput(
                    f"a provisioning session may publish only {PROVISION_REQUEST}", topic=topic
                )
            return self._spawn(self._provision(packet.payload))
        device = self.device
        assert device is not None
        if topic in TELEMETRY:
            return self.port.telemetry(device, decode_json(packet.payload), now_ms())
        if topic in ATTRIBUTES:
            return self._spawn(self.port.client_attributes(device, decode_json(packet.payload)))
        if topic.startswith(ATTR_REQUEST):
            req = topic[len(ATTR_REQUEST) :]
            return self._spawn(self._attribute_request(req, decode_json(packet.payload)))
        if topic.startswith(RPC_RESPONSE):
            req_id = self._int(topic[len(RPC_RESPONSE) :])
            data = decode_json(packet.payload)
            return self._spawn(self.port.rpc_reply(device, req_id, data))
        if topic.startswith(RPC_REQUEST):
            req = topic[len(RPC_REQUEST) :]
            return self._spawn(self._client_rpc(req, decode_json(packet.payload)))
        if topic == CLAIM:
            return self._spawn(self.port.claim(device, decode_json(packet.payload)))
        if topic.startswith(FW_REQUEST):
            return self._spawn(self._firmware_request(topic, packet.payload))
        if topic.startswith(GATEWAY) and device.kind is DeviceKind.GATEWAY:
            return self._gateway(topic[len(GATEWAY) :], packet.payload)
        what = "will topic" if will else "topic"
        raise InvalidInput(f"{what} {topic!r} is not part of the device API", topic=topic)

    @staticmethod
    def _int(text: str) -> int:
        try:
            return int(text)
        except ValueError as err:
            raise InvalidInput(f"request id {text!r} is not an integer") from err

    async def _attribute_request(self, req: str, data: Any) -> None:
        assert self.device is not None
        if not isinstance(data, dict):
            raise InvalidInput("attribute request must be a JSON object")

        def keys(name: str) -> list[str] | None:
            value = data.get(name)
            if value is None or value == "":
                return None
            if isinstance(value, list):
                return [str(k) for k in value]
            return split_keys(str(value))

        answer = await self.port.attributes(self.device, keys("clientKeys"), keys("sharedKeys"))
        self.send(ATTR_RESPONSE + req, answer)

    async def _client_rpc(self, req: str, data: Any) -> None:
        assert self.device is not None
        if not isinstance(data, dict) or not isinstance(data.get("method"), str):
            raise InvalidInput('client RPC needs {"method": "...", "params": ...}')
        try:
            result = await self.port.client_rpc(self.device, data["method"], data.get("params"))
        except SmartpoleError as err:
            result = {"error": err.detail}
        self.send(RPC_RESPONSE + req, result)

    # -- firmware (OTA) -------------------------------------------------------------------
    async def _firmware_request(self, topic: str, payload: bytes) -> None:
        """``v2/fw/request/{id}/chunk/{n}`` with the chunk size (or nothing: all) as payload."""
        device = self.device
        assert device is not None
        req, index, size = firmware.chunk_request(topic[len(FW_REQUEST) :], payload)
        if size > self.limits.max_payload:
            self._firmware_error("PAYLOAD_TOO_LARGE", f"chunk size {size} over the limit")
            return
        data = await self.port.firmware_chunk(device, size, index)
        if data is None:
            self._firmware_error("NOT_FOUND", "no firmware assigned")
            return
        answer = f"{FW_RESPONSE}{req}/chunk/{index}"
        # the ThingsBoard SDK subscribes to v2/fw/response/+, which does not match the answer
        needs = None if self._subscribed_to(answer) is not None else FW_RESPONSE + req
        self.send(answer, data, needs=needs, always=True)

    def _firmware_error(self, status: str, why: str) -> None:
        """As ThingsBoard: the status on ``v2/fw/error``, then the session ends."""
        device = self.device
        assert device is not None
        log.warning(
            "MQTT device %s (%s) firmware request refused: %s (%s)",
            device.id,
            device.name,
            why,
            status,
        )
        self.send(FW_ERROR, status.encode(), always=True)
        self._abort(RC_IMPLEMENTATION, f"firmware request refused: {why}")

    # -- the gateway API ------------------------------------------------------------------
    def _gateway(self, action: str, payload: bytes) -> asyncio.Future[Any]:
        data = decode_json(payload)
        if action == "telemetry":
            return self._spawn(self._gw_telemetry(data, now_ms()))
        handlers: dict[str, Callable[[Any], Awaitable[None]]] = {
            "connect": self._gw_connect,
            "disconnect": self._gw_disconnect,
            "attributes": self._gw_attributes,
            "attributes/request": self._gw_attribute_request,
            "rpc": self._gw_rpc,
            "claim": self._gw_claim,
        }
        handler = handlers.get(action)
        if handler is None:
            raise InvalidInput(
                f"v1/gateway/{action} is not part of the gateway API", topic=GATEWAY + action
            )
        return self._spawn(handler(data))

    async def sub_device(self, name: Any, kind: Any = None) -> DeviceRef:
        """The registered sub-device ``name`` reported by this gateway."""
        assert self.device is not None
        if not isinstance(name, str) or not name:
            raise InvalidInput("a gateway message must name its device")
        sub = self.gateway_devices.get(name)
        if sub is not None:
            return sub
        lookup = self._sub_lookups.get(name)
        if lookup is None:
            lookup = asyncio.ensure_future(self._find_sub_device(name, kind))
            self._sub_lookups[name] = lookup
            lookup.add_done_callback(functools.partial(self._looked_up, name))
        return await asyncio.shield(lookup)

    async def _find_sub_device(self, name: str, kind: Any) -> DeviceRef:
        assert self.device is not None
        sub = await self.port.sub_device(self.device, name, kind if isinstance(kind, str) else None)
        return await self._attach(name, sub)

    async def _attach(self, name: str, sub: DeviceRef) -> DeviceRef:
        """Start the session of a sub-device this gateway reports."""
        if self.closed:  # the gateway left while the lookup ran: no session to start
            return sub
        self.gateway_devices[name] = sub
        self.server.via_gateway[sub.id] = (self, name)
        await self.port.connected(sub, via=self.device)
        return sub

    def _look_up_together(self, names: list[str]) -> None:
        """Start the lookups of several new sub-devices as one registry query (a gateway's
        first report after it reconnected names all its devices); names it does not find go
        the one-by-one way (refused, or created when the gateway may)."""
        assert self.device is not None
        query = asyncio.ensure_future(self.port.sub_devices(self.device, names))

        async def one(name: str) -> DeviceRef:
            found = (await asyncio.shield(query)).get(name)
            if found is None:
                return await self._find_sub_device(name, None)
            return await self._attach(name, found)

        for name in names:
            lookup = asyncio.ensure_future(one(name))
            self._sub_lookups[name] = lookup
            lookup.add_done_callback(functools.partial(self._looked_up, name))

    def _looked_up(self, name: str, lookup: asyncio.Future[DeviceRef]) -> None:
        self._sub_lookups.pop(name, None)
        if not lookup.cancelled():
            # seen: a message that named several refused devices awaits only the first
            lookup.exception()

    async def _gw_telemetry(self, data: Any, now: int) -> Any:
        data = gateway.reports(data, "telemetry")
        new = [
            name
            for name in data
            if name and name not in self.gateway_devices and name not in self._sub_lookups
        ]
        if len(new) > 1:
            self._look_up_together(new)
        return await self.port.telemetry_of(await self._allowed(data), now)  # a Quarantine note

    async def _allowed(self, report: dict[str, Any]) -> list[tuple[DeviceRef, Any]]:
        """The parts of a report (``{"device name": ...}``) for devices this gateway may speak
        for. A refused device (logged by the port) does not refuse the rest; a report of
        refused devices only is refused, so that the gateway learns of it."""
        known = self.gateway_devices
        items: list[tuple[DeviceRef, Any]] = []
        refusals: list[Forbidden] = []
        for name, values in report.items():
            try:
                sub = known[name] if name in known else await self.sub_device(name)
            except Forbidden as err:
                refusals.append(err)
                continue
            items.append((sub, values))
        if refusals and not items:
            raise refusals[0]
        return items

    async def _gw_connect(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise InvalidInput('connect needs {"device": "name"}')
        await self.sub_device(data.get("device"), data.get("type"))

    async def _gw_disconnect(self, data: Any) -> None:
        sub = self.gateway_devices.pop(gateway.device_of(data, "disconnect"), None)
        if sub is not None:
            self.server.via_gateway.pop(sub.id, None)
            await self.port.disconnected(sub, via=self.device)

    async def _gw_attributes(self, data: Any) -> None:
        for sub, values in await self._allowed(gateway.reports(data, "attributes")):
            await self.port.client_attributes(sub, values)

    async def _gw_attribute_request(self, data: Any) -> None:
        name, keys, client = gateway.attribute_request(data)
        sub = await self.sub_device(name)
        answer = await self.port.attributes(sub, keys if client else None, None if client else keys)
        self.send(GATEWAY + "attributes/response", gateway.attribute_response(data, name, answer))

    async def _gw_claim(self, data: Any) -> None:
        for sub, body in await self._allowed(gateway.reports(data, "claim")):
            await self.port.claim(sub, body)

    async def _gw_rpc(self, data: Any) -> None:
        name, request_id, response = gateway.rpc_reply(data)
        await self.port.rpc_reply(await self.sub_device(name), request_id, response)
