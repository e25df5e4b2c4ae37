"""Primitives: integers, variable byte integers, strings, binary data, topics, packet ids."""

from __future__ import annotations

import struct
from typing import Final

from smartpole.transport.mqtt.codec.packets import (
    MAX_REMAINING_LENGTH,
    MalformedPacket,
    PacketTooLarge,
    ProtocolError,
)

_U16_FROM: Final = struct.Struct("!H").unpack_from
_U32_FROM: Final = struct.Struct("!I").unpack_from
_U16_PACK: Final = struct.Struct("!H").pack
_U32_PACK: Final = struct.Struct("!I").pack
_BYTES: Final = [bytes((i,)) for i in range(256)]


def _read_varint(
    buf: bytes, pos: int, end: int = -1, what: str = "variable byte integer"
) -> tuple[int, int]:
    """A variable byte integer at ``pos``: (value, next position). Given ``end`` (a stream's
    buffered bytes), (0, -1) while it is not all there yet."""
    value = 0
    for shift in (0, 7, 14, 21):
        if pos == end:
            return 0, -1
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and shift:
                raise MalformedPacket(f"{what} not in its shortest form")
            return value, pos
    raise MalformedPacket(f"{what} longer than 4 bytes")


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


def _read_prefixed(buf: bytes, pos: int, what: str) -> tuple[bytes, int]:
    """Two-byte length, then that many bytes (a string or binary data)."""
    (size,) = _U16_FROM(buf, pos)
    pos += 2
    end = pos + size
    if end > len(buf):
        raise MalformedPacket(f"{what} runs past the end of the packet")
    return buf[pos:end], end


def _read_str(buf: bytes, pos: int) -> tuple[str, int]:
    raw, end = _read_prefixed(buf, pos, "string")
    text = raw.decode()
    if "\x00" in text:
        raise MalformedPacket("string contains U+0000")
    return text, end


def _read_bin(buf: bytes, pos: int) -> tuple[bytes, int]:
    return _read_prefixed(buf, pos, "binary data")


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


def _packet_id(buf: bytes, pos: int) -> int:
    packet_id: int = _U16_FROM(buf, pos)[0]
    if not packet_id:
        raise MalformedPacket("packet identifier 0")
    return packet_id


def _end(buf: bytes, pos: int) -> None:
    if pos != len(buf):
        raise MalformedPacket("trailing bytes after the packet")


def _frame(first: int, body: bytes) -> bytes:
    return _BYTES[first] + _varint(len(body)) + body


def _check_packet_id(packet_id: int | None) -> int:
    if packet_id is None or not 0 < packet_id <= 0xFFFF:
        raise ProtocolError(f"packet identifier {packet_id} not in 1..65535")
    return packet_id
