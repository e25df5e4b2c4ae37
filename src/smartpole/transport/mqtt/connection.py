"""One MQTT connection's mechanics, MQTT 3.1.1 and 5.0: packets, keep-alive, flow control.

Packets are decoded in ``data_received`` and handled in order by one task per connection.
A QoS 1 PUBLISH is acknowledged only after its readings are committed, in the order the
publishes came (:mod:`smartpole.transport.mqtt.uplink`).
What a PUBLISH means is its session's business (:mod:`smartpole.transport.mqtt.session`);
CONNECT is :mod:`smartpole.transport.mqtt.connect`'s, through the endpoint.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any, Protocol, cast

import orjson

from smartpole.devices import DeviceApi
from smartpole.metrics import Metrics
from smartpole.model.types import DeviceRef
from smartpole.transport.mqtt import codec
from smartpole.transport.mqtt.codec import (
    Auth,
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
from smartpole.transport.mqtt.reasons import Closing, ConnectReturn, Reason
from smartpole.transport.mqtt.uplink import MAX_QUEUED_ACKS, Uplink

__all__ = ["Connection", "Endpoint", "Router", "topic_matches"]

log = logging.getLogger("smartpole.transport.mqtt.session")

CONNECT_TIMEOUT_S = 10.0
# the ingest pipeline's load (0 to 1) above which a connection stops reading after a packet,
# and below which it reads again
PAUSE_LOAD = 0.9
RESUME_LOAD = 0.8
# Topic filters a session may subscribe to: the answers the server can send it.
SUBSCRIBABLE = ("v1/devices/me/", "v1/gateway/", "v2/", "/provision/")
PROVISION_RESPONSE = "/provision/response"


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


class Router(Protocol):
    """What a connection's PUBLISHes mean: a device's session, or a provisioning one."""

    def route(self, topic: str, payload: bytes, *, will: bool = False) -> asyncio.Future[Any]:
        """Handle one PUBLISH; the future resolves when it may be acknowledged."""
        ...

    def commands(self) -> tuple[str, ...]:
        """Topics whose subscription means the device takes commands."""
        ...

    def forget(self, name: str) -> None:
        """A gateway may no longer speak for the device ``name``."""
        ...

    async def ended(self) -> None:
        """The connection ended (and no new one took its session over)."""
        ...


class Endpoint(Protocol):
    """What a connection needs of the endpoint that accepted it (``MqttServer``)."""

    api: DeviceApi
    metrics: Metrics
    connections: set[Connection]

    def load(self) -> float:
        """How full the ingest pipeline is, 0 to 1."""
        ...

    def hold(self, conn: Connection) -> None:
        """``conn`` stopped reading: call its ``resume`` until it reads again."""
        ...

    def release(self, conn: Connection) -> None:
        """``conn`` closed: hold it no longer."""
        ...

    def attach(self, conn: Connection, clean_start: bool, props: dict[str, Any]) -> bool:
        """Register an authenticated connection; whether a session was resumed."""
        ...

    def detach(self, conn: Connection) -> None:
        """Forget a closed connection."""
        ...

    def route_via(self, conn: Connection, sub_id: int, name: str) -> None:
        """The gateway on ``conn`` speaks for the sub-device ``sub_id`` (called ``name``)."""
        ...

    def unroute(self, sub_id: int) -> tuple[Connection, str] | None:
        """No gateway speaks for ``sub_id`` any more; which one did, under what name."""
        ...

    async def accept(self, conn: Connection, packet: Connect) -> None:
        """Answer a CONNECT: authenticate and open the connection's session, or refuse."""
        ...


