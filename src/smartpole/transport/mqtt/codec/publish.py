"""PUBLISH and its acknowledgements: PUBACK (QoS 1), PUBREC, PUBREL, PUBCOMP (QoS 2)."""

from __future__ import annotations

from collections.abc import Callable

from smartpole.transport.mqtt.codec.packets import (
    _A,
    MalformedPacket,
    Properties,
    ProtocolError,
    Publish,
    _Ack,
)
from smartpole.transport.mqtt.codec.primitives import (
    _BYTES,
    _U16_FROM,
    _U16_PACK,
    _check_packet_id,
    _end,
    _frame,
    _packet_id,
    _str,
    _varint,
    validate_topic_name,
)
from smartpole.transport.mqtt.codec.properties import _T, _properties, _read_properties, _reason

# --- decoding -------------------------------------------------------------------------------


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


# --- encoding -------------------------------------------------------------------------------


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
