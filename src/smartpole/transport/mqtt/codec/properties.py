"""MQTT 5 properties (which packet may carry which, their wire form) and reason codes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from smartpole.transport.mqtt.codec.packets import (
    MalformedPacket,
    PacketType,
    Properties,
    ProtocolError,
)
from smartpole.transport.mqtt.codec.primitives import (
    _BYTES,
    _U16_FROM,
    _U16_PACK,
    _U32_FROM,
    _U32_PACK,
    _bin,
    _read_bin,
    _read_str,
    _read_varint,
    _str,
    _varint,
)

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


def _reason(packet: int, code: int) -> int:
    if code not in _REASON_CODES[packet]:
        raise ProtocolError(f"reason code 0x{code:02x} not allowed in {_kind_name(packet)}")
    return code
