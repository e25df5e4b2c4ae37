"""MQTT 3.1.1 (protocol level 4) and 5.0 (level 5) packets: bytes in, dataclasses out, and back.

Pure functions, no I/O. ``Reader`` splits a byte stream into ``(type, flags, body)`` triples,
``decode`` turns one into a packet dataclass and ``encode`` turns a packet into wire bytes.
Decoding is strict: every violation of the specification raises one of these, never another
exception type::

    MqttError                  base; ``reason_code`` is the MQTT 5 reason code to answer with
    ├── MalformedPacket        0x81  the bytes cannot be parsed as the specification says
    ├── ProtocolError          0x82  parsed, but breaks a rule (property twice, bad filter, ...)
    ├── PacketTooLarge         0x95  beyond the reader's ``max_packet_size``
    └── UnsupportedProtocol    0x84  CONNECT for a protocol other than MQTT 3.1.1 or 5.0

Encoding a v3.1.1 packet silently leaves out what 3.1.1 cannot carry (properties, reason codes
of acknowledgements), so a v5 message can be forwarded to a v3.1.1 client as it is.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias, TypeVar

from smartpole.transport.mqtt.reasons import Reason

__all__ = [
    "Auth",
    "ConnAck",
    "Connect",
    "Disconnect",
    "MalformedPacket",
    "MqttError",
    "Packet",
    "PacketTooLarge",
    "PacketType",
    "PingReq",
    "PingResp",
    "Properties",
    "ProtocolError",
    "PubAck",
    "PubComp",
    "PubRec",
    "PubRel",
    "Publish",
    "Reader",
    "SubAck",
    "Subscribe",
    "UnsubAck",
    "Unsubscribe",
    "UnsupportedProtocol",
    "Will",
    "decode",
    "encode",
    "validate_topic_filter",
    "validate_topic_name",
]

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

# --- properties -----------------------------------------------------------------------------

_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
_WILL: Final = 0  # pseudo packet type: the will properties inside CONNECT
_T = PacketType
_ACKS: Final = (_T.PUBACK, _T.PUBREC, _T.PUBREL, _T.PUBCOMP)
_REASON_STRING_IN: Final = (
    _T.CONNACK, *_ACKS, _T.SUBACK, _T.UNSUBACK, _T.DISCONNECT, _T.AUTH
)  # fmt: skip
_MESSAGE: Final = (_T.PUBLISH, _WILL)

_PROPERTY_SPEC: Final[tuple[tuple[int, str, int, tuple[int, ...]], ...]] = (
    (0x01, "payload_format_indicator", _BYTE, _MESSAGE),
    (0x02, "message_expiry_interval", _U32, _MESSAGE),
    (0x03, "content_type", _STR, _MESSAGE),
    (0x08, "response_topic", _STR, _MESSAGE),
    (0x09, "correlation_data", _BIN, _MESSAGE),
    (0x0B, "subscription_identifier", _VARINT, (_T.PUBLISH, _T.SUBSCRIBE)),
    (0x11, "session_expiry_interval", _U32, (_T.CONNECT, _T.CONNACK, _T.DISCONNECT)),
    (0x12, "assigned_client_identifier", _STR, (_T.CONNACK,)),
    (0x13, "server_keep_alive", _U16, (_T.CONNACK,)),
    (0x15, "authentication_method", _STR, (_T.CONNECT, _T.CONNACK, _T.AUTH)),
    (0x16, "authentication_data", _BIN, (_T.CONNECT, _T.CONNACK, _T.AUTH)),
    (0x17, "request_problem_information", _BYTE, (_T.CONNECT,)),
    (0x18, "will_delay_interval", _U32, (_WILL,)),
    (0x19, "request_response_information", _BYTE, (_T.CONNECT,)),
    (0x1A, "response_information", _STR, (_T.CONNACK,)),
    (0x1C, "server_reference", _STR, (_T.CONNACK, _T.DISCONNECT)),
    (0x1F, "reason_string", _STR, _REASON_STRING_IN),
    (0x21, "receive_maximum", _U16, (_T.CONNECT, _T.CONNACK)),
    (0x22, "topic_alias_maximum", _U16, (_T.CONNECT, _T.CONNACK)),
    (0x23, "topic_alias", _U16, (_T.PUBLISH,)),
    (0x24, "maximum_qos", _BYTE, (_T.CONNACK,)),
    (0x25, "retain_available", _BYTE, (_T.CONNACK,)),
    (0x26, "user_property", _PAIR, (_WILL, *_T)),
    (0x27, "maximum_packet_size", _U32, (_T.CONNECT, _T.CONNACK)),
    (0x28, "wildcard_subscription_available", _BYTE, (_T.CONNACK,)),
    (0x29, "subscription_identifier_available", _BYTE, (_T.CONNACK,)),
    (0x2A, "shared_subscription_available", _BYTE, (_T.CONNACK,)),
)
_BY_ID: Final = {pid: (name, kind) for pid, name, kind, _ in _PROPERTY_SPEC}
_BY_NAME: Final = {name: (pid, kind) for pid, name, kind, _ in _PROPERTY_SPEC}
_ALLOWED: Final = {
    packet: frozenset(name for _, name, _, where in _PROPERTY_SPEC if packet in where)
    for packet in (_WILL, *_T)
}
_REPEATABLE: Final = frozenset({"user_property", "subscription_identifier"})
# Values the specification calls a Protocol Error.
_ZERO_OR_ONE: Final = frozenset(n for _, n, kind, _ in _PROPERTY_SPEC if kind == _BYTE)
_NON_ZERO: Final = frozenset(
    {"receive_maximum", "maximum_packet_size", "topic_alias", "subscription_identifier"}
)

# --- reason codes allowed per packet type (5.0) and return codes (3.1.1) --------------------

_PUBACK_CODES: Final = frozenset({0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99})
_REASON_CODES: Final[dict[int, frozenset[int]]] = {
    _T.CONNACK: frozenset({
        0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90,
        0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
    }),
    _T.PUBACK: _PUBACK_CODES,
    _T.PUBREC: _PUBACK_CODES,
    _T.PUBREL: frozenset({0x00, 0x92}),
    _T.PUBCOMP: frozenset({0x00, 0x92}),
    _T.SUBACK: frozenset({0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2}),
    _T.UNSUBACK: frozenset({0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91}),
    _T.DISCONNECT: frozenset({
        0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93,
        0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
    }),
    _T.AUTH: frozenset({0x00, 0x18, 0x19}),
}  # fmt: skip
_CONNACK_V4_CODES: Final = frozenset(range(6))
_SUBACK_V4_CODES: Final = frozenset({0x00, 0x01, 0x02, 0x80})

# --- primitives -----------------------------------------------------------------------------

_U16_FROM: Final = struct.Struct("!H").unpack_from
_U32_FROM: Final = struct.Struct("!I").unpack_from
_U16_PACK: Final = struct.Struct("!H").pack
_U32_PACK: Final = struct.Struct("!I").pack
_BYTES: Final = [bytes((i,)) for i in range(256)]


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A variable byte integer at ``pos`` inside a packet body: (value, next position)."""
    value = 0
    for shift in (0, 7, 14, 21):
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and shift:
                raise MalformedPacket("variable byte integer not in its shortest form")
            return value, pos
    raise MalformedPacket("variable byte integer longer than 4 bytes")


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _BYTES[value]
    if value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    if value > MAX_REMAINING_LENGTH:
        raise PacketTooLarge(f"{value} does not fit a variable byte integer")
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_str(buf: bytes, pos: int) -> tuple[str, int]:
    (size,) = _U16_FROM(buf, pos)
    pos += 2
    end = pos + size
    if end > len(buf):
        raise MalformedPacket("string runs past the end of the packet")
    text = buf[pos:end].decode()
    if "\x00" in text:
        raise MalformedPacket("string contains U+0000")
    return text, end


