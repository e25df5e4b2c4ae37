"""ThingsBoard's gateway API: its messages, read and written alike by both MQTT transports (the
built-in endpoint's ``v1/gateway/...`` and broker mode's ``sp/v1/{gateway}/gateway/...``), and
the sub-devices a gateway's session has named (:class:`SubDevices`)."""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from smartpole.devices.platform import DevicePlatform
from smartpole.errors import Forbidden, InvalidInput, NotFound
from smartpole.model.types import DeviceRef

__all__ = [
    "SubDevices",
    "attribute_request",
    "attribute_response",
    "command",
    "device_of",
    "reports",
    "rpc_reply",
]


def reports(data: Any, what: str) -> dict[str, Any]:
    """A telemetry, attributes or claim message: ``{"device name": ..., ...}``."""
    if not isinstance(data, dict) or not data:
        raise InvalidInput(f'gateway {what} needs {{"device name": ...}}')
    return data


def device_of(data: Any, what: str) -> str:
    """The device a connect or disconnect message names: ``{"device": "name"}``."""
    if not isinstance(data, dict) or not isinstance(data.get("device"), str) or not data["device"]:
        raise InvalidInput(f'{what} needs {{"device": "name"}}')
    return str(data["device"])


def attribute_request(data: Any) -> tuple[Any, list[str] | None, bool]:
    """``(device name, keys or None for all, client scope?)`` of an attribute request
    ``{"id": n, "device": "name", "client": bool, "key": "k"}`` (or ``"keys": [...]``)."""
    if not isinstance(data, dict) or "id" not in data:
        raise InvalidInput('attribute request needs {"id": n, "device": "name", "key": ...}')
    keys = data.get("keys") or ([data["key"]] if "key" in data else None)
    if keys is not None and not isinstance(keys, list):
        raise InvalidInput('"keys" of an attribute request is a list of names')
    return data.get("device"), [str(k) for k in keys] if keys else None, bool(data.get("client"))


