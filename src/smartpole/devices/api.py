"""The one device API: ThingsBoard's device and gateway APIs, whatever carries them.

A transport decodes its frame into (session, :class:`~smartpole.devices.operations.Operation`,
payload bytes) and calls :meth:`DeviceApi.handle`; it encodes what comes back (a commit to
acknowledge, an :class:`~smartpole.devices.operations.Answer` to send). Every ThingsBoard rule
lives here once: the payload forms (decoded and parsed in one step, here), which errors, the
answers' shapes, the gateway's sub-devices. The built-in MQTT endpoint, broker mode and the HTTP
device API differ only in framing, presence and how a command's reply completes it, which their
:class:`Session` says.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any, Protocol

from smartpole.devices.firmware import chunk_request
from smartpole.devices.gateway import (
    SubDevices,
    attribute_request,
    attribute_response,
    device_of,
    reports,
    rpc_reply,
)
from smartpole.devices.operations import Answer, Ingested, Operation, Reply
from smartpole.devices.platform import BasicAuth, DevicePlatform, SessionLimits
from smartpole.errors import Forbidden, InvalidInput, NotFound, SmartpoleError
from smartpole.ingest.payload import decode_json, parse_attributes, parse_telemetry, to_batch
from smartpole.model.clock import now_ms
from smartpole.model.types import DeviceKind, DeviceRef, split_keys
from smartpole.model.writes import WriteBatch

__all__ = ["DeviceApi", "Session"]

log = logging.getLogger(__name__)
CLIENT_RPC_METHODS = ("getCurrentTime", "getSessionLimits")


class Session(Protocol):
    """One device's session as the device API sees it. Each transport keeps presence and
    completes commands its own way: the built-in endpoint in its connections' memory, broker
    mode through status topics and the store its nodes share."""

    device: DeviceRef
    sub_devices: SubDevices | None  # a gateway's; None for any other device

    async def reply(self, device: DeviceRef, request_id: int, response: Any) -> None:
        """The device (or a sub-device, through its gateway) answered a command."""
        ...

    async def connected(self, sub: DeviceRef) -> None:
        """The gateway said a sub-device connected."""
        ...

    async def disconnected(self, name: str) -> None:
        """The gateway said a sub-device disconnected."""
        ...

    def reported(self, subs: Iterable[DeviceRef]) -> None:
        """A report of the gateway's was committed: these sub-devices were heard from."""
        ...


def _request_id(text: str) -> int:
    try:
        return int(text)
    except ValueError as err:
        raise InvalidInput(f"request id {text!r} is not an integer") from err


def _method_of(payload: bytes) -> str:
    """The method of a device-initiated RPC ``{"method": ..., "params": ...}``."""
    call = decode_json(payload)
    if not isinstance(call, dict) or not isinstance(call.get("method"), str):
        raise InvalidInput('client RPC needs {"method": "...", "params": ...}')
    return str(call["method"])


def _keys(value: Any) -> list[str] | None:
    """The keys an attribute request names: a comma-separated string or a list; None: all."""
    if value is None or value == "":
        return None
    if isinstance(value, list):
        return [str(k) for k in value]
    return split_keys(str(value))


def _chosen(
    values: dict[str, dict[str, Any]], client: list[str] | None, shared: list[str] | None
) -> dict[str, dict[str, Any]]:
    """Client and shared attributes, all or the keys asked for (a scope not asked for, when the
    other one is, is empty)."""
    out: dict[str, dict[str, Any]] = {}
    for scope, keys in (("client", client), ("shared", shared)):
        found = values.get(scope, {})
        if keys is None and (client or shared):
            found = {}  # only the scope(s) asked for
        elif keys is not None:
            found = {k: found[k] for k in keys if k in found}
        out[scope] = found
    return out


