"""What the device API needs from the platform, and nothing more.

The device API (:mod:`smartpole.devices.api`) reads ThingsBoard's payloads and writes its
answers; the platform (:class:`smartpole.devices.service.DeviceService`, over the registry, the
ingest pipeline and the command control) authenticates, stores and commands. Both meet in
:class:`DevicePlatform`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from smartpole.model.types import DeviceRef
from smartpole.model.writes import WriteBatch, WriteResult
from smartpole.registry.credentials import BasicAuth

__all__ = ["BasicAuth", "DevicePlatform", "SessionLimits"]


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """Per-session limits, enforced by the transports and reported by ``getSessionLimits``."""

    max_payload: int = 65_536
    max_inflight: int = 100
    messages_per_s: int = 1000
    burst: int = 2000


class DevicePlatform(Protocol):
    """The platform as the device API sees it."""

    limits: SessionLimits

    def authenticate(self, token: str) -> DeviceRef | None:
        """The device an access token belongs to, or None.

        Raises StoreUnavailable while the store cannot commit (the CONNECT is refused busy).
        """
        ...

    def authenticate_basic(
        self, client_id: str, username: str | None, password: str | None
    ) -> BasicAuth:
        """The device of MQTT Basic credentials (client id, user name, password), or why not.

        Raises StoreUnavailable while the store cannot commit.
        """
        ...

    def receive_time(self, device_id: int, now: int) -> int:
        """The time to stamp a message of the device that carries no timestamps of its own."""
        ...

    def commit(self, batch: WriteBatch) -> asyncio.Future[Any]:
        """Queue readings; the future resolves at their commit (to a ``Quarantine`` note when
        some values were kept apart). Raises Overloaded when the pipeline is full."""
        ...

    async def submit(self, batch: WriteBatch) -> WriteResult:
        """Queue readings and wait for their commit; StoreUnavailable in an outage."""
        ...

    def heard(self, device: DeviceRef) -> None:
        """The device spoke outside a session (HTTP): no longer offline."""
        ...

    async def set_client_attributes(self, device: DeviceRef, values: dict[str, Any]) -> None:
        """Store client-scope attributes."""
        ...

    async def attributes(self, device: DeviceRef) -> dict[str, dict[str, Any]]:
        """The device's client and shared attributes: ``{"client": {k: v}, "shared": {...}}``."""
        ...

    async def provision(self, request: Any) -> dict[str, Any]:
        """Answer a provision request (decoded JSON, or None when it was not JSON)."""
        ...

    async def claim(self, device: DeviceRef, data: Any) -> None:
        """A device opened its claim window ``{"secretKey", "durationMs"}``. Raises Forbidden."""
        ...

    async def firmware_assigned(self, device: DeviceRef) -> tuple[str, str] | None:
        """Title and version of the firmware assigned to the device, or None."""
        ...

    async def firmware_chunk(self, device: DeviceRef, size: int, index: int) -> bytes | None:
        """Chunk ``index`` of ``size`` bytes of the device's firmware; None: none assigned."""
        ...

    async def sub_devices(self, gateway: DeviceRef, names: list[str]) -> dict[str, DeviceRef]:
        """Those of ``names`` the gateway may speak for (one look-up for many)."""
        ...

    async def sub_device(self, gateway: DeviceRef, name: str, kind: str | None) -> DeviceRef:
        """The sub-device a gateway names; auto-created when the gateway may. Raises Forbidden."""
        ...

    async def reported_by(self, device: DeviceRef, gateway: DeviceRef) -> None:
        """Remember which gateway reports the device (for commands from any node)."""
        ...

    async def rpc_reply(self, device: DeviceRef, request_id: int, response: Any) -> None:
        """A device answered a command."""
        ...

    async def rpc_delivered(self, device_id: int, request_id: int) -> None:
        """A command reached the device (PUBACK; in broker mode: the broker took it)."""
        ...

    async def rpc_ready(self, device: DeviceRef, *, resend: bool = True) -> None:
        """The device is reachable: send the commands queued for it (and, ``resend``, those
        sent to an earlier session and never delivered)."""
        ...

    async def connected(self, device: DeviceRef, via: DeviceRef | None = None) -> None:
        """A device's session (or its gateway's report of it) began."""
        ...

    async def disconnected(self, device: DeviceRef, via: DeviceRef | None = None) -> None:
        """A device's session ended."""
        ...
