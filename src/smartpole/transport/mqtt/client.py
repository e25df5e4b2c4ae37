"""A small asyncio MQTT 3.1.1/5.0 client on our codec: the simulator's and the broker bridge's.

paho-mqtt runs a thread per client and the ThingsBoard SDK pins its own fork of it, so the
parts of smartpole that need many connections in one event loop (the fleet simulator) or must
acknowledge a message only after its readings are committed (the external-broker consumer)
use this client instead. QoS 0 and 1 only, which is all the platform speaks.

    client = MqttClient("127.0.0.1", 1883, username=token, on_message=handle)
    await client.connect()
    await client.publish("v1/devices/me/telemetry", b'{"temp": 21}', qos=1)
    await client.close()

``on_message(publish)`` may return an awaitable: a QoS 1 message is acknowledged only when it
completes (and PUBACKs leave in the order the messages came, as MQTT requires). If it raises,
the message is not acknowledged and the connection is closed, so the broker delivers it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from smartpole.transport.mqtt import codec

__all__ = ["ConnectRefused", "MqttClient", "PublishRefused"]

log = logging.getLogger(__name__)

OnMessage = Callable[[codec.Publish], Awaitable[None] | None]


class ConnectRefused(ConnectionError):
    """The server answered CONNECT with a failure reason code."""

    def __init__(self, reason_code: int) -> None:
        super().__init__(f"CONNECT refused with reason code 0x{reason_code:02X}")
        self.reason_code = reason_code


class PublishRefused(RuntimeError):
    """The server answered a QoS 1 PUBLISH with a failure reason code (MQTT 5)."""

    def __init__(self, reason_code: int) -> None:
        super().__init__(f"PUBLISH refused with reason code 0x{reason_code:02X}")
        self.reason_code = reason_code


class MqttClient(asyncio.Protocol):
    """One MQTT connection; ``closed`` completes (with the cause, if any) when it ends."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str = "",
        username: str | None = None,
        password: str | bytes | None = None,
        keep_alive: int = 60,
        connect_timeout: float = 10.0,
        version: int = 5,
        clean_start: bool = True,
        session_expiry: int = 0,
        on_message: OnMessage | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.version = version
        self.on_message = on_message
        self._connect = codec.Connect(
            protocol_level=version,
            client_id=client_id,
            clean_start=clean_start,
            keep_alive=keep_alive,
            username=username,
            password=password.encode() if isinstance(password, str) else password,
            properties={"session_expiry_interval": session_expiry}
            if version == 5 and session_expiry
            else {},
        )
        self._tls = tls
        self._connect_timeout = connect_timeout
        self._reader = codec.Reader()
        self._transport: asyncio.Transport | None = None
        self._connack: asyncio.Future[codec.ConnAck] | None = None
        self._pending: dict[int, asyncio.Future[int]] = {}
        self._next_id = 0
        self._inflight: asyncio.Semaphore | None = None
        self._last_ack: asyncio.Future[None] | None = None
        self._last_write = 0.0
        self._last_read = 0.0
        self._pinger: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed: asyncio.Future[Exception | None] | None = None
        self.connack: codec.ConnAck | None = None

    # --- public -------------------------------------------------------------------------------

    async def connect(self) -> codec.ConnAck:
        """Open the connection and wait for CONNACK; raises ``ConnectRefused`` on a failure."""
        timeout = self._connect_timeout
        loop = asyncio.get_running_loop()
        self.closed = loop.create_future()
        self._connack = loop.create_future()
        await asyncio.wait_for(
            loop.create_connection(lambda: self, self.host, self.port, ssl=self._tls), timeout
        )
        self._write(codec.encode(self._connect, self.version))
        try:
            ack = await asyncio.wait_for(asyncio.shield(self._connack), timeout)
        except BaseException:
            self.abort()
            raise
        if ack.reason_code:
            self.abort()
            raise ConnectRefused(ack.reason_code)
        self.connack = ack
        receive_max = int(ack.properties.get("receive_maximum", 65_535))
        self._inflight = asyncio.Semaphore(min(receive_max, 65_535))
        if self._connect.keep_alive:
            self._pinger = loop.create_task(self._ping(self._connect.keep_alive))
        return ack

    @property
    def is_connected(self) -> bool:
        """Whether the connection is up (CONNACK received and not closed since)."""
        return self.connack is not None and self.closed is not None and not self.closed.done()

    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        properties: codec.Properties | None = None,
        *,
        retain: bool = False,
    ) -> None:
        """Send a message; with QoS 1, wait for its PUBACK (``PublishRefused`` on a failure)."""
        if qos == 0:
            self._send(codec.Publish(topic, payload, retain=retain, properties=properties or {}))
            return
        assert self._inflight is not None, "publish before connect"
        async with self._inflight:
            future = self._new_pending()
            packet_id = self._next_id
            self._send(
                codec.Publish(
                    topic,
                    payload,
                    qos=1,
                    retain=retain,
                    packet_id=packet_id,
                    properties=properties or {},
                )
            )
            reason = await future
        if reason >= 0x80:
            raise PublishRefused(reason)

    async def subscribe(self, filters: list[tuple[str, int]]) -> list[int]:
        """Subscribe to (topic filter, QoS) pairs; returns the granted QoS or reason codes."""
        future = self._new_pending_suback()
        self._send(codec.Subscribe(self._next_id, filters))
        return await future

    async def close(self, reason_code: int = 0) -> None:
        """Send DISCONNECT (no will) and close the connection."""
        if self._transport is not None and not self._transport.is_closing():
            self._send(codec.Disconnect(reason_code))
            self._transport.close()
        if self.closed is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self.closed), 5.0)
        await self._cancel_tasks()

    def abort(self) -> None:
        """Drop the connection without DISCONNECT (the server publishes the will)."""
        if self._transport is not None:
            self._transport.abort()

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports (uvicorn runs on uvloop) are not asyncio.Transport subclasses,
        # but behave as one
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._last_read = time.monotonic()
        try:
            for kind, flags, body in self._reader.feed(data):
                self._handle(codec.decode(kind, flags, body, self.version))
        except codec.MqttError as exc:
            log.warning("mqtt client %s:%s: bad packet from server: %s", self.host, self.port, exc)
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        error: Exception = exc or ConnectionError("connection closed by the server")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(error)
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(exc)
        if self._pinger is not None:
            self._pinger.cancel()

    # --- internals ----------------------------------------------------------------------------

    def _handle(self, packet: codec.Packet) -> None:
        if isinstance(packet, codec.Publish):
            self._deliver(packet)
        elif isinstance(packet, codec.PubAck):
            future = self._pending.pop(packet.packet_id, None)
            if future is not None and not future.done():
                future.set_result(packet.reason_code)
        elif isinstance(packet, codec.SubAck):
            suback = self._pending.pop(packet.packet_id, None)
            if suback is not None and not suback.done():
                suback.set_result(packet.reason_codes)  # type: ignore[arg-type]
        elif isinstance(packet, codec.ConnAck):
            if self._connack is not None and not self._connack.done():
                self._connack.set_result(packet)
        elif isinstance(packet, codec.Disconnect):
            log.info(
                "mqtt client %s:%s: server disconnected with 0x%02X",
                self.host,
                self.port,
                packet.reason_code,
            )
            self._fail(ConnectionError(f"DISCONNECT 0x{packet.reason_code:02X}"))

    def _deliver(self, packet: codec.Publish) -> None:
        result = None
        if self.on_message is not None:
            try:
                result = self.on_message(packet)
            except Exception as exc:
                log.exception("mqtt client: handler failed on %s", packet.topic)
                self._fail(exc)
                return
        if packet.qos == 0:
            if inspect.isawaitable(result):
                self._spawn(self._settle(result, None, None))
            return
        assert packet.packet_id is not None
        if result is None and (self._last_ack is None or self._last_ack.done()):
            self._send(codec.PubAck(packet.packet_id))
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        previous, self._last_ack = self._last_ack, done
        self._spawn(self._settle(result, previous, packet.packet_id, done))

    async def _settle(
        self,
        result: Awaitable[None] | None,
        previous: asyncio.Future[None] | None,
        packet_id: int | None,
        done: asyncio.Future[None] | None = None,
    ) -> None:
        try:
            if result is not None:
                await result
            if previous is not None:
                await previous
            if packet_id is not None:
                self._send(codec.PubAck(packet_id))
            if done is not None:
                done.set_result(None)
        except Exception as exc:
            log.warning("mqtt client: message not acknowledged: %s", exc)
            if done is not None and not done.done():
                done.set_exception(exc)
                done.exception()  # retrieved: the chain after it fails too
            self._fail(exc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        if self._pinger is not None:
            tasks.append(self._pinger)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _fail(self, exc: Exception) -> None:
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(exc)
        if self._transport is not None:
            self._transport.abort()

    def _new_id(self) -> int:
        for _ in range(65_535):
            self._next_id = self._next_id % 65_535 + 1
            if self._next_id not in self._pending:
                return self._next_id
        raise RuntimeError("no free packet identifier")

    def _new_pending(self) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending[self._new_id()] = future
        return future

    def _new_pending_suback(self) -> asyncio.Future[list[int]]:
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._pending[self._new_id()] = future  # type: ignore[assignment]
        return future

    def _send(self, packet: codec.Packet) -> None:
        self._write(codec.encode(packet, self.version))

    def _write(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionError("not connected")
        self._transport.write(data)
        self._last_write = time.monotonic()

    async def _ping(self, keep_alive: int) -> None:
        interval = max(keep_alive / 2, 0.5)
        self._last_read = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - self._last_read > keep_alive * 1.5:
                # A server that answers not even PINGREQ is gone (a half-open connection, which
                # TCP alone notices only after many minutes): close, so the owner reconnects.
                self._fail(TimeoutError(f"no packet from the server for {keep_alive * 1.5} s"))
                return
            now = time.monotonic()
            # also when only writing (QoS 0): the PINGRESP is what shows the server is there
            if now - self._last_write >= interval or now - self._last_read >= interval:
                with contextlib.suppress(ConnectionError):
                    self._send(codec.PingReq())
