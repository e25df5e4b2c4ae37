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

Callers import this package (``from smartpole.transport.mqtt import codec``; ``codec.X``); its
modules, one per packet family, are its own (their ``_names`` are shared only among them)::

    packets      the errors above, ``PacketType`` and one dataclass per control packet
    primitives   integers, variable byte integers, strings, binary data, topics, packet ids
    properties   MQTT 5 properties and the reason codes each packet type allows
    connection   CONNECT, CONNACK, AUTH, PINGREQ, PINGRESP, DISCONNECT
    publish      PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP
    subscribe    SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK
    wire         ``decode`` and ``encode``: one packet by its type
    stream       ``Reader``: a byte stream split into packets
"""

from __future__ import annotations

from smartpole.transport.mqtt.codec.packets import (
    MAX_REMAINING_LENGTH,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    MalformedPacket,
    MqttError,
    Packet,
    PacketTooLarge,
    PacketType,
    PingReq,
    PingResp,
    Properties,
    ProtocolError,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    UnsupportedProtocol,
    Will,
)
from smartpole.transport.mqtt.codec.primitives import validate_topic_filter, validate_topic_name
from smartpole.transport.mqtt.codec.stream import Reader
from smartpole.transport.mqtt.codec.wire import decode, encode

__all__ = [
    "MAX_REMAINING_LENGTH",
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
