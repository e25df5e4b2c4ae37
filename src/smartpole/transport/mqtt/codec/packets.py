"""The packets: error types, packet types and one dataclass per control packet."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias, TypeVar

from smartpole.transport.mqtt.reasons import Reason

MAX_REMAINING_LENGTH: Final = 268_435_455


class MqttError(Exception):
    """Base of all codec errors; ``reason_code`` is the MQTT 5 reason code for the answer."""

    reason_code: int = Reason.UNSPECIFIED


class MalformedPacket(MqttError):
    """The bytes do not parse as the specification says (reason code 0x81)."""

    reason_code = Reason.MALFORMED_PACKET


class ProtocolError(MqttError):
    """The packet parses but breaks a protocol rule (reason code 0x82)."""

    reason_code = Reason.PROTOCOL_ERROR


class PacketTooLarge(MqttError):
    """The packet exceeds the maximum packet size (reason code 0x95)."""

    reason_code = Reason.PACKET_TOO_LARGE


class UnsupportedProtocol(MqttError):
    """CONNECT with an unknown protocol name or level (reason code 0x84).

    The server answers CONNACK 0x01 in 3.1.1 form, or 0x84 in 5.0 form; ``protocol_level`` is
    the level the client asked for.
    """

    reason_code = Reason.UNSUPPORTED_PROTOCOL_VERSION

    def __init__(self, message: str, protocol_level: int) -> None:
        super().__init__(message)
        self.protocol_level = protocol_level


class PacketType(enum.IntEnum):
    """MQTT control packet types (the high nibble of the first byte)."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15


Properties: TypeAlias = dict[str, Any]


@dataclass(slots=True)
class Will:
    """The will message of a CONNECT."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Connect:
    """CONNECT; ``protocol_level`` is 4 (3.1.1) or 5 (5.0)."""

    protocol_level: int
    client_id: str
    clean_start: bool
    keep_alive: int
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class ConnAck:
    """CONNACK; ``reason_code`` is the 3.1.1 return code or the 5.0 reason code."""

    reason_code: int = 0
    session_present: bool = False
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Publish:
    """PUBLISH; ``packet_id`` is ``None`` exactly when ``qos`` is 0."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class _Ack:
    packet_id: int
    reason_code: int = 0
    properties: Properties = field(default_factory=dict)


_A = TypeVar("_A", bound=_Ack)


@dataclass(slots=True)
class PubAck(_Ack):
    """PUBACK: QoS 1 delivered."""


@dataclass(slots=True)
class PubRec(_Ack):
    """PUBREC: QoS 2 received (step 1 of 3)."""


@dataclass(slots=True)
class PubRel(_Ack):
    """PUBREL: QoS 2 release (step 2 of 3)."""


@dataclass(slots=True)
class PubComp(_Ack):
    """PUBCOMP: QoS 2 complete (step 3 of 3)."""


@dataclass(slots=True)
class Subscribe:
    """SUBSCRIBE; each subscription is (topic filter, options byte) with QoS = options & 3."""

    packet_id: int
    subscriptions: list[tuple[str, int]]
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class SubAck:
    """SUBACK: one reason code (granted QoS or failure) per subscription."""

    packet_id: int
    reason_codes: list[int]
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Unsubscribe:
    """UNSUBSCRIBE."""

    packet_id: int
    topics: list[str]
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class UnsubAck:
    """UNSUBACK; reason codes (one per topic) exist only in 5.0."""

    packet_id: int
    reason_codes: list[int] = field(default_factory=list)
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class PingReq:
    """PINGREQ."""


@dataclass(slots=True)
class PingResp:
    """PINGRESP."""


@dataclass(slots=True)
class Disconnect:
    """DISCONNECT; reason code and properties exist only in 5.0."""

    reason_code: int = 0
    properties: Properties = field(default_factory=dict)


@dataclass(slots=True)
class Auth:
    """AUTH (5.0 only): enhanced authentication exchange."""

    reason_code: int = 0
    properties: Properties = field(default_factory=dict)


Packet: TypeAlias = (
    Connect
    | ConnAck
    | Publish
    | PubAck
    | PubRec
    | PubRel
    | PubComp
    | Subscribe
    | SubAck
    | Unsubscribe
    | UnsubAck
    | PingReq
    | PingResp
    | Disconnect
    | Auth
)
