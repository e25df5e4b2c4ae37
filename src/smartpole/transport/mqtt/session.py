"""The ThingsBoard device API over one built-in MQTT connection: framing only.

A PUBLISH's topic names an operation (the table in :mod:`smartpole.transport.topics`); the
device API (:class:`smartpole.devices.DeviceApi`) does it; the answer goes back on its topic.
What is this endpoint's own: a gateway's sub-devices are reachable through its connection
while it lasts (the endpoint's ``via_gateway``), and the device goes offline when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterable
from typing import Any

from smartpole.devices import Answer, Operation, Reply
from smartpole.errors import InvalidInput
from smartpole.model.types import DeviceRef
from smartpole.transport.mqtt.connection import Connection
from smartpole.transport.mqtt.reasons import Reason
from smartpole.transport.topics import ROUTES, thingsboard_operation, thingsboard_topic

__all__ = ["DeviceSession", "ProvisionSession"]

log = logging.getLogger(__name__)

COMMANDS = (thingsboard_topic(Reply.COMMAND, "1"), thingsboard_topic(Reply.GATEWAY_COMMAND))
PROVISION_REQUEST = ROUTES[Operation.PROVISION].thingsboard[0]


class DeviceSession:
    """A device's session on one connection (a :class:`smartpole.devices.Session`)."""

    def __init__(self, conn: Connection, device: DeviceRef) -> None:
        self.conn = conn
        self.api = conn.api
        self.device = device
        self.sub_devices = self.api.sub_devices(device, self._attached)

    def route(self, topic: str, payload: bytes, *, will: bool = False) -> asyncio.Future[Any]:
        """Do what a PUBLISH asks; the future resolves when it may be acknowledged."""
        found = thingsboard_operation(topic)
        if (
            found is None
            or found[0] is Operation.PROVISION
            or (found[0].gateway and self.sub_devices is None)
        ):
            what = "will topic" if will else "topic"
            raise InvalidInput(f"{what} {topic!r} is not part of the device API", topic=topic)
        result = self.api.handle(self, found[0], payload, found[1])
        if asyncio.isfuture(result):
            return result  # a commit: the hot path, no task
        return self.conn.spawn(self._answered(result))

    async def _answered(self, work: Awaitable[Any]) -> Any:
        result = await work
        if isinstance(result, Answer):
            self.answer(result)
        return result

    def answer(self, answer: Answer) -> None:
        """Send an answer on its topic (if the device subscribed to it, or ThingsBoard sends
        it anyway); a firmware refusal ends the session, as ThingsBoard's does."""
        route = ROUTES[answer.reply]
        topic = route.thingsboard[0] + answer.request
        needs = None
        if answer.reply is Reply.FIRMWARE_CHUNK and self.conn.subscribed_to(topic) is None:
            # the ThingsBoard SDK subscribes to v2/fw/response/+, which does not match the answer
            needs = route.thingsboard[0] + answer.request.split("/", 1)[0]
        self.conn.send(topic, answer.body, needs=needs, always=route.unsolicited)
        if answer.reply is Reply.FIRMWARE_ERROR:
            why = f"firmware request refused: {answer.body.decode()}"
            self.conn.close(Reason.IMPLEMENTATION_SPECIFIC, why)

    def commands(self) -> tuple[str, ...]:
        """Topics whose subscription means the device takes commands."""
        return COMMANDS

    # -- what the device API asks of a session --------------------------------------------
    async def reply(self, device: DeviceRef, request_id: int, response: Any) -> None:
        """A command's reply completes it."""
        await self.api.platform.rpc_reply(device, request_id, response)

    async def connected(self, sub: DeviceRef) -> None:
        """Nothing more: naming a sub-device (``_attached``) started its session."""

    async def disconnected(self, name: str) -> None:
        """End the session of a sub-device the gateway named, if it had one."""
        sub = self.sub_devices.forget(name) if self.sub_devices is not None else None
        if sub is not None:
            self.conn.endpoint.unroute(sub.id)
            await self.api.platform.disconnected(sub, via=self.device)

    def reported(self, subs: Iterable[DeviceRef]) -> None:
        """Nothing: a sub-device is online while its gateway's connection lasts."""

    async def _attached(self, name: str, sub: DeviceRef) -> None:
        """Start the session of a sub-device this gateway named."""
        if self.conn.closed:  # the gateway left while the look-up ran: no session to start
            return
        self.conn.endpoint.route_via(self.conn, sub.id, name)
        await self.api.platform.connected(sub, via=self.device)

    # -- the connection's end -------------------------------------------------------------
    def forget(self, name: str) -> None:
        """The gateway may no longer speak for the device ``name`` (its binding was revoked)."""
        if self.sub_devices is not None:
            self.sub_devices.forget(name)

    async def ended(self) -> None:
        """The device and the sub-devices its gateway named go offline."""
        for sub in self.sub_devices.known() if self.sub_devices is not None else []:
            with contextlib.suppress(Exception):
                await self.api.platform.disconnected(sub, via=self.device)
        await self.api.platform.disconnected(self.device)
        log.debug("MQTT device %s (%s) disconnected", self.device.id, self.device.name)


class ProvisionSession:
    """A provisioning session: it may only ask for credentials."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def route(self, topic: str, payload: bytes, *, will: bool = False) -> asyncio.Future[Any]:
        """Answer a provision request; nothing else may be published."""
        if topic != PROVISION_REQUEST:
            raise InvalidInput(
                f"a provisioning session may publish only {PROVISION_REQUEST}", topic=topic
            )
        return self.conn.spawn(self._provision(payload))

    async def _provision(self, payload: bytes) -> None:
        answer = await self.conn.api.provision(payload)
        route = ROUTES[answer.reply]
        self.conn.send(route.thingsboard[0], answer.body, always=route.unsolicited)

    def commands(self) -> tuple[str, ...]:
        """None: a provisioning session takes no commands."""
        return ()

    def forget(self, name: str) -> None:
        """Nothing to forget."""

    async def ended(self) -> None:
        """Nothing to record: no device had a session."""
