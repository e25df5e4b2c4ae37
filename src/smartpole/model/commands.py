"""A command to a device (ThingsBoard "server-side RPC") as a value: what was asked, and where
it is in its lifecycle (``smartpole.control`` records and follows it)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = ["Command", "CommandStatus"]


class CommandStatus(enum.StrEnum):
    """Where a command is in its lifecycle."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Command:
    """A call of ``method`` on a device and its state; times are ms since the Unix epoch.

    ``params`` and ``response`` are the JSON values sent and answered (any JSON: the device
    defines them). ``expires`` is when the command gives up in its current status.
    """

    id: int
    device_id: int
    request_id: int  # the per-device RPC id used on the wire
    method: str
    params: Any
    oneway: bool
    persistent: bool
    status: CommandStatus
    timeout: int  # ms to wait for the reply (or delivery) once sent
    created: int
    expires: int
    sent: int | None
    delivered: int | None
    completed: int | None
    response: Any
    error: str | None
    retries: int  # times it was sent again after an unconfirmed send