class Connection(asyncio.Protocol):
    """The server side of one MQTT connection."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.api = endpoint.api
        self.limits = endpoint.api.limits
        self.version = 4
        self.device: DeviceRef | None = None
        self.session: Router | None = None  # once CONNECT was accepted
        self.problem_info = True  # MQTT 5: PUBACKs may carry a Reason String (the default)
        self.client_id = ""
        self.subscriptions: dict[str, int] = {}
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.keepalive = 0
        self.will: codec.Will | None = None
        self.session_expiry = 0
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None
        self._reader = codec.Reader(self.limits.max_payload + 1024)
        self._inbox: asyncio.Queue[tuple[int, int, bytes] | None] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._inflight: dict[int, tuple[int, int] | None] = {}  # our packet id -> (device, rpc)
        self._next_id = 0
        self._last_packet = time.monotonic()
        self._clean_exit = False
        self._taken_over = False
        self._paused = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.uplink = Uplink(self, self.limits, endpoint.metrics)

    # -- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the packet worker and the CONNECT deadline."""
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        loop = asyncio.get_running_loop()
        self._worker = loop.create_task(self._work())
        self.timer = loop.call_later(CONNECT_TIMEOUT_S, self.check_alive)
        self.endpoint.connections.add(self)

    def data_received(self, data: bytes) -> None:
        """Split the stream into packets and queue them for the worker."""
        self._last_packet = time.monotonic()
        try:
            for packet in self._reader.feed(data):
                self._inbox.put_nowait(packet)
        except MqttError as err:
            self.close(Reason(err.reason_code), f"bad packet stream: {err}")
            return
        if self._inbox.qsize() > MAX_QUEUED_ACKS and not self._paused:
            self.pause()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the worker; publish the will and end the session unless it was taken over."""
        self.closed = True
        self.endpoint.connections.discard(self)
        if self._paused:
            self.endpoint.release(self)
        if self.timer is not None:
            self.timer.cancel()
        self._inbox.put_nowait(None)
        if self.device is not None and self.session is not None:
            self.endpoint.detach(self)
            if self.will is not None and not self._clean_exit:
                self.spawn(self._publish_will(self.session, self.will))
            if not self._taken_over:
                self.spawn(self.session.ended())

    # -- public ---------------------------------------------------------------------------
    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run work of this connection's; the endpoint waits for it when it stops."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def write(self, packet: codec.Packet) -> None:
        """Send a packet (nothing once closed)."""
        if self.transport is not None and not self.closed:
            self.transport.write(codec.encode(packet, self.version))

    def close(
        self, reason: Reason | None = None, why: str = "", *, taken_over: bool = False
    ) -> None:
        """Close the connection: with ``reason``, logged, with a DISCONNECT carrying it on
        MQTT 5; without, quietly (the endpoint stops). ``taken_over``: a new connection
        carries the device's session on, so this one's end is no offline."""
        self._taken_over = self._taken_over or taken_over
        if reason is None:
            if self.transport is not None:
                self.transport.close()
            return
        if self.closed:
            return
        who = f"device {self.device.id} ({self.device.name})" if self.device else self.peer
        log.warning("MQTT %s disconnected: %s (reason 0x%02X)", who, why, reason)
        if self.version == 5 and self.device is not None:
            self.write(Disconnect(reason_code=reason))
        if self.transport is not None:
            self.transport.close()
        self.closed = True

    async def drain(self, rounds: int = 100) -> None:
        """Wait (up to ``rounds`` tenths of a second) for the connection's work to finish:
        its packets, offline records and will."""
        for _ in range(rounds):
            pending = [t for t in self._tasks if not t.done()]
            if self._worker is not None and not self._worker.done():
                pending.append(self._worker)
            if not pending:
                return
            await asyncio.wait(pending, timeout=0.1)

    def forget(self, name: str) -> None:
        """Stop speaking for the gateway's sub-device ``name`` (its binding was revoked): the
        gateway's next message naming it is looked up, and refused, again."""
        if self.session is not None:
            self.session.forget(name)

    def check_alive(self) -> None:
        """The keep-alive timer: close an idle connection, else look again later."""
        if self.closed:
            return
        if self.device is None:
            if self.session is not None:  # a provisioning session's minute is up
                self.close(Reason.NOT_AUTHORIZED, "provisioning session over")
            else:
                self.close(Reason.PROTOCOL_ERROR, "no CONNECT in time")
            return
        idle = time.monotonic() - self._last_packet
        if self.keepalive and idle > self.keepalive * 1.5:
            self.close(Reason.KEEP_ALIVE_TIMEOUT, f"keep-alive of {self.keepalive} s expired")
            return
        period = self.keepalive / 2 if self.keepalive else 60.0
        self.timer = asyncio.get_running_loop().call_later(period, self.check_alive)

    def subscribed_to(self, topic: str) -> int | None:
        """The QoS of the client's subscription matching ``topic``, or None."""
        best: int | None = None
        for topic_filter, qos in self.subscriptions.items():
            if topic_matches(topic_filter, topic) and (best is None or qos > best):
                best = qos
        return best

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
        qos = self.subscribed_to(needs or topic)
        if qos is None:
            if not always:
                return False
            qos = 0
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        packet_id = None
        if qos:
            packet_id = self._packet_id()
            self._inflight[packet_id] = rpc
        self.write(Publish(topic, body, qos, packet_id=packet_id))
        if rpc is not None and not qos:
            self.spawn(self.api.platform.rpc_delivered(*rpc))
        return True

    # -- plumbing -------------------------------------------------------------------------
    def pause(self) -> None:
        """Stop reading until the backlog is down (back-pressure); the endpoint holds the
        connection and tries ``resume`` again (one timer for every paused connection)."""
        if self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()
            self.endpoint.hold(self)

    def resume(self) -> bool:
        """Read again if reading was paused and the backlog is down; whether the connection
        is no longer held (reading, or closed)."""
        if not self._paused or self.closed or self.transport is None:
            return True
        if (
            len(self.uplink) < MAX_QUEUED_ACKS // 2
            and self._inbox.qsize() < MAX_QUEUED_ACKS // 2
            and self.endpoint.load() < RESUME_LOAD
        ):
            self._paused = False
            self.transport.resume_reading()
            return True
        return False

    def write_bytes(self, packets: list[bytes]) -> None:
        """Send encoded packets in one write (nothing once closed)."""
        if packets and self.transport is not None and not self.closed:
            self.transport.write(b"".join(packets))

    def _packet_id(self) -> int:
        for _ in range(65_535):
            self._next_id = self._next_id % 65_535 + 1
            if self._next_id not in self._inflight:
                return self._next_id
        raise Closing(Reason.RECEIVE_MAXIMUM_EXCEEDED, "no free packet identifier")

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
                    if self.session is not None:  # 0x84 is no DISCONNECT reason code
                        self.close(Reason.PROTOCOL_ERROR, "second CONNECT")
                        return
                    if self.transport is not None:  # a 3.1.1 CONNACK, whatever was asked
                        code = ConnectReturn.UNACCEPTABLE_PROTOCOL_VERSION
                        self.transport.write(bytes((0x20, 0x02, 0x00, code)))
                    self.close(Reason.UNSUPPORTED_PROTOCOL_VERSION, "unsupported protocol version")
                    return
                except MqttError as err:
                    self.close(Reason(err.reason_code), f"{type(err).__name__}: {err}")
                    return
                except Closing as err:
                    self.close(err.reason, str(err))
                    return
                if self.endpoint.load() > PAUSE_LOAD:
                    self.pause()
        except Exception:
            log.exception("MQTT connection %s failed", self.peer)
            self.close(Reason.UNSPECIFIED, "internal error")

    async def _handle(self, packet: codec.Packet) -> None:
        if self.session is None:
            if not isinstance(packet, Connect):
                raise Closing(Reason.PROTOCOL_ERROR, f"{type(packet).__name__} before CONNECT")
            await self.endpoint.accept(self, packet)
            return
        if isinstance(packet, Publish):
            self.uplink.publish(packet, self.session.route)
        elif isinstance(packet, PubAck):
            self._puback(packet)
        elif isinstance(packet, PingReq):
            self.write(PingResp())
        elif isinstance(packet, Subscribe):
            self._subscribe(packet)
        elif isinstance(packet, Unsubscribe):
            self._unsubscribe(packet)
        elif isinstance(packet, Disconnect):
            self._clean_exit = packet.reason_code != Reason.DISCONNECT_WITH_WILL
            if self.transport is not None:
                self.transport.close()
        elif isinstance(packet, Auth):
            # no authentication method was given in CONNECT, so AUTH is a protocol error
            # (0x8C "bad authentication method" is no DISCONNECT reason code)
            raise Closing(Reason.PROTOCOL_ERROR, "enhanced authentication is not supported")
        elif isinstance(packet, Connect):
            raise Closing(Reason.PROTOCOL_ERROR, "second CONNECT")
        else:
            raise Closing(
                Reason.QOS_NOT_SUPPORTED, f"{type(packet).__name__}: QoS 2 is not supported"
            )

    async def _publish_will(self, session: Router, will: codec.Will) -> None:
        try:
            await session.route(will.topic, will.payload, will=True)
        except Exception as err:
            log.info("will message of device %s dropped: %s", self.device and self.device.id, err)

    # -- SUBSCRIBE ------------------------------------------------------------------------
    def _takes_commands(self) -> bool:
        assert self.session is not None
        return any(self.subscribed_to(topic) is not None for topic in self.session.commands())

    def _subscribe(self, packet: Subscribe) -> None:
        codes: list[int] = []
        before = self._takes_commands()
        v5 = self.version == 5
        for topic_filter, options in packet.subscriptions:
            try:
                codec.validate_topic_filter(topic_filter)
            except MqttError:
                codes.append(Reason.TOPIC_FILTER_INVALID if v5 else Reason.FAILURE)
                continue
            if not topic_filter.startswith(SUBSCRIBABLE) and topic_filter != "#":
                codes.append(Reason.NOT_AUTHORIZED if v5 else Reason.FAILURE)
                continue
            if self.device is None and topic_filter != PROVISION_RESPONSE:
                codes.append(Reason.TOPIC_FILTER_INVALID if v5 else Reason.FAILURE)
                continue
            qos = min(options & 3, 1)
            self.subscriptions[topic_filter] = qos
            codes.append(qos)
        self.write(SubAck(packet.packet_id, codes))
        if self.device is not None and not before and self._takes_commands():
            self.spawn(self.api.platform.rpc_ready(self.device))

    def _unsubscribe(self, packet: Unsubscribe) -> None:
        codes: list[int] = []
        for topic_filter in packet.topics:
            gone = self.subscriptions.pop(topic_filter, None) is not None
            codes.append(Reason.SUCCESS if gone else Reason.NO_SUBSCRIPTION_EXISTED)
        self.write(UnsubAck(packet.packet_id, codes if self.version == 5 else []))

    def _puback(self, packet: PubAck) -> None:
        if packet.packet_id not in self._inflight:
            return  # a duplicate or unknown acknowledgement: nothing to do
        rpc = self._inflight.pop(packet.packet_id)
        if rpc is not None and packet.reason_code < Reason.UNSPECIFIED:
            self.spawn(self.api.platform.rpc_delivered(*rpc))
