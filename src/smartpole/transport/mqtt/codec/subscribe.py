"""SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK."""

from __future__ import annotations

from smartpole.transport.mqtt.codec.packets import (
    MalformedPacket,
    Properties,
    ProtocolError,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
)
from smartpole.transport.mqtt.codec.primitives import (
    _U16_PACK,
    _check_packet_id,
    _end,
    _frame,
    _packet_id,
    _read_str,
    _str,
    validate_topic_filter,
)
from smartpole.transport.mqtt.codec.properties import (
    _REASON_CODES,
    _SUBACK_V4_CODES,
    _T,
    _properties,
    _read_properties,
)

# --- decoding -------------------------------------------------------------------------------


def _head(body: bytes, version: int, packet_type: int) -> tuple[int, Properties, int]:
    """The packet identifier and (in 5.0) the properties that open all four packets, and where
    the payload starts."""
    packet_id = _packet_id(body, 0)
    if version == 5:
        props, pos = _read_properties(body, 2, packet_type)
        return packet_id, props, pos
    return packet_id, {}, 2


def _decode_subscribe(flags: int, body: bytes, version: int) -> Subscribe:
    packet_id, props, pos = _head(body, version, _T.SUBSCRIBE)
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
    packet_id, props, pos = _head(body, version, _T.SUBACK)
    allowed = _REASON_CODES[_T.SUBACK] if version == 5 else _SUBACK_V4_CODES
    codes = list(body[pos:])
    if not codes:
        raise ProtocolError("SUBACK without reason codes")
    if not allowed.issuperset(codes):
        raise ProtocolError("SUBACK reason code not allowed")
    return SubAck(packet_id, codes, props)


def _decode_unsubscribe(flags: int, body: bytes, version: int) -> Unsubscribe:
    packet_id, props, pos = _head(body, version, _T.UNSUBSCRIBE)
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


# --- encoding -------------------------------------------------------------------------------


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