def _read_bin(buf: bytes, pos: int) -> tuple[bytes, int]:
    (size,) = _U16_FROM(buf, pos)
    pos += 2
    end = pos + size
    if end > len(buf):
        raise MalformedPacket("binary data runs past the end of the packet")
    return buf[pos:end], end


def _str(text: str) -> bytes:
    if "\x00" in text:
        raise MalformedPacket("string contains U+0000")
    data = text.encode()
    if len(data) > 0xFFFF:
        raise MalformedPacket("string longer than 65535 bytes")
    return _U16_PACK(len(data)) + data


def _bin(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise MalformedPacket("binary data longer than 65535 bytes")
    return _U16_PACK(len(data)) + data


def _check_value(name: str, value: int) -> None:
    if name in _ZERO_OR_ONE and value > 1:
        raise ProtocolError(f"property {name} must be 0 or 1")
    if name in _NON_ZERO and value == 0:
        raise ProtocolError(f"property {name} must not be 0")


def _read_properties(buf: bytes, pos: int, packet: int) -> tuple[Properties, int]:
    """The property block at ``pos``: (properties, position after the block)."""
    size, pos = _read_varint(buf, pos)
    if size == 0:
        return {}, pos
    end = pos + size
    if end > len(buf):
        raise MalformedPacket("properties run past the end of the packet")
    data = buf[pos:end]  # bounded, so a value that overruns the block fails to parse
    allowed = _ALLOWED[packet]
    props: Properties = {}
    i = 0
    while i < size:
        ident = data[i]
        entry = _BY_ID.get(ident)
        if entry is None:
            raise MalformedPacket(f"unknown property 0x{ident:02x}")
        name, kind = entry
        if name not in allowed:
            raise ProtocolError(f"property {name} not allowed in {_kind_name(packet)}")
        value: Any
        if kind == _BYTE:
            value = data[i + 1]
            i += 2
        elif kind == _U16:
            (value,) = _U16_FROM(data, i + 1)
            i += 3
        elif kind == _U32:
            (value,) = _U32_FROM(data, i + 1)
            i += 5
        elif kind == _VARINT:
            value, i = _read_varint(data, i + 1)
        elif kind == _STR:
            value, i = _read_str(data, i + 1)
        elif kind == _BIN:
            value, i = _read_bin(data, i + 1)
        else:
            key, i = _read_str(data, i + 1)
            text, i = _read_str(data, i)
            value = (key, text)
        if kind <= _VARINT:
            _check_value(name, value)
        if name in _REPEATABLE:
            props.setdefault(name, []).append(value)
        elif name in props:
            raise ProtocolError(f"property {name} given twice")
        else:
            props[name] = value
    return props, end


_PROPERTY_VALUE: Final[dict[int, Callable[[Any], bytes]]] = {
    _BYTE: lambda v: bytes((v,)),
    _U16: _U16_PACK,
    _U32: _U32_PACK,
    _VARINT: _varint,
    _STR: _str,
    _BIN: _bin,
    _PAIR: lambda v: _str(v[0]) + _str(v[1]),
}


def _properties(props: Properties, packet: int) -> bytes:
    """The property block of ``props`` including its length."""
    if not props:
        return b"\x00"
    allowed = _ALLOWED[packet]
    parts = []
    for name, value in props.items():
        if name not in allowed:
            raise ProtocolError(f"property {name} not allowed in {_kind_name(packet)}")
        ident, kind = _BY_NAME[name]
        values: Iterable[Any] = value if name in _REPEATABLE else (value,)
        for item in values:
            if kind <= _VARINT:
                _check_value(name, item)
            parts.append(_BYTES[ident] + _PROPERTY_VALUE[kind](item))
    data = b"".join(parts)
    return _varint(len(data)) + data


def _kind_name(packet: int) -> str:
    return "will" if packet == _WILL else PacketType(packet).name


# --- topics ---------------------------------------------------------------------------------


def validate_topic_name(topic: str) -> None:
    """Check a PUBLISH or will topic: not empty, no wildcards, no U+0000."""
    if not topic:
        raise ProtocolError("empty topic name")
    if "\x00" in topic:
        raise MalformedPacket("topic contains U+0000")
    if "+" in topic or "#" in topic:
        raise ProtocolError(f"wildcard in topic name {topic!r}")


def validate_topic_filter(topic: str) -> None:
    """Check a subscription filter: '#' only as the whole last level, '+' only a whole level."""
    if not topic:
        raise ProtocolError("empty topic filter")
    if "\x00" in topic:
        raise MalformedPacket("topic filter contains U+0000")
    if "+" not in topic and "#" not in topic:
        return
    levels = topic.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if ("#" in level and (level != "#" or index != last)) or ("+" in level and level != "+"):
            raise ProtocolError(f"invalid topic filter {topic!r}")


# --- decoding -------------------------------------------------------------------------------


def _packet_id(buf: bytes, pos: int) -> int:
    packet_id: int = _U16_FROM(buf, pos)[0]
    if not packet_id:
        raise MalformedPacket("packet identifier 0")
    return packet_id


def _end(buf: bytes, pos: int) -> None:
    if pos != len(buf):
        raise MalformedPacket("trailing bytes after the packet")


def _reason(packet: int, code: int) -> int:
    if code not in _REASON_CODES[packet]:
        raise ProtocolError(f"reason code 0x{code:02x} not allowed in {_kind_name(packet)}")
    return code


def _decode_connect(flags: int, body: bytes, version: int) -> Connect:
    (size,) = _U16_FROM(body, 0)
    pos = 2 + size
    name = body[2:pos]
    level = body[pos]
    if name != b"MQTT" or level not in (4, 5):
        raise UnsupportedProtocol(f"protocol {name!r} level {level}", level)
    connect_flags = body[pos + 1]
    (keep_alive,) = _U16_FROM(body, pos + 2)
    pos += 4
    if connect_flags & 0x01:
        raise MalformedPacket("reserved connect flag set")
    has_will = connect_flags & 0x04
    will_qos = (connect_flags >> 3) & 3
    will_retain = connect_flags & 0x20
    has_password = connect_flags & 0x40
    has_username = connect_flags & 0x80
    if will_qos == 3:
        raise MalformedPacket("will QoS 3")
    if not has_will and (will_qos or will_retain):
        raise MalformedPacket("will QoS or retain without a will")
    if level == 4 and has_password and not has_username:
        raise MalformedPacket("password without user name")
    props: Properties = {}
    if level == 5:
        props, pos = _read_properties(body, pos, _T.CONNECT)
        if "authentication_data" in props and "authentication_method" not in props:
            raise ProtocolError("authentication data without authentication method")
    client_id, pos = _read_str(body, pos)
    will = None
    if has_will:
        will_props: Properties = {}
        if level == 5:
            will_props, pos = _read_properties(body, pos, _WILL)
        topic, pos = _read_str(body, pos)
        validate_topic_name(topic)
        payload, pos = _read_bin(body, pos)
        will = Will(topic, payload, will_qos, bool(will_retain), will_props)
    username = password = None
    if has_username:
        username, pos = _read_str(body, pos)
    if has_password:
        password, pos = _read_bin(body, pos)
    _end(body, pos)
    return Connect(
        level, client_id, bool(connect_flags & 0x02), keep_alive, username, password, will, props
    )


def _decode_connack(flags: int, body: bytes, version: int) -> ConnAck:
    ack_flags, code = body[0], body[1]
    if ack_flags & 0xFE:
        raise MalformedPacket("reserved CONNACK flags set")
    props: Properties = {}
    pos = 2
    if version == 5:
        props, pos = _read_properties(body, pos, _T.CONNACK)
        _reason(_T.CONNACK, code)
    elif code not in _CONNACK_V4_CODES:
        raise ProtocolError(f"CONNACK return code {code}")
    _end(body, pos)
    if ack_flags and code:
        raise ProtocolError("session present with a failure code")
    return ConnAck(code, bool(ack_flags), props)


def _decode_publish(flags: int, body: bytes, version: int) -> Publish:
    qos = (flags >> 1) & 3
    if qos == 3:
        raise MalformedPacket("PUBLISH with QoS 3")
    if flags & 0x08 and not qos:
        raise MalformedPacket("PUBLISH with DUP and QoS 0")
    (size,) = _U16_FROM(body, 0)
    pos = 2 + size
    if pos > len(body):
        raise MalformedPacket("topic runs past the end of the packet")
    topic = body[2:pos].decode()
    packet_id = None
    if qos:
        packet_id = _packet_id(body, pos)
        pos += 2
    props: Properties = {}
    if version == 5:
        if body[pos]:
            props, pos = _read_properties(body, pos, _T.PUBLISH)
        else:
            pos += 1
    if not topic or "\x00" in topic or "+" in topic or "#" in topic:
        if topic or "topic_alias" not in props:
            validate_topic_name(topic)
    return Publish(topic, body[pos:], qos, bool(flags & 0x01), bool(flags & 0x08), packet_id, props)


def _ack_decoder(cls: type[_A], packet: int) -> Callable[[int, bytes, int], _A]:
    def decode_ack(flags: int, body: bytes, version: int) -> _A:
        packet_id = _packet_id(body, 0)
        size = len(body)
        if version != 5:
            _end(body, 2)
            return cls(packet_id)
        code = body[2] if size > 2 else 0
        props: Properties = {}
        if size > 3:
            props, pos = _read_properties(body, 3, packet)
            _end(body, pos)
        return cls(packet_id, _reason(packet, code), props)

    return decode_ack


def _decode_subscribe(flags: int, body: bytes, version: int) -> Subscribe:
    packet_id = _packet_id(body, 0)
    pos = 2
    props: Properties = {}
    if version == 5:
        props, pos = _read_properties(body, pos, _T.SUBSCRIBE)
        if len(props.get("subscription_identifier", ())) > 1:
            raise ProtocolError("more than one subscription identifier")
    reserved = 0xC0 if version == 5 else 0xFC
    subscriptions = []
    size = len(body)
    while pos < size:
        topic, pos = _read_str(body, pos)
        options = body[pos]
        pos += 1
        if options & reserved:
            raise MalformedPacket("reserved subscription option bits set")
        if options & 3 == 3:
            raise (ProtocolError if version == 5 else MalformedPacket)("subscription QoS 3")
        if options & 0x30 == 0x30:
            raise ProtocolError("retain handling 3")
        validate_topic_filter(topic)
        subscriptions.append((topic, options))
    if not subscriptions:
        raise ProtocolError("SUBSCRIBE without a topic filter")
    return Subscribe(packet_id, subscriptions, props)


def _decode_suback(flags: int, body: bytes, version: int) -> SubAck:
    packet_id = _packet_id(body, 0)
    pos = 2
    props: Properties = {}
    allowed = _SUBACK_V4_CODES
    if version == 5:
        props, pos = _read_properties(body, pos, _T.SUBACK)
        allowed = _REASON_CODES[_T.SUBACK]
    codes = list(body[pos:])
    if not codes:
        raise ProtocolError("SUBACK without reason codes")
    if not allowed.issuperset(codes):
        raise ProtocolError("SUBACK reason code not allowed")
    return SubAck(packet_id, codes, props)


def _decode_unsubscribe(flags: int, body: bytes, version: int) -> Unsubscribe:
    packet_id = _packet_id(body, 0)
    pos = 2
    props: Properties = {}
    if version == 5:
        props, pos = _read_properties(body, pos, _T.UNSUBSCRIBE)
    topics = []
    size = len(body)
    while pos < size:
        topic, pos = _read_str(body, pos)
        validate_topic_filter(topic)
        topics.append(topic)
    if not topics:
        raise ProtocolError("UNSUBSCRIBE without a topic filter")
    return Unsubscribe(packet_id, topics, props)


def _decode_unsuback(flags: int, body: bytes, version: int) -> UnsubAck:
    packet_id = _packet_id(body, 0)
    if version != 5:
        _end(body, 2)
        return UnsubAck(packet_id)
    props, pos = _read_properties(body, 2, _T.UNSUBACK)
    codes = list(body[pos:])
    if not codes:
        raise ProtocolError("UNSUBACK without reason codes")
    if not _REASON_CODES[_T.UNSUBACK].issuperset(codes):
        raise ProtocolError("UNSUBACK reason code not allowed")
    return UnsubAck(packet_id, codes, props)


def _decode_pingreq(flags: int, body: bytes, version: int) -> PingReq:
    _end(body, 0)
    return PingReq()


def _decode_pingresp(flags: int, body: bytes, version: int) -> PingResp:
    _end(body, 0)
    return PingResp()


def _decode_disconnect(flags: int, body: bytes, version: int) -> Disconnect:
    if version != 5 or not body:
        _end(body, 0)
        return Disconnect()
    props: Properties = {}
    if len(body) > 1:
        props, pos = _read_properties(body, 1, _T.DISCONNECT)
        _end(body, pos)
    return Disconnect(_reason(_T.DISCONNECT, body[0]), props)


def _decode_auth(flags: int, body: bytes, version: int) -> Auth:
    if version != 5:
        raise MalformedPacket("AUTH is reserved in MQTT 3.1.1")
    if not body:
        return Auth()
    props, pos = _read_properties(body, 1, _T.AUTH)
    _end(body, pos)
    if "authentication_method" not in props:
        raise ProtocolError("AUTH without authentication method")
    return Auth(_reason(_T.AUTH, body[0]), props)


_DECODERS: Final[dict[int, Callable[[int, bytes, int], Packet]]] = {
    _T.CONNECT: _decode_connect,
    _T.CONNACK: _decode_connack,
    _T.PUBLISH: _decode_publish,
    _T.PUBACK: _ack_decoder(PubAck, _T.PUBACK),
    _T.PUBREC: _ack_decoder(PubRec, _T.PUBREC),
    _T.PUBREL: _ack_decoder(PubRel, _T.PUBREL),
    _T.PUBCOMP: _ack_decoder(PubComp, _T.PUBCOMP),
    _T.SUBSCRIBE: _decode_subscribe,
    _T.SUBACK: _decode_suback,
    _T.UNSUBSCRIBE: _decode_unsubscribe,
    _T.UNSUBACK: _decode_unsuback,
    _T.PINGREQ: _decode_pingreq,
    _T.PINGRESP: _decode_pingresp,
    _T.DISCONNECT: _decode_disconnect,
    _T.AUTH: _decode_auth,
}
# The flags nibble each type must carry; PUBLISH (-1) carries DUP, QoS and RETAIN.
_FLAGS: Final = (-2, 0, 0, -1, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0)


def decode(packet_type: int, flags: int, body: bytes, version: int) -> Packet:
    """Decode one packet from ``Reader.feed`` for protocol ``version`` (4 or 5).

    CONNECT ignores ``version`` and reads its own protocol level (see ``Connect.protocol_level``).
    Raises ``MqttError`` subclasses only.
    """
    if version not in (4, 5):
        raise ValueError(f"MQTT version must be 4 or 5, not {version}")
    if not 0 < packet_type < 16:
        raise MalformedPacket(f"reserved packet type {packet_type}")
    expected = _FLAGS[packet_type]
    if expected >= 0 and flags != expected:
        raise MalformedPacket(f"reserved flags {flags:#06b} in {PacketType(packet_type).name}")
    try:
        return _DECODERS[packet_type](flags, body, version)
    except (IndexError, struct.error, ValueError) as err:  # ValueError covers UnicodeDecodeError
        raise MalformedPacket(f"{PacketType(packet_type).name}: {err}") from err


# --- encoding -------------------------------------------------------------------------------


def _frame(first: int, body: bytes) -> bytes:
    return _BYTES[first] + _varint(len(body)) + body


def _check_packet_id(packet_id: int | None) -> int:
    if packet_id is None or not 0 < packet_id <= 0xFFFF:
        raise ProtocolError(f"packet identifier {packet_id} not in 1..65535")
    return packet_id


def _encode_connect(p: Connect, version: int) -> bytes:
    level = p.protocol_level
    if level not in (4, 5):
        raise UnsupportedProtocol(f"protocol level {level}", level)
    flags = 0x02 if p.clean_start else 0
    payload = [_str(p.client_id)]
    will = p.will
    if will is not None:
        if will.qos not in (0, 1, 2):
            raise ProtocolError(f"will QoS {will.qos}")
        validate_topic_name(will.topic)
        flags |= 0x04 | will.qos << 3 | (0x20 if will.retain else 0)
        if level == 5:
            payload.append(_properties(will.properties, _WILL))
        payload += (_str(will.topic), _bin(will.payload))
    if p.username is not None:
        flags |= 0x80
        payload.append(_str(p.username))
    if p.password is not None:
        if level == 4 and p.username is None:
            raise ProtocolError("MQTT 3.1.1 forbids a password without a user name")
        flags |= 0x40
        payload.append(_bin(p.password))
    head = b"\x00\x04MQTT" + bytes((level, flags)) + _U16_PACK(p.keep_alive)
    if level == 5:
        head += _properties(p.properties, _T.CONNECT)
    return _frame(0x10, head + b"".join(payload))


def _encode_connack(p: ConnAck, version: int) -> bytes:
    code = p.reason_code
    if version == 5:
        _reason(_T.CONNACK, code)
    elif code not in _CONNACK_V4_CODES:
        raise ProtocolError(f"CONNACK return code {code} does not exist in MQTT 3.1.1")
    if p.session_present and code:
        raise ProtocolError("session present with a failure code")
    body = bytes((1 if p.session_present else 0, code))
    if version == 5:
        body += _properties(p.properties, _T.CONNACK)
    return _frame(0x20, body)


def _encode_publish(p: Publish, version: int) -> bytes:
    qos = p.qos
    if qos not in (0, 1, 2):
        raise ProtocolError(f"PUBLISH with QoS {qos}")
    if p.dup and not qos:
        raise ProtocolError("PUBLISH with DUP and QoS 0")
    topic = p.topic
    props = p.properties
    if not topic or "\x00" in topic or "+" in topic or "#" in topic:
        if topic or version != 5 or "topic_alias" not in props:
            validate_topic_name(topic)
    head = _str(topic)
    if qos:
        head += _U16_PACK(_check_packet_id(p.packet_id))
    if version == 5:
        head += _properties(props, _T.PUBLISH) if props else b"\x00"
    payload = p.payload
    first = 0x30 | qos << 1 | (0x08 if p.dup else 0) | (0x01 if p.retain else 0)
    return b"".join((_BYTES[first], _varint(len(head) + len(payload)), head, payload))


def _ack_encoder(first: int, packet: int) -> Callable[[_Ack, int], bytes]:
    def encode_ack(p: _Ack, version: int) -> bytes:
        body = _U16_PACK(_check_packet_id(p.packet_id))
        if version == 5 and (p.reason_code or p.properties):
            body += _BYTES[_reason(packet, p.reason_code)]
            if p.properties:
                body += _properties(p.properties, packet)
        return _frame(first, body)

    return encode_ack


def _encode_subscribe(p: Subscribe, version: int) -> bytes:
    if not p.subscriptions:
        raise ProtocolError("SUBSCRIBE without a topic filter")
    reserved = 0xC0 if version == 5 else 0xFC
    parts = [_U16_PACK(_check_packet_id(p.packet_id))]
    if version == 5:
        parts.append(_properties(p.properties, _T.SUBSCRIBE))
    for topic, options in p.subscriptions:
        validate_topic_filter(topic)
        if options & reserved or options & 3 == 3 or options & 0x30 == 0x30:
            raise ProtocolError(f"subscription options {options:#04x}")
        parts += (_str(topic), bytes((options,)))
    return _frame(0x82, b"".join(parts))


def _encode_suback(p: SubAck, version: int) -> bytes:
    codes = p.reason_codes
    if not codes:
        raise ProtocolError("SUBACK without reason codes")
    body = _U16_PACK(_check_packet_id(p.packet_id))
    if version == 5:
        if not _REASON_CODES[_T.SUBACK].issuperset(codes):
            raise ProtocolError("SUBACK reason code not allowed")
        body += _properties(p.properties, _T.SUBACK)
    else:
        # 3.1.1 knows one failure code; every v5 failure (>= 0x80) becomes it
        codes = [0x80 if code >= 0x80 else code for code in codes]
        if not _SUBACK_V4_CODES.issuperset(codes):
            raise ProtocolError("SUBACK return code not allowed in MQTT 3.1.1")
    return _frame(0x90, body + bytes(codes))


def _encode_unsubscribe(p: Unsubscribe, version: int) -> bytes:
    if not p.topics:
        raise ProtocolError("UNSUBSCRIBE without a topic filter")
    parts = [_U16_PACK(_check_packet_id(p.packet_id))]
    if version == 5:
        parts.append(_properties(p.properties, _T.UNSUBSCRIBE))
    for topic in p.topics:
        validate_topic_filter(topic)
        parts.append(_str(topic))
    return _frame(0xA2, b"".join(parts))


def _encode_unsuback(p: UnsubAck, version: int) -> bytes:
    body = _U16_PACK(_check_packet_id(p.packet_id))
    if version == 5:
        codes = p.reason_codes
        if not codes:
            raise ProtocolError("UNSUBACK without reason codes")
        if not _REASON_CODES[_T.UNSUBACK].issuperset(codes):
            raise ProtocolError("UNSUBACK reason code not allowed")
        body += _properties(p.properties, _T.UNSUBACK) + bytes(codes)
    return _frame(0xB0, body)


def _encode_pingreq(p: PingReq, version: int) -> bytes:
    return b"\xc0\x00"


def _encode_pingresp(p: PingResp, version: int) -> bytes:
    return b"\xd0\x00"


def _encode_disconnect(p: Disconnect, version: int) -> bytes:
    if version != 5 or not (p.reason_code or p.properties):
        return b"\xe0\x00"
    body = _BYTES[_reason(_T.DISCONNECT, p.reason_code)]
    if p.properties:
        body += _properties(p.properties, _T.DISCONNECT)
    return _frame(0xE0, body)


def _encode_auth(p: Auth, version: int) -> bytes:
    if version != 5:
        raise ProtocolError("AUTH does not exist in MQTT 3.1.1")
    if not (p.reason_code or p.properties):
        return b"\xf0\x00"
    if "authentication_method" not in p.properties:
        raise ProtocolError("AUTH without authentication method")
    body = _BYTES[_reason(_T.AUTH, p.reason_code)] + _properties(p.properties, _T.AUTH)
    return _frame(0xF0, body)


_ENCODERS: Final[dict[type, Callable[[Any, int], bytes]]] = {
    Connect: _encode_connect,
    ConnAck: _encode_connack,
    Publish: _encode_publish,
    PubAck: _ack_encoder(0x40, _T.PUBACK),
    PubRec: _ack_encoder(0x50, _T.PUBREC),
    PubRel: _ack_encoder(0x62, _T.PUBREL),
    PubComp: _ack_encoder(0x70, _T.PUBCOMP),
    Subscribe: _encode_subscribe,
    SubAck: _encode_suback,
    Unsubscribe: _encode_unsubscribe,
    UnsubAck: _encode_unsuback,
    PingReq: _encode_pingreq,
    PingResp: _encode_pingresp,
    Disconnect: _encode_disconnect,
    Auth: _encode_auth,
}


def encode(packet: Packet, version: int) -> bytes:
    """The wire bytes of ``packet`` for protocol ``version`` (4 or 5).

    CONNECT is encoded at its own ``protocol_level``. A packet that cannot be sent validly
    raises ``ProtocolError`` (or ``MalformedPacket`` for a bad string, ``PacketTooLarge``).
    """
    if version not in (4, 5):
        raise ValueError(f"MQTT version must be 4 or 5, not {version}")
    return _ENCODERS[type(packet)](packet, version)


# --- stream ---------------------------------------------------------------------------------


class Reader:
    """Splits a byte stream into packets."""

    __slots__ = ("_buffer", "_max", "_need")

    def __init__(self, max_packet_size: int = MAX_REMAINING_LENGTH) -> None:
        self._max = max_packet_size
        self._buffer = bytearray()
        self._need = 0  # buffered bytes needed before parsing is worth trying again

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        """(packet type, flags nibble, body) of every packet completed by ``data``.

        Raises ``MalformedPacket`` for a remaining length over 4 bytes and ``PacketTooLarge``
        as soon as a fixed header announces a packet over ``max_packet_size``.
        """
        if self._buffer:
            self._buffer += data
            if len(self._buffer) < self._need:
                return []
            buf = bytes(self._buffer)
        else:
            buf = bytes(data)
        packets = []
        pos = 0
        end = len(buf)
        need = 2
        while end - pos >= 2:
            length = buf[pos + 1]
            start = pos + 2
            if length >= 0x80:
                length, start = _header_length(buf, pos + 1, end)
                if start < 0:
                    need = end - pos + 1
                    break
            stop = start + length
            if stop - pos > self._max:
                raise PacketTooLarge(f"packet of {stop - pos} bytes over {self._max}")
            if stop > end:
                need = stop - pos
                break
            first = buf[pos]
            packets.append((first >> 4, first & 0x0F, buf[start:stop]))
            pos = stop
        self._need = need
        self._buffer = bytearray(memoryview(buf)[pos:]) if pos < end else bytearray()
        return packets


def _header_length(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """The remaining length at ``pos``: (value, body start), or (0, -1) while incomplete."""
    value = 0
    for shift in (0, 7, 14, 21):
        if pos >= end:
            return 0, -1
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and shift:
                raise MalformedPacket("remaining length not in its shortest form")
            return value, pos
    raise MalformedPacket("remaining length longer than 4 bytes")
