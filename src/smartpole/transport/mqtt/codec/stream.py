"""``Reader``: a byte stream split into (packet type, flags, body) triples."""

from __future__ import annotations

from smartpole.transport.mqtt.codec.packets import (
    MAX_REMAINING_LENGTH,
    PacketTooLarge,
)
from smartpole.transport.mqtt.codec.primitives import _read_varint


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
    return _read_varint(buf, pos, end, "remaining length")
