"""The platform as the device API sees it: authenticate, commit, attributes, commands.

Implements :class:`smartpole.devices.platform.DevicePlatform` over the registry, the ingest
pipeline and the command control, so that the device API and the transports stay free of
storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from smartpole.devices.batched import BatchedLookup
from smartpole.devices.platform import SessionLimits
from smartpole.errors import Conflict, Forbidden, InvalidInput, StoreUnavailable
from smartpole.ingest.commits import noting_quarantine
from smartpole.ingest.pipeline import Pipeline
from smartpole.model.clock import now_ms
from smartpole.model.types import DeviceRef, Reading, Role, Scope, kind_of_type
from smartpole.model.writes import Quarantine, WriteBatch, WriteResult
from smartpole.registry.access import Principal
from smartpole.registry.assets import Assets
from smartpole.registry.broker import LAST_GATEWAY
from smartpole.registry.claims import Claims
from smartpole.registry.credentials import BasicAuth, Credentials
from smartpole.registry.firmware import Firmware
from smartpole.registry.provisioning import FAILURE, Provisioning
from smartpole.store.database import store_unavailable

if TYPE_CHECKING:
    from smartpole.control import Control

__all__ = ["DeviceService"]

log = logging.getLogger("smartpole.devices")
MAX_PROFILE = 200  # characters of a device type kept as its profile (devices.profile)
AUTO_CREATE = "autoCreateDevices"  # server attribute of a gateway that may create sub-devices


SubDevicesFound = tuple[dict[str, DeviceRef], dict[str, str]]  # allowed by name, refused: why


def _noted(committed: asyncio.Future[Any], batch: WriteBatch) -> asyncio.Future[Any]:
    """The commit of one message, resolving to a Quarantine note when some of its values were
    kept apart (so that the device is told, in its acknowledgement)."""
    if not batch.quarantined:
        return committed
    first = batch.quarantined[0]
    note = Quarantine(len(batch.quarantined), first.reason or first.reading.key)
    return noting_quarantine(committed, note)


class DeviceService:
    """One object per platform; every device transport talks to it."""

    def __init__(
        self,
        assets: Assets,
        pipeline: Pipeline,
        control: Control,
        limits: SessionLimits,
        *,
        credentials: Credentials,
        provisioning: Provisioning,
        claims: Claims,
        firmware: Firmware,
    ) -> None:
        self.assets = assets
        self.pipeline = pipeline
        self.control = control
        self.limits = limits
        self.credentials = credentials
        self.provisioning = provisioning
        self.claims = claims
        self.firmware = firmware
        self.online: set[int] = set()
        self.offline: set[int] = set()  # sessions that ended here: offline whatever last_seen says
        self._stamps: dict[int, int] = {}  # the receive time last given to each device's message
        # the gateways' sub-device look-ups, asked together while one runs (a reconnect storm)
        self._sub_lookups = BatchedLookup[tuple[DeviceRef, Sequence[str]], SubDevicesFound](
            self._gateways_devices
        )
        self._attribute_lookups = BatchedLookup[int, dict[str, dict[str, Any]]](
            self._client_and_shared
        )

    def receive_time(self, device_id: int, now: int) -> int:
        """The time to stamp a device's message without its own timestamps: ``now``, or 1 ms
        after the previous message of that device when that was stamped ``now`` or later.

        Two messages in one millisecond (an SDK reporting UPDATING then UPDATED, a connect
        and a disconnect) would otherwise share a timestamp, and the second reading of a key
        would be dropped as a duplicate (the first one wins).
        """
        last = self._stamps.get(device_id, 0)
        stamp = now if now > last else last + 1
        self._stamps[device_id] = stamp
        return stamp

    # -- uplink ---------------------------------------------------------------------------
    def authenticate(self, token: str) -> DeviceRef | None:
        """The device an access token belongs to, or None; StoreUnavailable in an outage."""
        with self._store_available():
            return self.assets.device_by_token(token)

    def authenticate_basic(
        self, client_id: str, username: str | None, password: str | None
    ) -> BasicAuth:
        """The device of MQTT Basic credentials, or why not; StoreUnavailable in an outage."""
        with self._store_available():
            return self.credentials.authenticate(client_id, username, password)

    @contextlib.contextmanager
    def _store_available(self) -> Iterator[None]:
        """Refuse a new session while the store cannot commit: what it sent could not be
        stored, and the sessions already open are held until the store is back."""
        if self.pipeline.outage is not None:
            raise StoreUnavailable(self.pipeline.outage.detail)
        try:
            yield
        except Exception as err:
            outage = store_unavailable(err)
            if outage is None:
                raise
            raise outage from err

    async def provision(self, request: Any) -> dict[str, Any]:
        """Answer a provision request; never raises (a refusal is an answer too)."""
        try:
            return await asyncio.to_thread(self.provisioning.provision, request)
        except Exception:
            log.exception("provisioning failed")
            return dict(FAILURE)

    async def claim(self, device: DeviceRef, data: Any) -> None:
        """Open the device's claim window."""
        await asyncio.to_thread(self.claims.register, device, data)

    async def firmware_chunk(self, device: DeviceRef, size: int, index: int) -> bytes | None:
        """A chunk of the device's assigned firmware, or None when it has none."""
        return await asyncio.to_thread(self.firmware.chunk, device.id, size, index)

    async def firmware_assigned(self, device: DeviceRef) -> tuple[str, str] | None:
        """Title and version of the device's assigned firmware, or None."""
        assigned = await asyncio.to_thread(self.firmware.assigned, device.id)
        return None if assigned is None else (assigned["title"], assigned["version"])

    def commit(self, batch: WriteBatch) -> asyncio.Future[Any]:
        """Queue readings; the future resolves at their commit (to a Quarantine note when
        some values were kept apart, so that the device is told)."""
        return _noted(self.pipeline.enqueue(batch), batch)

    async def submit(self, batch: WriteBatch) -> WriteResult:
        """Queue readings and wait for their commit; StoreUnavailable in an outage."""
        return await self.pipeline.submit(batch)

    def heard(self, device: DeviceRef) -> None:
        """Heard from again outside a session (HTTP): no longer offline."""
        self.offline.discard(device.id)

    async def set_client_attributes(self, device: DeviceRef, values: dict[str, Any]) -> None:
        """Store client-scope attributes."""
        await asyncio.to_thread(self.assets.set_attributes, device.id, Scope.CLIENT, values)

    async def attributes(self, device: DeviceRef) -> dict[str, dict[str, Any]]:
        """The device's client and shared attributes' values, by scope (in one query with the
        other devices' that ask meanwhile)."""
        attrs = await self._attribute_lookups(device.id)
        return {
            scope: {k: v["value"] for k, v in attrs.get(scope, {}).items()}
            for scope in ("client", "shared")
        }

    def _gateways_devices(
        self, asks: Sequence[tuple[DeviceRef, Sequence[str]]]
    ) -> list[SubDevicesFound]:
        return self.assets.gateways_devices(asks)

    def _client_and_shared(self, device_ids: Sequence[int]) -> list[dict[str, dict[str, Any]]]:
        found = self.assets.attributes_of(device_ids, [Scope.CLIENT, Scope.SHARED])
        return [found.get(device_id, {}) for device_id in device_ids]

    async def sub_devices(self, gateway: DeviceRef, names: list[str]) -> dict[str, DeviceRef]:
        """Those of ``names`` the gateway may speak for (the registry's rule), in one query
        with the other gateways' that ask meanwhile."""
        allowed, _ = await self._sub_lookups((gateway, names))
        return allowed

    async def sub_device(self, gateway: DeviceRef, name: str, kind: str | None) -> DeviceRef:
        """A gateway's sub-device by name: one it may speak for, or a new one it may create
        (in the gateway's tenant, on its pole). Raises Forbidden, logged with both names."""
        allowed, refused = await self._sub_lookups((gateway, [name]))
        if name in allowed:
            return allowed[name]
        if name in refused:
            log.warning(
                "gateway %s (%s) may not speak for device %r: %s",
                gateway.id,
                gateway.name,
                name,
                refused[name],
            )
            raise Forbidden(f"gateway {gateway.name} may not speak for device {name!r}")
        attrs = await asyncio.to_thread(
            self.assets.get_attributes, gateway.id, [Scope.SERVER], [AUTO_CREATE]
        )
        if not attrs.get("server", {}).get(AUTO_CREATE, {}).get("value"):
            raise Forbidden(
                f"unknown device {name!r}; gateway {gateway.name} may not create "
                f"devices (server attribute {AUTO_CREATE})"
            )
        device_kind, profile = kind_of_type(kind)
        if profile is not None and not 0 < len(profile) <= MAX_PROFILE:
            raise InvalidInput(f"cannot create {name!r}: type {profile[:40]!r}… is too long")
        owner = Principal(gateway.owner_id, "", Role.OPERATOR, True)
        try:
            row, _ = await asyncio.to_thread(
                self.assets.create_device,
                owner,
                device_kind,
                name=name,
                pole_id=gateway.pole_id,
                owner=gateway.owner_id,
                profile=profile,
            )
        except Conflict:
            # another message (on another node, behind a broker) created it first
            again = await self.sub_devices(gateway, [name])
            if name in again:
                return again[name]
            raise
        log.info(
            "gateway %s created device %s (%s), a %s%s",
            gateway.name,
            row.id,
            name,
            device_kind,
            f" of profile {profile!r}" if profile else "",
        )
        return DeviceRef(row.id, name, device_kind, gateway.owner_id, gateway.pole_id)

    # -- commands -------------------------------------------------------------------------
    async def rpc_reply(self, device: DeviceRef, request_id: int, response: Any) -> None:
        """A device answered a command."""
        await self.control.on_reply(device.id, request_id, response)

    async def rpc_delivered(self, device_id: int, request_id: int) -> None:
        """A device acknowledged a command."""
        await self.control.on_delivered(device_id, request_id)

    async def rpc_ready(self, device: DeviceRef, *, resend: bool = True) -> None:
        """Send the commands queued while the device was away (and, ``resend``: a new session,
        those sent to an earlier one and never delivered)."""
        sent = await self.control.on_connect(device.id, resend=resend)
        if sent:
            log.info("sent %d queued commands to device %s", sent, device.id)

    async def reported_by(self, device: DeviceRef, gateway: DeviceRef) -> None:
        """Record the gateway that reports a sub-device: server attribute
        ``lastConnectedGateway`` (its id), which broker mode routes commands by. (The built-in
        endpoint keeps its sessions in memory and does not pay this look-up per connect.)"""
        try:
            await asyncio.to_thread(self._reported_by, device.id, gateway.id)
        except Exception as err:  # the readings matter more than this note: go on
            log.warning("could not record gateway %s of device %s: %s", gateway.id, device.id, err)

    def _reported_by(self, device_id: int, gateway_id: int) -> None:
        now = self.assets.get_attributes(device_id, [Scope.SERVER], [LAST_GATEWAY])
        if now.get("server", {}).get(LAST_GATEWAY, {}).get("value") != gateway_id:
            self.assets.set_attributes(device_id, Scope.SERVER, {LAST_GATEWAY: gateway_id})

    # -- presence -------------------------------------------------------------------------
    async def connected(self, device: DeviceRef, via: DeviceRef | None = None) -> None:
        """Mark the device online and record it as telemetry ``online``."""
        self.online.add(device.id)
        self.offline.discard(device.id)
        await self._presence(device, True, via)
        if via is not None:
            await self.control.on_connect(device.id)

    async def disconnected(self, device: DeviceRef, via: DeviceRef | None = None) -> None:
        """Mark the device offline and record it."""
        self.online.discard(device.id)
        self.offline.add(device.id)
        await self._presence(device, False, via)

    async def _presence(self, device: DeviceRef, online: bool, via: DeviceRef | None) -> None:
        """Record the change; the gateway that told it (``via``) was heard from too."""
        wall = now_ms()
        now = self.receive_time(device.id, wall)
        # the gateway at the wall time, not the device's stamp (which may run a few ms ahead):
        # the gateway's own offline record must not look older than its last contact
        seen = {device.id: now} if via is None else {device.id: now, via.id: wall}
        batch = WriteBatch(readings=[Reading(device.id, "online", now, online)], seen=seen)
        try:
            await self.pipeline.submit(batch)
        except Exception as err:
            log.warning(
                "could not record device %s %s: %s",
                device.id,
                "online" if online else "offline",
                err,
            )
