"""A real MQTT client for tests: paho (ThingsBoard's fork, which the SDK ships) in its thread.

The platform runs in the test's event loop, so every blocking step runs in a worker thread
and the test awaits it.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from smartpole.transport.mqtt import codec

V5 = mqtt.MQTTv5
V311 = mqtt.MQTTv311
TIMEOUT = 10.0


class Device:
    """One device connection; ``messages`` receives (topic, payload) of what the server sends."""

    def __init__(
        self, port: int, token: str | None, version: int = V5, client_id: str = "", **connect: Any
    ) -> None:
        self.port = port
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version
        )
        if token is not None:
            self.client.username_pw_set(token)
        self.connect_args = connect
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.acks: dict[int, int] = {}
        self.ack_properties: dict[int, Any] = {}  # MQTT 5: the properties of each PUBACK
        self.last_ack: Any = None  # the properties of the PUBACK ``publish`` waited for last
        self.connack = threading.Event()
        self.reason: int | None = None
        self.session_present = False
        self.disconnected = threading.Event()
        self.disconnect_reason: int | None = None
        self._acked = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, m.payload))
        self.client.on_disconnect = self._on_disconnect

    def _on_connect(self, _c: Any, _u: Any, flags: Any, rc: Any, _p: Any) -> None:
        self.reason = rc.value
        self.session_present = bool(flags.session_present)
        self.connack.set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: Any, props: Any) -> None:
        with self._acked:
            self.acks[mid] = rc.value
            self.ack_properties[mid] = props
            self._acked.notify_all()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        with self._acked:  # wake a publish waiting for its PUBACK: none will come now
            self.disconnect_reason = rc.value
            self.disconnected.set()
            self._acked.notify_all()

    async def connect(self) -> int:
        """Connect and wait for the CONNACK; return its reason code."""

        def run() -> int:
            self.client.connect("127.0.0.1", self.port, **self.connect_args)
            self.client.loop_start()
            if not self.connack.wait(TIMEOUT):
                raise TimeoutError("no CONNACK")
            assert self.reason is not None
            return self.reason

        return await asyncio.to_thread(run)

    async def subscribe(self, *topics: str, qos: int = 1) -> None:
        """Subscribe and wait for the SUBACK."""
        done = threading.Event()
        self.client.on_subscribe = lambda *_a: done.set()
        self.client.subscribe([(t, qos) for t in topics])
        if not await asyncio.to_thread(done.wait, TIMEOUT):
            raise TimeoutError("no SUBACK")

    async def publish(self, topic: str, payload: Any, qos: int = 1) -> int:
        """Publish; for QoS 1 wait for the PUBACK and return its reason code (0 = stored)."""
        body = payload if isinstance(payload, bytes | str) else orjson.dumps(payload)
        info = self.client.publish(topic, body, qos=qos)
        if qos == 0:
            return 0

        def wait() -> int:
            with self._acked:
                if not self._acked.wait_for(
                    lambda: info.mid in self.acks or self.disconnected.is_set(), TIMEOUT
                ):
                    raise TimeoutError("no PUBACK")
            if info.mid not in self.acks:
                raise ConnectionError(f"disconnected, reason {self.disconnect_reason}")
            self.last_ack = self.ack_properties.get(info.mid)
            return self.acks[info.mid]

        return await asyncio.to_thread(wait)

    async def receive(self, wait: float = TIMEOUT) -> tuple[str, Any]:
        """The next message from the server, its JSON payload decoded."""
        topic, payload = await asyncio.to_thread(self.messages.get, True, wait)
        try:
            return topic, orjson.loads(payload)
        except orjson.JSONDecodeError:
            return topic, payload

    async def wait_disconnected(self, wait: float = TIMEOUT) -> int | None:
        """Wait until the server closes the connection; return the DISCONNECT reason."""
        if not await asyncio.to_thread(self.disconnected.wait, wait):
            raise TimeoutError("still connected")
        return self.disconnect_reason

    async def close(self) -> None:
        """Disconnect cleanly and stop the network thread."""

        def run() -> None:
            self.client.disconnect()
            self.client.loop_stop()
            # paho keeps a wake-up socket pair open after the server ended the session
            for sock in (self.client._sockpairR, self.client._sockpairW):
                if sock is not None:
                    sock.close()

        await asyncio.to_thread(run)


async def read_pubacks(reader: asyncio.StreamReader, n: int) -> list[tuple[int, int]]:
    """Read ``n`` PUBACKs from a raw MQTT 5 session: ``(packet id, reason code)`` each."""
    stream = codec.Reader()
    acks: list[tuple[int, int]] = []
    while len(acks) < n:
        data = await asyncio.wait_for(reader.read(4096), TIMEOUT)
        assert data, "the server closed the session"
        for kind, _, body in stream.feed(data):
            assert kind == codec.PacketType.PUBACK
            acks.append((int.from_bytes(body[:2], "big"), body[2] if len(body) > 2 else 0))
    return acks


async def send_telemetry(port: int, token: str, values: dict[str, Any]) -> None:
    """Connect as a device, publish one telemetry message at QoS 1 (acknowledged after the
    commit) and disconnect."""
    device = Device(port, token, V5)
    await device.connect()
    try:
        await device.publish("v1/devices/me/telemetry", values)
    finally:
        await device.close()
