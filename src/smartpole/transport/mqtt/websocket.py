"""MQTT over WebSocket: the same endpoint (``Connection``) carried in binary WebSocket frames.

Browsers and some gateways can only open WebSockets. A client offers the subprotocol ``mqtt``
(MQTT 3.1.1 and 5.0 both name it so); each binary message carries any part of the MQTT byte
stream, which the connection splits into packets as it does a TCP stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from smartpole.transport.mqtt.connection import Connection
from smartpole.transport.mqtt.reasons import Reason
from smartpole.transport.mqtt.server import MqttServer

__all__ = ["MqttWebSocketServer"]

log = logging.getLogger(__name__)
SUBPROTOCOL = Subprotocol("mqtt")


class _Transport:
    """What ``Connection`` needs of an ``asyncio.Transport``, over one WebSocket."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self._out: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._reading = asyncio.Event()
        self._reading.set()
        self._closing = False
        self.writer = asyncio.get_running_loop().create_task(self._write_all())

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``peername`` is the client's address; nothing else is known."""
        return self.ws.remote_address if name == "peername" else default

    def write(self, data: bytes) -> None:
        """Queue bytes; they go out in order, one binary message per write."""
        if not self._closing:
            self._out.put_nowait(bytes(data))

    def close(self) -> None:
        """Send what is queued, then close the WebSocket."""
        if not self._closing:
            self._closing = True
            self._out.put_nowait(None)
        self._reading.set()

    def is_closing(self) -> bool:
        """Whether ``close`` was called."""
        return self._closing

    def pause_reading(self) -> None:
        """Stop taking messages until ``resume_reading`` (back-pressure)."""
        self._reading.clear()

    def resume_reading(self) -> None:
        """Take messages again."""
        self._reading.set()

    async def wait_readable(self) -> None:
        """Return when reading is not paused."""
        await self._reading.wait()

    async def _write_all(self) -> None:
        try:
            while (data := await self._out.get()) is not None:
                await self.ws.send(data)
        except ConnectionClosed:
            pass
        finally:
            self._closing = True
            with contextlib.suppress(Exception):
                await self.ws.close()


class MqttWebSocketServer(MqttServer):
    """The MQTT endpoint on a WebSocket port (``mqtt_ws_port``)."""

    _ws_server: Server | None = None  # (the port is the caller's: ``mqtt_ws_port``)

    async def start(self) -> None:
        """Listen; ``mqtt_port`` 0 picks a free port (read it back from ``mqtt_port``)."""
        self._ws_server = await serve(
            self._serve,
            self.host,
            self.mqtt_port,
            subprotocols=[SUBPROTOCOL],
            compression=None,
            max_size=self.api.limits.max_payload + 1024,
            ping_interval=None,  # MQTT has its own keep-alive
            ssl=self.ssl_context,
        )
        self.mqtt_port = next(iter(self._ws_server.sockets)).getsockname()[1]
        log.info("MQTT over WebSocket listening on %s:%d", self.host, self.mqtt_port)

    async def _serve(self, ws: ServerConnection) -> None:
        if ws.subprotocol != SUBPROTOCOL:
            await ws.close(1002, "the WebSocket subprotocol mqtt is required")
            return
        transport = _Transport(ws)
        conn = Connection(self)
        conn.connection_made(transport)  # type: ignore[arg-type]
        try:
            async for message in ws:
                if isinstance(message, str):
                    conn.close(
                        Reason.MALFORMED_PACKET, "a text WebSocket message: MQTT needs binary ones"
                    )
                    break
                conn.data_received(message)
                await transport.wait_readable()
                if transport.is_closing():
                    break
        except ConnectionClosed:
            pass
        finally:
            transport.close()
            conn.connection_lost(None)
            await transport.writer

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        self._stop_releasing()
        if self._ws_server is not None:
            self._ws_server.close()
            await self._ws_server.wait_closed()
            self._ws_server = None
        await asyncio.gather(*(conn.drain() for conn in list(self.connections)))
