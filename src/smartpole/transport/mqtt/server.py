"""The built-in MQTT endpoint: listens, tracks sessions, and sends to devices.

Not a general broker: devices never receive each other's messages. It serves the ThingsBoard
device and gateway APIs (``connection.py`` the MQTT mechanics, ``connect.py`` CONNECT,
``session.py`` the device API's framing) and delivers what the platform sends a device:
commands (RPC) and shared-attribute updates, directly or through the device's gateway.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

from smartpole.devices import DeviceApi, Reply
from smartpole.devices.gateway import command
from smartpole.metrics import Metrics
from smartpole.transport.mqtt import connect
from smartpole.transport.mqtt.codec import Connect
from smartpole.transport.mqtt.connection import RESUME_LOAD, Connection
from smartpole.transport.mqtt.reasons import Reason
from smartpole.transport.topics import thingsboard_topic

__all__ = ["MqttServer"]

log = logging.getLogger(__name__)
PERSISTENT_SESSION_S = 86_400  # a 3.1.1 persistent session is kept a day at most
RESUME_EVERY_S = 0.005  # how often connections held by back-pressure are looked at


class MqttServer:
    """Accepts MQTT connections and routes outgoing messages to the right one."""

    def __init__(
        self,
        api: DeviceApi,
        host: str = "127.0.0.1",
        mqtt_port: int = 1883,
        *,
        ssl_context: ssl.SSLContext | None = None,
        load: Callable[[], float] = lambda: 0.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.api = api
        self.metrics = metrics if metrics is not None else Metrics()
        self.host = host
        self.mqtt_port = mqtt_port
        self.ssl_context = ssl_context
        self.load = load
        self.connections: set[Connection] = set()
        self.by_device: dict[int, Connection] = {}
        self.by_client: dict[str, Connection] = {}
        self.via_gateway: dict[int, tuple[Connection, str]] = {}
        self._routed: dict[Connection, set[int]] = {}  # a gateway's connection -> its subs
        self._sessions: dict[str, tuple[dict[str, int], float]] = {}
        self._server: asyncio.Server | None = None
        # connections that stopped reading (back-pressure), in the order they stopped
        self._held: dict[Connection, None] = {}
        self._release: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        """Listen; ``mqtt_port`` 0 picks a free port (read it back from ``mqtt_port``)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Connection(self),
            self.host,
            self.mqtt_port,
            ssl=self.ssl_context,
            reuse_address=True,
            backlog=4096,
        )
        self.mqtt_port = self._server.sockets[0].getsockname()[1]
        log.info(
            "MQTT listening on %s:%d%s",
            self.host,
            self.mqtt_port,
            " (TLS)" if self.ssl_context else "",
        )

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        self._stop_releasing()
        if self._server is not None:
            self._server.close()
            conns = list(self.connections)
            for conn in conns:
                conn.close()
            await self._server.wait_closed()
            self._server = None
            # one line, not one per device: their sessions end with the platform, and the hub
            # does not count the time it is down as their outage (docs/hub.md)
            log.info(
                "MQTT %s:%d stopped: %d device sessions closed",
                self.host,
                self.mqtt_port,
                sum(1 for c in conns if c.device is not None),
            )
            # let every connection finish its work (offline records, wills) before the
            # pipeline and the store below it stop
            await asyncio.gather(*(conn.drain() for conn in conns))

    # -- back-pressure --------------------------------------------------------------------
    def hold(self, conn: Connection) -> None:
        """``conn`` stopped reading: try its ``resume`` every few milliseconds until it reads.

        One timer for all of them: at 10,000 poles a timer per paused connection cost the
        event loop a quarter of the server's CPU while the pipeline was full."""
        self._held[conn] = None
        if self._release is None:
            self._release = asyncio.get_running_loop().call_later(RESUME_EVERY_S, self._resume)

    def release(self, conn: Connection) -> None:
        """``conn`` closed: hold it no longer."""
        self._held.pop(conn, None)

    def _resume(self) -> None:
        self._release = None
        if self.load() < RESUME_LOAD:  # else none of them may read yet
            for conn in list(self._held):
                if conn.resume():
                    del self._held[conn]
        if self._held:
            self._release = asyncio.get_running_loop().call_later(RESUME_EVERY_S, self._resume)

    def _stop_releasing(self) -> None:
        if self._release is not None:
            self._release.cancel()
            self._release = None
        self._held.clear()

    # -- sessions -------------------------------------------------------------------------
    async def accept(self, conn: Connection, packet: Connect) -> None:
        """Answer a CONNECT: authenticate and open the connection's session, or refuse."""
        await connect.accept(conn, packet)

    def attach(self, conn: Connection, clean_start: bool, props: dict[str, Any]) -> bool:
        """Register an authenticated connection; return whether a session was resumed."""
        assert conn.device is not None
        old = self.by_client.get(conn.client_id)
        if old is not None and old is not conn:
            # the new connection carries on the device's session
            old.close(
                Reason.SESSION_TAKEN_OVER, "session taken over by a new connection", taken_over=True
            )
        self.by_client[conn.client_id] = conn
        self.by_device[conn.device.id] = conn
        present = False
        saved = self._sessions.pop(conn.client_id, None)
        if saved is not None and not clean_start and saved[1] > time.monotonic():
            conn.subscriptions.update(saved[0])
            present = True
        expiry = props.get("session_expiry_interval")
        if conn.version == 5:
            conn.session_expiry = int(expiry or 0)
        else:
            conn.session_expiry = 0 if clean_start else PERSISTENT_SESSION_S
        return present

    def detach(self, conn: Connection) -> None:
        """Forget a closed connection; keep its session if it asked for one."""
        if self.by_client.get(conn.client_id) is conn:
            del self.by_client[conn.client_id]
            expiry = conn.session_expiry
            if expiry:
                self._sessions[conn.client_id] = (
                    dict(conn.subscriptions),
                    time.monotonic() + min(expiry, PERSISTENT_SESSION_S),
                )
        if conn.device is not None and self.by_device.get(conn.device.id) is conn:
            del self.by_device[conn.device.id]
        for sub_id in self._routed.pop(conn, ()):
            if self.via_gateway.get(sub_id, (None,))[0] is conn:
                del self.via_gateway[sub_id]

    def route_via(self, conn: Connection, sub_id: int, name: str) -> None:
        """The gateway on ``conn`` speaks for the sub-device ``sub_id`` (called ``name``)."""
        self.via_gateway[sub_id] = (conn, name)
        self._routed.setdefault(conn, set()).add(sub_id)

    def unroute(self, sub_id: int) -> tuple[Connection, str] | None:
        """No gateway speaks for ``sub_id`` any more; which one did, under what name."""
        via = self.via_gateway.pop(sub_id, None)
        if via is not None:
            self._routed.get(via[0], set()).discard(sub_id)
        return via

    def drop_sub_device(self, device_id: int) -> None:
        """Forget that a gateway speaks for the device (its binding was revoked): the gateway's
        next message naming it is looked up, and refused, again."""
        via = self.unroute(device_id)
        if via is not None:
            conn, name = via
            conn.forget(name)

    # -- to devices -----------------------------------------------------------------------
    def is_connected(self, device_id: int) -> bool:
        """Whether the device has a session here, directly or through its gateway."""
        return device_id in self.by_device or device_id in self.via_gateway

    async def send(self, device_id: int, request_id: int, method: str, params: Any) -> bool:
        """Send a command (server-side RPC); True when written to a live session."""
        conn = self.by_device.get(device_id)
        if conn is not None:
            body = {"method": method, "params": params}
            topic = thingsboard_topic(Reply.COMMAND, str(request_id))
            return conn.send(topic, body, rpc=(device_id, request_id))
        via = self.via_gateway.get(device_id)
        if via is not None:
            gw, name = via
            body = command(name, request_id, method, params)
            topic = thingsboard_topic(Reply.GATEWAY_COMMAND)
            return gw.send(topic, body, rpc=(device_id, request_id))
        return False

    async def push_attributes(self, device_id: int, values: dict[str, Any]) -> bool:
        """Push shared-attribute updates to a connected device (or its gateway)."""
        conn = self.by_device.get(device_id)
        if conn is not None:
            return conn.send(thingsboard_topic(Reply.SHARED_ATTRIBUTES), values)
        via = self.via_gateway.get(device_id)
        if via is not None:
            gw, name = via
            body = {"device": name, "data": values}
            return gw.send(thingsboard_topic(Reply.GATEWAY_SHARED_ATTRIBUTES), body)
        return False
