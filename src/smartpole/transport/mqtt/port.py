"""What the MQTT transport needs from the platform, and nothing more.

The transport decodes packets and encodes answers; the platform (``smartpole.devices``)
authenticates, stores and commands. Both meet in this Protocol.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from smartpole.model.types import DeviceRef
from smartpole.registry.credentials import BasicAuth

__all__ = ["BasicAuth", "DevicePort", "SessionLimits"]


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """Per-session limits, enforced by the transport and reported by ``getSessionLimits``."""

    max_payload: int = 65_536
    max_inflight: int = 100
    messages_per_s: int = 1000
    burst: int = 2000


class DevicePort(Protocol):
    """The platform as the device transports see it."""

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

    async def provision(self, request: Any) -> dict[str, Any]:
        """Answer a provision request (decoded JSON, or None when it was not JSON)."""
        ...

    async def claim(self, device: DeviceRef, data: Any) -> None:
        """A device opened its claim window ``{"secretKey", "durationMs"}``. Raises Forbidden."""
        ...

    async def firmware_chunk(self, device: DeviceRef, size: int, index: int) -> bytes | None:
        """Chunk ``index`` of ``size`` bytes of the device's firmware; None: none assigned."""
        ...

    def telemetry(self, device: DeviceRef, data: Any, now: int) -> asyncio.Future[Any]:
        """Queue a decoded telemetry payload; the future resolves at its commit (to a
        ``model.writes.Quarantine`` when some values were quarantined: the PUBACK says so).

        Raises PayloadError for a malformed payload and Overloaded when the pipeline is full.
        """
        ...

    def telemetry_of(self, items: list[tuple[DeviceRef, Any]], now: int) -> asyncio.Future[Any]:
        """Queue the telemetry of several devices (a gateway's report) as one batch."""
        ...

    async def client_attributes(self, device: DeviceRef, data: Any) -> None:
        """Store client-scope attributes (a flat JSON object)."""
        ...

    async def attributes(
        self, device: DeviceRef, client_keys: list[str] | None, shared_keys: list[str] | None
    ) -> dict[str, dict[str, Any]]:
        """``{"client": {...}, "shared": {...}}`` for an attribute request."""
        ...

    async def sub_devices(self, gateway: DeviceRef, names: list[str]) -> dict[str, DeviceRef]:
        """Those of ``names`` registered on the gateway's pole (one lookup for many)."""
        ...

    async def sub_device(self, gateway: DeviceRef, name: str, kind: str | None) -> DeviceRef:
        """The sub-device a gateway names; auto-created when the gateway may. Raises Forbidden."""
        ...

    async def rpc_reply(self, device: DeviceRef, request_id: int, response: Any) -> None:
        """A device answered a command."""
        ...

    async def rpc_delivered(self, device_id: int, request_id: int) -> None:
        """A device acknowledged (PUBACK) a command."""
        ...

    async def client_rpc(self, device: DeviceRef, method: str, params: Any) -> Any:
        """A device-initiated RPC (``getCurrentTime``, ``getSessionLimits``, …)."""
        ...

    async def rpc_ready(self, device: DeviceRef) -> None:
        """A session subscribed to commands: send those queued for the device."""
        ...

    async def connected(self, device: DeviceRef, via: DeviceRef | None = None) -> None:
        """A device's session (or its gateway's report of it) began."""
        ...

    async def disconnected(self, device: DeviceRef, via: DeviceRef | None = None) -> None:
        """A device's session ended."""
        ...
