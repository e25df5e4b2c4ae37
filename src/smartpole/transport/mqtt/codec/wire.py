"""``decode`` and ``encode``: one packet, by its type, with the decoder or encoder of its family."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Final

import smartpole.transport.mqtt.codec.packets as _p
from smartpole.transport.mqtt.codec.connection import (
    _decode_auth,
    _decode_connack,
    _decode_connect,
    _decode_disconnect,
    _decode_pingreq,
    _decode_pingresp,
    _encode_auth,
    _encode_connack,
    _encode_connect,
    _encode_disconnect,
    _encode_pingreq,
    _encode_pingresp,
)
from smartpole.transport.mqtt.codec.properties import _T
from smartpole.transport.mqtt.codec.publish import (
    _ack_decoder,
    _ack_encoder,
    _decode_publish,
    _encode_publish,
)
from smartpole.transport.mqtt.codec.subscribe import (
    _decode_suback,
    _decode_subscribe,
    _decode_unsuback,
    _decode_unsubscribe,
    _encode_suback,
    _encode_subscribe,
    _encode_unsuback,
    _encode_unsubscribe,
)

_DECODERS: Final[dict[int, Callable[[int, bytes, int], _p.Packet]]] = {
    _T.CONNECT: _decode_connect,
    _T.CONNACK: _decode_connack,
    _T.PUBLISH: _decode_publish,
    _T.PUBACK: _ack_decoder(_p.PubAck, _T.PUBACK),
    _T.PUBREC: _ack_decoder(_p.PubRec, _T.PUBREC),
    _T.PUBREL: _ack_decoder(_p.PubRel, _T.PUBREL),
    _T.PUBCOMP: _ack_decoder(_p.PubComp, _T.PUBCOMP),
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


def decode(packet_type: int, flags: int, body: bytes, version: int) -> _p.Packet:
    """Decode one packet from ``Reader.feed`` for protocol ``version`` (4 or 5).

    CONNECT ignores ``version`` and reads its own protocol level (see ``Connect.protocol_level``).
    Raises ``MqttError`` subclasses only.
    """
    if version not in (4, 5):
        raise ValueError(f"MQTT version must be 4 or 5, not {version}")
    if not 0 < packet_type < 16:
        raise _p.MalformedPacket(f"reserved packet type {packet_type}")
    expected = _FLAGS[packet_type]
    if expected >= 0 and flags != expected:
        name = _p.PacketType(packet_type).name
        raise _p.MalformedPacket(f"reserved flags {flags:#06b} in {name}")
    try:
        return _DECODERS[packet_type](flags, body, version)
    except (IndexError, struct.error, ValueError) as err:  # ValueError covers UnicodeDecodeError
        raise _p.MalformedPacket(f"{_p.PacketType(packet_type).name}: {err}") from err


_ENCODERS: Final[dict[type, Callable[[Any, int], bytes]]] = {
    _p.Connect: _encode_connect,
    _p.ConnAck: _encode_connack,
    _p.Publish: _encode_publish,
    _p.PubAck: _ack_encoder(0x40, _T.PUBACK),
    _p.PubRec: _ack_encoder(0x50, _T.PUBREC),
    _p.PubRel: _ack_encoder(0x62, _T.PUBREL),
    _p.PubComp: _ack_encoder(0x70, _T.PUBCOMP),
    _p.Subscribe: _encode_subscribe,
    _p.SubAck: _encode_suback,
    _p.Unsubscribe: _encode_unsubscribe,
    _p.UnsubAck: _encode_unsuback,
    _p.PingReq: _encode_pingreq,
    _p.PingResp: _encode_pingresp,
    _p.Disconnect: _encode_disconnect,
    _p.Auth: _encode_auth,
}


def encode(packet: _p.Packet, version: int) -> bytes:
    """The wire bytes of ``packet`` for protocol ``version`` (4 or 5).

    CONNECT is encoded at its own ``protocol_level``. A packet that cannot be sent validly
    raises ``ProtocolError`` (or ``MalformedPacket`` for a bad string, ``PacketTooLarge``).
    """
    if version not in (4, 5):
        raise ValueError(f"MQTT version must be 4 or 5, not {version}")
    return _ENCODERS[type(packet)](packet, version)
