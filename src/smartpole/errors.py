"""The exception tree of smartpole.

    SmartpoleError                 base; carries ``detail`` and structured ``fields``
    ├── NotFound                   an entity does not exist (or is invisible to the caller)
    ├── Conflict                   a unique value is taken (pole code, tenant name)
    │   ├── ClaimExpired           a device's claim window closed before the claim came
    │   └── InvalidTransition      a lifecycle step not allowed from the current status
    ├── Forbidden                  the caller's role or tenant may not do this
    ├── Unauthenticated            no credential, or an unknown/wrong one
    ├── Throttled                  too many failed logins; retry after ``retry_after`` seconds
    ├── InvalidInput               a value that fails validation (with ``errors``)
    │   └── PayloadError           a device payload of the wrong shape
    ├── PayloadTooLarge            a body beyond the configured limit
    ├── Overloaded                 the ingest pipeline is full; retry later
    ├── StoreUnavailable           the store cannot commit now (database down, disk full, locked)
    ├── DeviceOffline              a command's device has no live session to send it on
    └── Timeout                    a device did not answer a command in time

Domain code raises these; ``smartpole.transport.refusals`` holds the one table of each one's
MQTT 5 reason code and HTTP status, from which only ``smartpole.api`` builds problem+json and
only the MQTT transport answers PUBACKs.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ClaimExpired",
    "Conflict",
    "DeviceOffline",
    "Forbidden",
    "InvalidInput",
    "InvalidTransition",
    "NotFound",
    "Overloaded",
    "PayloadError",
    "PayloadTooLarge",
    "SmartpoleError",
    "StoreUnavailable",
    "Throttled",
    "Timeout",
    "Unauthenticated",
]


class SmartpoleError(Exception):
    """Base of every error smartpole raises on purpose."""

    title = "smartpole error"

    def __init__(self, detail: str, **fields: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fields = fields


class NotFound(SmartpoleError):
    """The entity does not exist, or the caller's tenant may not see it."""

    title = "Not found"


class Conflict(SmartpoleError):
    """A unique value is already taken."""

    title = "Conflict"


class InvalidTransition(Conflict):
    """A status change its lifecycle does not allow; ``allowed`` names the ones it does."""

    title = "Invalid transition"


class ClaimExpired(Conflict):
    """The device's claim window (``durationMs``) closed; the device must open a new one."""

    title = "Claim expired"


class Forbidden(SmartpoleError):
    """The caller is authenticated but its role or tenant does not allow this."""

    title = "Forbidden"


class Unauthenticated(SmartpoleError):
    """No credential, or a credential nobody issued."""

    title = "Unauthenticated"


class Throttled(SmartpoleError):
    """Too many failed logins for a user name or from an address: wait ``retry_after``
    seconds before the next attempt."""

    title = "Too many attempts"


class InvalidInput(SmartpoleError):
    """A value failed validation; ``errors`` lists each problem with its location."""

    title = "Invalid input"

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None, **fields: Any):
        super().__init__(detail, **fields)
        self.errors = errors or []


class PayloadError(InvalidInput):
    """A device payload whose shape is not one the device API accepts."""

    title = "Invalid payload"


class PayloadTooLarge(SmartpoleError):
    """The body is larger than the configured limit."""

    title = "Payload too large"


class Overloaded(SmartpoleError):
    """The ingest pipeline is full; the device should retry later."""

    title = "Overloaded"


class StoreUnavailable(SmartpoleError):
    """The store cannot commit now: the database is down or unreachable, the disk is full, or
    the file is locked by another process. ``reason`` says which; retry later."""

    title = "Store unavailable"


class DeviceOffline(SmartpoleError):
    """A command could not be sent: its device has no live session (and it is not persistent)."""

    title = "Device offline"


class Timeout(SmartpoleError):
    """A device did not answer a command before the command's timeout."""

    title = "Timeout"