def attribute_response(
    data: dict[str, Any], name: str, answer: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The answer to an attribute request: ``"value"`` for one ``"key"``, else ``"values"``."""
    found = answer["client" if data.get("client") else "shared"]
    body: dict[str, Any] = {"id": data["id"], "device": name}
    if "key" in data and not data.get("keys"):
        body["value"] = found.get(str(data["key"]))
    else:
        body["values"] = found
    return body


def rpc_reply(data: Any) -> tuple[Any, int, dict[str, Any]]:
    """``(device name, request id, response)`` of ``{"device": "name", "id": n, "data": {}}``."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
        raise InvalidInput('gateway RPC reply needs {"device": "name", "id": n, "data": {}}')
    request_id = data.get("id", data["data"].get("id"))
    if not isinstance(request_id, int) or isinstance(request_id, bool):
        raise InvalidInput("gateway RPC reply needs an integer id")
    return data.get("device"), request_id, data["data"]


def command(name: str, request_id: int, method: str, params: Any) -> dict[str, Any]:
    """A command to a gateway's sub-device, as ThingsBoard's gateway receives it."""
    return {"device": name, "data": {"id": request_id, "method": method, "params": params}}


class SubDevices:
    """The sub-devices one gateway's session has named: names -> DeviceRef, and the look-ups
    under way, shared by the messages that name the same new device.

    The built-in endpoint keeps one per gateway connection, for as long as it lasts; broker
    mode one per gateway on each node, trusting a name ``keep_s`` (another node may have
    learnt of a revoked binding). ``attached`` is called each time a name is (re)learnt.
    """

    def __init__(
        self,
        gateway: DeviceRef,
        platform: DevicePlatform,
        attached: Callable[[str, DeviceRef], Awaitable[None]],
        *,
        keep_s: float | None = None,
        records_gateway: bool = False,
    ) -> None:
        self.gateway = gateway
        self.platform = platform
        self.records_gateway = records_gateway  # a report counts as hearing from the gateway
        self._attached = attached
        self._keep_s = math.inf if keep_s is None else keep_s
        self._known: dict[str, tuple[float, DeviceRef]] = {}  # name -> (trusted until, device)
        self._lookups: dict[str, asyncio.Future[DeviceRef]] = {}

    def get(self, name: str) -> DeviceRef | None:
        """The sub-device of that name, if known (and still trusted)."""
        hit = self._known.get(name)
        if hit is None or (hit[0] < math.inf and hit[0] <= time.monotonic()):
            return None
        return hit[1]

    def known(self) -> list[DeviceRef]:
        """The sub-devices named so far."""
        return [sub for _, sub in self._known.values()]

    def forget(self, name: str) -> DeviceRef | None:
        """Forget a name (a disconnect, a revoked binding): the next message naming it is
        looked up, and perhaps refused, again."""
        hit = self._known.pop(name, None)
        return None if hit is None else hit[1]

    async def one(self, name: Any, kind: Any = None, *, create: bool = True) -> DeviceRef:
        """The sub-device ``name``: known, looked up, or (``create``, when the gateway may)
        created, of ``kind``. Raises Forbidden (logged by the platform, naming both), and
        NotFound for an unknown name when not ``create``."""
        if not isinstance(name, str) or not name:
            raise InvalidInput("a gateway message must name its device")
        sub = self.get(name)
        if sub is not None:
            return sub
        if not create:  # a reply to a command: look up only
            found = await self.platform.sub_devices(self.gateway, [name])
            if name not in found:
                raise NotFound(f"gateway {self.gateway.name} has no device {name!r}")
            return await self._attach(name, found[name])
        lookup = self._lookups.get(name)
        if lookup is None:
            lookup = self._start(name, self._find(name, kind if isinstance(kind, str) else None))
        return await asyncio.shield(lookup)

    async def of(self, names: Iterable[str]) -> dict[str, DeviceRef]:
        """Those of a report's device names the gateway may speak for. A refused device does
        not refuse the rest; a report of refused devices only is refused, so that the gateway
        learns of it."""
        names = list(names)
        new = [n for n in names if n and self.get(n) is None and n not in self._lookups]
        if len(new) > 1:
            self._look_up_together(new)
        found: dict[str, DeviceRef] = {}
        refusals: list[Forbidden] = []
        for name in names:
            sub = self.get(name) if name else None  # the common case: no coroutine
            if sub is not None:
                found[name] = sub
                continue
            try:
                found[name] = await self.one(name)
            except Forbidden as err:
                refusals.append(err)
        if refusals and not found:
            raise refusals[0]
        return found

    async def _find(self, name: str, kind: str | None) -> DeviceRef:
        return await self._attach(name, await self.platform.sub_device(self.gateway, name, kind))

    async def _attach(self, name: str, sub: DeviceRef) -> DeviceRef:
        self._known[name] = (time.monotonic() + self._keep_s, sub)
        await self._attached(name, sub)
        return sub

    def _look_up_together(self, names: list[str]) -> None:
        """Start the look-ups of several new sub-devices as one registry query (a gateway's
        first report after it connected names all its devices); names it does not find go
        the one-by-one way (refused, or created when the gateway may)."""
        query = asyncio.ensure_future(self.platform.sub_devices(self.gateway, names))

        async def one(name: str) -> DeviceRef:
            found = (await asyncio.shield(query)).get(name)
            if found is None:
                return await self._find(name, None)
            return await self._attach(name, found)

        for name in names:
            self._start(name, one(name))

    def _start(self, name: str, lookup: Awaitable[DeviceRef]) -> asyncio.Future[DeviceRef]:
        future = asyncio.ensure_future(lookup)
        self._lookups[name] = future
        future.add_done_callback(functools.partial(self._looked_up, name))
        return future

    def _looked_up(self, name: str, lookup: asyncio.Future[DeviceRef]) -> None:
        self._lookups.pop(name, None)
        if not lookup.cancelled():
            # seen: a message that named several refused devices awaits only the first
            lookup.exception()