class DeviceApi:
    """(session, operation, payload) in, a commit or an answer out; one per platform."""

    def __init__(self, platform: DevicePlatform) -> None:
        self.platform = platform
        self._handlers: dict[
            Operation, Callable[[Session, bytes, str], Coroutine[Any, Any, Any]]
        ] = {
            Operation.CLIENT_ATTRIBUTES: self._client_attributes,
            Operation.ATTRIBUTE_REQUEST: self._attribute_request,
            Operation.RPC_REPLY: self._rpc_reply,
            Operation.CLIENT_RPC: self._client_rpc,
            Operation.CLAIM: self._claim,
            Operation.FIRMWARE_CHUNK: self._firmware_chunk,
            Operation.GATEWAY_TELEMETRY: self._gw_telemetry,
            Operation.GATEWAY_CONNECT: self._gw_connect,
            Operation.GATEWAY_DISCONNECT: self._gw_disconnect,
            Operation.GATEWAY_ATTRIBUTES: self._gw_attributes,
            Operation.GATEWAY_ATTRIBUTE_REQUEST: self._gw_attribute_request,
            Operation.GATEWAY_RPC_REPLY: self._gw_rpc_reply,
            Operation.GATEWAY_CLAIM: self._gw_claim,
        }

    @property
    def limits(self) -> SessionLimits:
        """The per-session limits the transports enforce."""
        return self.platform.limits

    # -- sessions -------------------------------------------------------------------------
    def authenticate(self, token: str) -> DeviceRef | None:
        """The device of an access token, or None; StoreUnavailable in an outage (blocking)."""
        return self.platform.authenticate(token)

    def authenticate_basic(
        self, client_id: str, username: str | None, password: str | None
    ) -> BasicAuth:
        """The device of MQTT Basic credentials, or why not (blocking)."""
        return self.platform.authenticate_basic(client_id, username, password)

    def sub_devices(
        self,
        gw: DeviceRef,
        attached: Callable[[str, DeviceRef], Awaitable[None]],
        *,
        keep_s: float | None = None,
        records_gateway: bool = False,
    ) -> SubDevices | None:
        """The sub-device state of a session of ``gw``; None when it is no gateway."""
        if gw.kind is not DeviceKind.GATEWAY:
            return None
        return SubDevices(
            gw, self.platform, attached, keep_s=keep_s, records_gateway=records_gateway
        )

    # -- the one entry --------------------------------------------------------------------
    def handle(
        self, session: Session, op: Operation, payload: bytes, request: str = ""
    ) -> Awaitable[Any]:
        """Do one operation of a session: ``request`` is what the topic carries after the
        operation's prefix (a request id), if anything.

        Telemetry returns its commit's future at once (raising a refusal at once: the hot path
        makes no task); the rest a coroutine, resolving to the :class:`Answer` to send (None:
        nothing) or, for a gateway's telemetry, to what its commit resolved to.
        """
        if op is Operation.TELEMETRY:
            return self.telemetry(session.device, payload)
        if op.gateway and session.sub_devices is None:
            raise Forbidden(f"device {session.device.name} is not a gateway: it has no gateway API")
        handler = self._handlers.get(op)
        if handler is None:
            raise InvalidInput(f"{op.value} is not part of a device session")
        return handler(session, payload, request)

    # -- a device's own operations --------------------------------------------------------
    def _batch(self, device: DeviceRef, payload: bytes) -> WriteBatch:
        now = self.platform.receive_time(device.id, now_ms())
        return to_batch(device.id, device.kind, parse_telemetry(decode_json(payload), now), now)

    def telemetry(self, device: DeviceRef, payload: bytes) -> asyncio.Future[Any]:
        """Queue a device's telemetry in any ThingsBoard form; the future resolves at its
        commit (to a Quarantine note when values were kept apart). Raises PayloadError,
        Overloaded."""
        return self.platform.commit(self._batch(device, payload))

    async def upload(self, device: DeviceRef, payload: bytes) -> Ingested:
        """Store a device's telemetry and wait for the commit (HTTP); StoreUnavailable in an
        outage rather than holding the device."""
        batch = self._batch(device, payload)
        await self.platform.submit(batch)
        self.platform.heard(device)
        return Ingested(len(batch.readings), len(batch.quarantined))

    async def client_attributes(self, device: DeviceRef, payload: bytes) -> int:
        """Store client-scope attributes (a flat JSON object); how many."""
        values = parse_attributes(decode_json(payload))
        await self.platform.set_client_attributes(device, values)
        return len(values)

    async def _client_attributes(self, session: Session, payload: bytes, _: str) -> None:
        await self.client_attributes(session.device, payload)

    async def attributes(self, device: DeviceRef, asked: Mapping[str, Any]) -> dict[str, Any]:
        """``{"client": {...}, "shared": {...}}`` for a request naming ``clientKeys`` and
        ``sharedKeys`` (comma-separated or lists; neither: all)."""
        values = await self.platform.attributes(device)
        return _chosen(values, _keys(asked.get("clientKeys")), _keys(asked.get("sharedKeys")))

    async def _attribute_request(self, session: Session, payload: bytes, request: str) -> Answer:
        asked = decode_json(payload)
        if not isinstance(asked, dict):
            raise InvalidInput("attribute request must be a JSON object")
        body = await self.attributes(session.device, asked)
        return Answer(Reply.ATTRIBUTE_RESPONSE, body, request)

    async def reply(self, device: DeviceRef, request_id: int, payload: bytes) -> None:
        """A device's reply to a command outside a session (HTTP ``POST …/rpc/{id}``)."""
        await self.platform.rpc_reply(device, request_id, decode_json(payload))

    async def _rpc_reply(self, session: Session, payload: bytes, request: str) -> None:
        request_id = _request_id(request)
        await session.reply(session.device, request_id, decode_json(payload))

    def call(self, device: DeviceRef, payload: bytes) -> Any:
        """A device-initiated RPC ``{"method": ..., "params": ...}``: the platform's own
        methods. Raises InvalidInput for another method or shape."""
        return self._method(_method_of(payload))

    def _method(self, method: str) -> Any:
        if method == "getCurrentTime":
            return {"currentTime": now_ms()}
        if method == "getSessionLimits":
            limits = self.limits
            rate = f"{limits.messages_per_s}:1,{limits.burst * 30}:60"
            return {
                "maxPayloadSize": limits.max_payload,
                "maxInflightMessages": limits.max_inflight,
                "rateLimits": {
                    "messages": rate,
                    "telemetryMessages": rate,
                    "telemetryDataPoints": f"{limits.messages_per_s * 100}:1",
                },
            }
        raise InvalidInput(
            f"unknown client RPC method {method!r}", methods=list(CLIENT_RPC_METHODS)
        )

    async def _client_rpc(self, session: Session, payload: bytes, request: str) -> Answer:
        method = _method_of(payload)
        try:
            result = self._method(method)
        except SmartpoleError as err:  # answered, as ThingsBoard does: the call was well formed
            result = {"error": err.detail}
        return Answer(Reply.CLIENT_RPC_RESPONSE, result, request)

    async def _claim(self, session: Session, payload: bytes, _: str) -> None:
        await self.platform.claim(session.device, decode_json(payload))

    async def claim(self, device: DeviceRef, payload: bytes) -> None:
        """Open the device's claim window ``{"secretKey": ..., "durationMs": ms}``."""
        await self.platform.claim(device, decode_json(payload))

    async def _firmware_chunk(self, session: Session, payload: bytes, request: str) -> Answer:
        """``{request}/chunk/{n}`` with the chunk size (nothing: all) as payload: the chunk, or
        ThingsBoard's status (``PAYLOAD_TOO_LARGE``, ``NOT_FOUND``) on the error reply."""
        device = session.device
        req, index, size = chunk_request(request, payload)
        if size > self.limits.max_payload:
            return self._firmware_refused(device, "PAYLOAD_TOO_LARGE", f"chunk size {size}")
        data = await self.platform.firmware_chunk(device, size, index)
        if data is None:
            return self._firmware_refused(device, "NOT_FOUND", "no firmware assigned")
        return Answer(Reply.FIRMWARE_CHUNK, data, f"{req}/chunk/{index}")

    @staticmethod
    def _firmware_refused(device: DeviceRef, status: str, why: str) -> Answer:
        log.warning(
            "device %s (%s): firmware request refused: %s (%s)", device.id, device.name, why, status
        )
        return Answer(Reply.FIRMWARE_ERROR, status.encode())

    async def firmware(
        self, device: DeviceRef, title: str, version: str, size: int, index: int
    ) -> bytes:
        """A chunk of the firmware assigned to the device, which must be the one named (HTTP:
        ``?title=&version=&size=&chunk=``). Raises NotFound."""
        missing = NotFound(f"firmware {title} {version} is not assigned to device {device.name}")
        if await self.platform.firmware_assigned(device) != (title, version):
            raise missing
        data = await self.platform.firmware_chunk(device, size, index)
        if data is None:
            raise missing
        return data

    async def provision(self, payload: bytes) -> Answer:
        """Answer a provision request; a payload that is not JSON is answered FAILURE too."""
        try:
            request = decode_json(payload)
        except InvalidInput:
            request = None
        return Answer(Reply.PROVISION_RESPONSE, await self.platform.provision(request))

    # -- a gateway's, for its sub-devices -------------------------------------------------
    @staticmethod
    def _subs(session: Session) -> SubDevices:
        assert session.sub_devices is not None  # handle() checked
        return session.sub_devices

    async def _gw_telemetry(self, session: Session, payload: bytes, _: str) -> Any:
        report = reports(decode_json(payload), "telemetry")
        now = now_ms()
        subs = self._subs(session)
        found = await subs.of(report)
        batch = WriteBatch(seen={subs.gateway.id: now} if subs.records_gateway else {})
        for name, values in report.items():
            sub = found.get(name)
            if sub is not None:
                stamp = self.platform.receive_time(sub.id, now)
                to_batch(sub.id, sub.kind, parse_telemetry(values, stamp), stamp, into=batch)
        result = await self.platform.commit(batch)  # a Quarantine note, for the acknowledgement
        session.reported(found.values())
        return result

    async def _gw_connect(self, session: Session, payload: bytes, _: str) -> None:
        data = decode_json(payload)
        name = device_of(data, "connect")
        await session.connected(await self._subs(session).one(name, data.get("type")))

    async def _gw_disconnect(self, session: Session, payload: bytes, _: str) -> None:
        await session.disconnected(device_of(decode_json(payload), "disconnect"))

    async def _gw_attributes(self, session: Session, payload: bytes, _: str) -> None:
        report = reports(decode_json(payload), "attributes")
        for name, sub in (await self._subs(session).of(report)).items():
            await self.platform.set_client_attributes(sub, parse_attributes(report[name]))

    async def _gw_attribute_request(self, session: Session, payload: bytes, _: str) -> Answer:
        data = decode_json(payload)
        name, keys, client = attribute_request(data)
        sub = await self._subs(session).one(name)
        values = await self.platform.attributes(sub)
        found = _chosen(values, keys if client else None, None if client else keys)
        body = attribute_response(data, name, found)
        return Answer(Reply.GATEWAY_ATTRIBUTE_RESPONSE, body)

    async def _gw_rpc_reply(self, session: Session, payload: bytes, _: str) -> None:
        name, request_id, response = rpc_reply(decode_json(payload))
        sub = await self._subs(session).one(name, create=False)  # a reply creates no device
        await session.reply(sub, request_id, response)

    async def _gw_claim(self, session: Session, payload: bytes, _: str) -> None:
        report = reports(decode_json(payload), "claim")
        for name, sub in (await self._subs(session).of(report)).items():
            await self.platform.claim(sub, report[name])
