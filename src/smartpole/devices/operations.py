"""The operations of ThingsBoard's device and gateway APIs, by name rather than by topic.

A transport maps what it received to an :class:`Operation` (MQTT by the table of topics in
:mod:`smartpole.transport.topics`, HTTP by its routes) and what the device API answers, a
:class:`Reply`, back to a topic.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = ["Answer", "Ingested", "Operation", "Reply"]


class Operation(enum.Enum):
    """What a device asks of the platform (or a gateway, for its sub-devices)."""

    TELEMETRY = "telemetry"
    CLIENT_ATTRIBUTES = "client attributes"
    ATTRIBUTE_REQUEST = "attribute request"
    RPC_REPLY = "command reply"
    CLIENT_RPC = "device-initiated RPC"
    CLAIM = "claim"
    FIRMWARE_CHUNK = "firmware chunk request"
    PROVISION = "provision request"
    GATEWAY_CONNECT = "gateway connect"
    GATEWAY_DISCONNECT = "gateway disconnect"
    GATEWAY_TELEMETRY = "gateway telemetry"
    GATEWAY_ATTRIBUTES = "gateway attributes"
    GATEWAY_ATTRIBUTE_REQUEST = "gateway attribute request"
    GATEWAY_RPC_REPLY = "gateway command reply"
    GATEWAY_CLAIM = "gateway claim"

    @property
    def gateway(self) -> bool:
        """Whether it is part of the gateway API (a gateway's, for its sub-devices)."""
        return self.name.startswith("GATEWAY_")


class Reply(enum.Enum):
    """What the platform sends a device: an answer to an operation, or a command."""

    ATTRIBUTE_RESPONSE = "attribute response"
    CLIENT_RPC_RESPONSE = "device-initiated RPC response"
    FIRMWARE_CHUNK = "firmware chunk"
    FIRMWARE_ERROR = "firmware error"
    PROVISION_RESPONSE = "provision response"
    GATEWAY_ATTRIBUTE_RESPONSE = "gateway attribute response"
    COMMAND = "command"
    SHARED_ATTRIBUTES = "shared attributes"
    GATEWAY_COMMAND = "gateway command"
    GATEWAY_SHARED_ATTRIBUTES = "gateway shared attributes"


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer for the device: which reply, its body (JSON, or bytes sent as they are), and
    the request it answers (what its topic carries after the reply's prefix, if anything)."""

    reply: Reply
    body: Any
    request: str = ""


@dataclass(frozen=True, slots=True)
class Ingested:
    """A committed telemetry upload: readings stored, and values kept apart (quarantined)."""

    accepted: int
    quarantined: int
