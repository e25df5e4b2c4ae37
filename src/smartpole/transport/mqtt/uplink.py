"""A connection's incoming PUBLISHes: rate and size limits, and their acknowledgements.

A QoS 1 PUBLISH is acknowledged only after its readings are committed, in the order the
publishes came, while many can be in flight (the commit futures are chained, not awaited).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from smartpole.devices import SessionLimits
from smartpole.errors import SmartpoleError
from smartpole.metrics import Metrics
from smartpole.model.types import DeviceRef
from smartpole.model.writes import Quarantine
from smartpole.transport import refusals
from smartpole.transport.mqtt import codec
from smartpole.transport.mqtt.codec import PubAck, Publish
from smartpole.transport.mqtt.reasons import Closing, Reason

__all__ = ["MAX_QUEUED_ACKS", "Link", "Uplink"]

log = logging.getLogger("smartpole.transport.mqtt.session")
MAX_QUEUED_ACKS = 1000

Route = Callable[[str, bytes], "asyncio.Future[Any]"]


class Link(Protocol):
    """What the uplink needs of its connection."""

    version: int
    problem_info: bool  # MQTT 5: PUBACKs may carry a Reason String
    device: DeviceRef | None

    def close(
        self, reason: Reason | None = None, why: str = "", *, taken_over: bool = False
    ) -> None:
        """Close the connection, telling the client ``reason``."""
        ...

    def write_bytes(self, packets: list[bytes]) -> None:
        """Send encoded packets in one write."""
        ...

    def pause(self) -> None:
        """Stop reading until the backlog is down."""
        ...

    def resume(self) -> bool:
        """Read again if reading was paused and the backlog is down (whether it reads)."""
        ...


class Uplink:
    """The PUBLISHes of one connection in flight, and the PUBACKs due."""

    def __init__(self, link: Link, limits: SessionLimits, metrics: Metrics) -> None:
        self.link = link
        self.limits = limits
        self.metrics = metrics
        self._acks: collections.deque[tuple[int, asyncio.Future[Any]]] = collections.deque()
        self._tokens = float(limits.burst)
        self._token_time = time.monotonic()
        # the futures of the last QoS 0 and QoS 1 PUBLISH (several share one: one callback)
        self._last_qos0: asyncio.Future[Any] | None = None
        self._last_qos1: asyncio.Future[Any] | None = None

    def __len__(self) -> int:
        """PUBACKs waiting for their commit."""
        return len(self._acks)

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

    def publish(self, packet: Publish, route: Route) -> None:
        """Take a PUBLISH: ``route`` does it, and its acknowledgement follows its commit.
        Raises Closing when it breaks the session's limits."""
        if not self._rate_ok():
            raise Closing(
                Reason.MESSAGE_RATE_TOO_HIGH, f"more than {self.limits.messages_per_s} messages/s"
            )
        if len(packet.payload) > self.limits.max_payload:
            raise Closing(
                Reason.PACKET_TOO_LARGE, f"payload of {len(packet.payload)} bytes over the limit"
            )
        version = self.link.version
        if packet.qos and len(self._acks) >= self.limits.max_inflight and version == 5:
            raise Closing(Reason.RECEIVE_MAXIMUM_EXCEEDED, "receive maximum exceeded")
        try:
            result = route(packet.topic, packet.payload)
        except SmartpoleError as err:
            result = asyncio.get_running_loop().create_future()
            result.set_exception(err)
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
            result.add_done_callback(self._acknowledge)
        if len(self._acks) >= MAX_QUEUED_ACKS:
            self.link.pause()

    def _dropped(self, fut: asyncio.Future[Any]) -> None:
        """A QoS 0 PUBLISH failed: there is no acknowledgement to carry the refusal."""
        err = fut.exception() if not fut.cancelled() else None
        if err is not None:
            dev = self.link.device
            self.metrics.reject("mqtt", err)
            log.warning(
                "MQTT QoS 0 publish of device %s (%s) dropped: %s",
                dev and dev.id,
                dev and dev.name,
                refusals.reason_string(err),
            )

    def _acknowledge(self, _: object = None) -> None:
        """Send the PUBACKs that are due, in the order the PUBLISHes came (in one write: the
        messages of one commit are acknowledged together)."""
        link = self.link
        out: list[bytes] = []
        while self._acks and self._acks[0][1].done():
            packet_id, fut = self._acks.popleft()
            err = fut.exception() if not fut.cancelled() else asyncio.CancelledError()
            if err is None:
                note = fut.result()
                if type(note) is Quarantine and link.version == 5 and link.problem_info:
                    out.append(codec.encode(PubAck(packet_id, 0, refusals.noted(note)), 5))
                else:
                    out.append(codec.encode(PubAck(packet_id), link.version))
                continue
            dev = link.device
            self.metrics.reject("mqtt", err)
            log.warning(
                "MQTT publish of device %s (%s) rejected: %s",
                dev and dev.id,
                dev and dev.name,
                refusals.reason_string(err),
            )
            if link.version == 5:
                props = refusals.told(err) if link.problem_info else {}
                out.append(codec.encode(PubAck(packet_id, refusals.mqtt_reason(err), props), 5))
            else:
                # 3.1.1 cannot refuse one message: leave, so the device does not believe it.
                link.write_bytes(out)
                link.close(Reason.UNSPECIFIED, f"publish failed: {err}")
                return
        link.write_bytes(out)
        link.resume()
