"""Broker mode's uplink: the device API over ``sp/v1/{device}/{suffix}`` messages, framing only.

The suffix names the operation (the table in :mod:`smartpole.transport.topics`); the device API
(:class:`smartpole.devices.DeviceApi`) does it; its answer is published on the device's topic.
What is broker mode's own, its node's consumer does (:class:`Node`): presence from status topics
and the store, which node completes a command, telling every node of a sub-device's status.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, Protocol

from smartpole.devices import Answer, DeviceApi, Operation, SubDevices
from smartpole.errors import InvalidInput, Overloaded
from smartpole.model.types import DeviceKind, DeviceRef
from smartpole.transport.broker.topics import device_topic
from smartpole.transport.topics import broker_operation, broker_suffix

__all__ = ["CACHE_S", "Node", "Uplink"]

CACHE_S = 30.0  # a gateway's sub-devices by name are trusted this long (as access tokens)


class Node(Protocol):
    """What the uplink needs of its node's consumer (``BrokerConsumer``)."""

    api: DeviceApi

    def heard(self, device: DeviceRef) -> None:
        """A device (or a gateway) spoke: online."""
        ...

    def spoke(self, device: DeviceRef) -> None:
        """A device's own message was handled: online, and it speaks for itself."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run work in the background."""
        ...

    async def publish(self, topic: str, body: Any, *, retain: bool = False) -> bool:
        """Publish QoS 1 to the broker."""
        ...

    async def reply(self, device: DeviceRef, request_id: int, data: Any) -> None:
        """Complete a command with the device's reply (here, or by the node that sent it)."""
        ...

    async def learn(self, gw: DeviceRef, name: str, sub: DeviceRef) -> None:
        """A gateway (re)named a sub-device."""
        ...

    async def sub_device_status(self, gw: DeviceRef, sub: DeviceRef, *, online: bool) -> None:
        """A gateway connected or disconnected a sub-device."""
        ...


class Uplink:
    """The devices' messages of one node, handed to the device API."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.api = node.api
        self._sub_devices: dict[int, SubDevices] = {}  # gateway id -> the devices it named

    async def handle(self, device: DeviceRef, suffix: str, payload: bytes) -> int:
        """Do what a device's message asks; return once it may be acknowledged, with the
        number of telemetry messages it stored (1 or 0). Raises a refusal."""
        found = broker_operation(suffix)
        if found is None:
            raise InvalidInput(f"{suffix!r} is not a broker-mode topic")
        op, request = found
        if op.gateway and device.kind is DeviceKind.GATEWAY:
            self.node.heard(device)  # now: its sub-devices are reachable once it connected them
        session = _Session(self, device)
        result = await self._commit(lambda: self.api.handle(session, op, payload, request))
        if isinstance(result, Answer):  # sent in the background: the PUBACK need not wait
            topic = device_topic(device.name, broker_suffix(result.reply, result.request))
            self.node.spawn(self._publish(topic, result.body))
        if not op.gateway:  # (a gateway message: heard as soon as it is read)
            self.node.spoke(device)
        return op in (Operation.TELEMETRY, Operation.GATEWAY_TELEMETRY)

    async def _publish(self, topic: str, body: Any) -> None:
        await self.node.publish(topic, body)

    @staticmethod
    async def _commit(work: Callable[[], Awaitable[Any]]) -> Any:
        """Do an operation, waiting while the pipeline is full; return once its readings are
        committed (a failed commit raises: no PUBACK, delivered again)."""
        pause = 0.01
        while True:
            try:
                done = work()
                # a commit is shared by the messages of one turn of the loop: never cancel it
                return await (asyncio.shield(done) if asyncio.isfuture(done) else done)
            except Overloaded:  # back-pressure: hold the acknowledgement, the broker waits
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)

    def sub_devices(self, gw: DeviceRef) -> SubDevices | None:
        """The sub-devices a gateway has named on this node (trusted ``CACHE_S``); None for a
        device that is no gateway."""
        subs = self._sub_devices.get(gw.id)
        if subs is None:
            learn = functools.partial(self.node.learn, gw)
            subs = self.api.sub_devices(gw, learn, keep_s=CACHE_S, records_gateway=True)
            if subs is not None:
                self._sub_devices[gw.id] = subs
        return subs

    def forget_if_over(self, most: int) -> None:
        """Forget every gateway's sub-devices when more than ``most`` gateways are held."""
        if len(self._sub_devices) > most:
            self._sub_devices.clear()


class _Session:
    """A device heard through the broker, as the device API sees it (one per message)."""

    def __init__(self, uplink: Uplink, device: DeviceRef) -> None:
        self.node = uplink.node
        self.device = device
        self.sub_devices = uplink.sub_devices(device)

    async def reply(self, device: DeviceRef, request_id: int, response: Any) -> None:
        """Complete the command here, or leave it to the node that sent it."""
        await self.node.reply(device, request_id, response)

    async def connected(self, sub: DeviceRef) -> None:
        """The gateway connected a sub-device."""
        await self.node.sub_device_status(self.device, sub, online=True)

    async def disconnected(self, name: str) -> None:
        """The gateway disconnected a sub-device."""
        assert self.sub_devices is not None
        sub = await self.sub_devices.one(name)
        await self.node.sub_device_status(self.device, sub, online=False)

    def reported(self, subs: Iterable[DeviceRef]) -> None:
        """The sub-devices of a committed report are online (while their gateway is)."""
        for sub in subs:
            self.node.heard(sub)
