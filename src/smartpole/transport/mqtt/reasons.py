"""MQTT reason codes by name: the one place their numbers are written.

:class:`Reason` holds MQTT 5's reason codes (§2.4) that smartpole sends or reads: CONNACK,
PUBACK, SUBACK, UNSUBACK and DISCONNECT share one number space. MQTT 3.1.1 has its own, smaller
CONNACK return codes (:class:`ConnectReturn`) and one SUBACK failure code (``Reason.FAILURE``,
the same 0x80).
"""

from __future__ import annotations

import enum

__all__ = ["Closing", "ConnectReturn", "Reason"]


class Reason(enum.IntEnum):
    """MQTT 5 reason codes (MQTT 5.0 §2.4); at 0x80 and above a refusal."""

    SUCCESS = 0x00
    DISCONNECT_WITH_WILL = 0x04  # DISCONNECT: "publish my will anyway"
    NO_SUBSCRIPTION_EXISTED = 0x11  # UNSUBACK
    UNSPECIFIED = 0x80  # also 3.1.1's SUBACK "failure"
    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    IMPLEMENTATION_SPECIFIC = 0x83
    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    CLIENT_IDENTIFIER_NOT_VALID = 0x85
    BAD_USER_NAME_OR_PASSWORD = 0x86
    NOT_AUTHORIZED = 0x87
    SERVER_BUSY = 0x89
    BAD_AUTHENTICATION_METHOD = 0x8C
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    TOPIC_FILTER_INVALID = 0x8F
    TOPIC_NAME_INVALID = 0x90
    RECEIVE_MAXIMUM_EXCEEDED = 0x93
    PACKET_TOO_LARGE = 0x95
    MESSAGE_RATE_TOO_HIGH = 0x96
    QUOTA_EXCEEDED = 0x97
    PAYLOAD_FORMAT_INVALID = 0x99
    QOS_NOT_SUPPORTED = 0x9B

    FAILURE = 0x80  # 3.1.1 SUBACK: the subscription was refused (an alias of UNSPECIFIED)


class ConnectReturn(enum.IntEnum):
    """MQTT 3.1.1 CONNACK return codes (MQTT 3.1.1 §3.2.2.3)."""

    ACCEPTED = 0x00
    UNACCEPTABLE_PROTOCOL_VERSION = 0x01
    IDENTIFIER_REJECTED = 0x02
    SERVER_UNAVAILABLE = 0x03
    BAD_USER_NAME_OR_PASSWORD = 0x04
    NOT_AUTHORIZED = 0x05


class Closing(Exception):
    """Stop handling this connection, after telling the client ``reason`` (v5)."""

    def __init__(self, reason: Reason, why: str) -> None:
        super().__init__(why)
        self.reason = reason
