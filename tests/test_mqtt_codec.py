"""The MQTT 3.1.1 / 5.0 codec: known bytes, round trips, stream splitting, strictness, fuzzing."""

from __future__ import annotations

import contextlib
import itertools
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartpole.transport.mqtt.codec import (
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
    ProtocolError,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    Reader,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    UnsupportedProtocol,
    Will,
    decode,
    encode,
    validate_topic_filter,
    validate_topic_name,
)


def frame(first: int, body: bytes) -> bytes:
    """A packet with a one-byte remaining length (bodies under 128 bytes)."""
    assert len(body) < 0x80
    return bytes((first, len(body))) + body


def read_one(data: bytes, version: int) -> Packet:
    """Decode the single packet in ``data`` the way a server would."""
    packets = Reader().feed(data)
    assert len(packets) == 1
    return decode(*packets[0], version)


def mqtt_str(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


# --- known bytes ----------------------------------------------------------------------------

PAHO_CONNECT = "101500044d5154540402003c0009" + b"paho-test".hex()
PAHO_CONNECT_FULL = (
    "103600044d51545404ee003c"
    + mqtt_str("pole-1").hex()
    + mqtt_str("pole/1/status").hex()
    + mqtt_str("offline").hex()
    + mqtt_str("user").hex()
    + mqtt_str("pass").hex()
)
V5_CONNECT = (
    "101f00044d5154540502003c0f" + "1100000e10" + "210014" + "260001610001" + "62" + "0003646576"
)

VECTORS = [
    pytest.param(Connect(4, "paho-test", True, 60), 4, PAHO_CONNECT, id="connect-v4-paho"),
    pytest.param(
        Connect(4, "pole-1", True, 60, "user", b"pass", Will("pole/1/status", b"offline", 1, True)),
        4,
        PAHO_CONNECT_FULL,
        id="connect-v4-paho-will-credentials",
    ),
    pytest.param(
        Connect(
            5,
            "dev",
            True,
            60,
            properties={
                "session_expiry_interval": 3600,
                "receive_maximum": 20,
                "user_property": [("a", "b")],
            },
        ),
        5,
        V5_CONNECT,
        id="connect-v5-properties",
    ),
    pytest.param(ConnAck(0, True), 4, "20020100", id="connack-v4"),
    pytest.param(ConnAck(0x87), 5, "2003008700", id="connack-v5"),
    pytest.param(Publish("a/b", b"hi"), 4, "30070003612f626869", id="publish-qos0-v4"),
    pytest.param(Publish("a/b", b"hi"), 5, "30080003612f62006869", id="publish-qos0-v5"),
    pytest.param(
        Publish("a/b", b"hi", 1, packet_id=10),
        4,
        "32090003612f62000a6869",
        id="publish-qos1-v4",
    ),
    pytest.param(
        Publish("a/b", b"hi", 1, True, packet_id=10, properties={"message_expiry_interval": 60}),
        5,
        "330f0003612f62000a05020000003c6869",
        id="publish-qos1-retain-v5",
    ),
    pytest.param(PubAck(10), 4, "4002000a", id="puback-v4"),
    pytest.param(PubAck(10), 5, "4002000a", id="puback-v5-short"),
    pytest.param(PubAck(10, 0x10), 5, "4003000a10", id="puback-v5-reason"),
    pytest.param(
        PubAck(10, 0x10, {"reason_string": "no"}),
        5,
        "4009000a10051f00026e6f",
        id="puback-v5-properties",
    ),
    pytest.param(PubRel(10), 4, "6202000a", id="pubrel-v4"),
    pytest.param(Subscribe(1, [("a/+", 1)]), 4, "820800010003612f2b01", id="subscribe-v4"),
    pytest.param(
        Subscribe(1, [("a/+", 0x05)], {"subscription_identifier": [5]}),
        5,
        "820b0001020b050003612f2b05",
        id="subscribe-v5-no-local",
    ),
    pytest.param(SubAck(1, [1]), 4, "9003000101", id="suback-v4"),
    pytest.param(SubAck(1, [1, 0x87]), 5, "90050001000187", id="suback-v5"),
    pytest.param(Unsubscribe(2, ["a/#"]), 4, "a20700020003612f23", id="unsubscribe-v4"),
    pytest.param(UnsubAck(2), 4, "b0020002", id="unsuback-v4"),
    pytest.param(UnsubAck(2, [0x11]), 5, "b00400020011", id="unsuback-v5"),
    pytest.param(PingReq(), 4, "c000", id="pingreq"),
    pytest.param(PingResp(), 5, "d000", id="pingresp"),
    pytest.param(Disconnect(), 4, "e000", id="disconnect-v4"),
    pytest.param(Disconnect(), 5, "e000", id="disconnect-v5-short"),
    pytest.param(Disconnect(0x8E), 5, "e0018e", id="disconnect-v5-reason"),
    pytest.param(Auth(), 5, "f000", id="auth-v5-short"),
]


@pytest.mark.parametrize(("packet", "version", "wire"), VECTORS)
def test_encode_gives_the_known_bytes(packet: Packet, version: int, wire: str) -> None:
    assert encode(packet, version).hex() == wire


@pytest.mark.parametrize(("packet", "version", "wire"), VECTORS)
def test_decode_gives_the_packet_back(packet: Packet, version: int, wire: str) -> None:
    assert read_one(bytes.fromhex(wire), version) == packet


def test_v311_encoding_leaves_out_properties_and_reason_codes() -> None:
    with_props = Publish("a/b", b"hi", properties={"message_expiry_interval": 60})
    assert encode(with_props, 4) == encode(Publish("a/b", b"hi"), 4)
    assert encode(PubAck(10, 0x10, {"reason_string": "x"}), 4) == bytes.fromhex("4002000a")
    assert encode(Disconnect(0x8E), 4) == b"\xe0\x00"
    assert encode(SubAck(1, [0, 0x87]), 4) == bytes.fromhex("900400010080")


def test_errors_carry_their_reason_codes() -> None:
    assert MalformedPacket("x").reason_code == 0x81
    assert ProtocolError("x").reason_code == 0x82
    assert PacketTooLarge("x").reason_code == 0x95
    assert UnsupportedProtocol("x", 3).reason_code == 0x84


def test_unsupported_protocol_reports_the_level_asked_for() -> None:
    body = mqtt_str("MQIsdp") + b"\x03\x02\x00\x3c" + mqtt_str("a")
    with pytest.raises(UnsupportedProtocol) as info:
        read_one(frame(0x10, body), 4)
    assert info.value.protocol_level == 3


# --- hypothesis strategies ------------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=10)
LEVEL = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00+#/"), max_size=5)
TOPIC_NAME = st.lists(LEVEL, min_size=1, max_size=4).map("/".join).filter(bool)
TOPIC_FILTER = (
    st.tuples(st.lists(LEVEL | st.just("+"), max_size=4), st.booleans())
    .map(lambda t: "/".join(t[0] + ["#"] * t[1]))
    .filter(bool)
)
BINARY = st.binary(max_size=20)
U16 = st.integers(0, 0xFFFF)
U32 = st.integers(0, 0xFFFF_FFFF)
PACKET_ID = st.integers(1, 0xFFFF)
FLAG = st.integers(0, 1)

PROPERTY_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "payload_format_indicator": FLAG,
    "message_expiry_interval": U32,
    "content_type": TEXT,
    "response_topic": TOPIC_NAME,
    "correlation_data": BINARY,
    "subscription_identifier": st.lists(st.integers(1, 268_435_455), min_size=1, max_size=3),
    "session_expiry_interval": U32,
    "assigned_client_identifier": TEXT,
    "server_keep_alive": U16,
    "authentication_method": TEXT,
    "authentication_data": BINARY,
    "request_problem_information": FLAG,
    "will_delay_interval": U32,
    "request_response_information": FLAG,
    "response_information": TEXT,
    "server_reference": TEXT,
    "reason_string": TEXT,
    "receive_maximum": st.integers(1, 0xFFFF),
    "topic_alias_maximum": U16,
    "topic_alias": st.integers(1, 0xFFFF),
    "maximum_qos": FLAG,
    "retain_available": FLAG,
    "user_property": st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=3),
    "maximum_packet_size": st.integers(1, 0xFFFF_FFFF),
    "wildcard_subscription_available": FLAG,
    "subscription_identifier_available": FLAG,
    "shared_subscription_available": FLAG,
}
ACK_PROPS = ("reason_string", "user_property")
MESSAGE_PROPS = (
    "payload_format_indicator",
    "message_expiry_interval",
    "content_type",
    "response_topic",
    "correlation_data",
    "user_property",
)
# Which properties each packet may carry (MQTT 5.0, section 2.2.2.2).
PROPERTIES_IN: dict[str, tuple[str, ...]] = {
    "connect": (
        "session_expiry_interval",
        "receive_maximum",
        "maximum_packet_size",
        "topic_alias_maximum",
        "request_response_information",
        "request_problem_information",
        "user_property",
        "authentication_method",
        "authentication_data",
    ),
    "will": (*MESSAGE_PROPS, "will_delay_interval"),
    "connack": (
        "session_expiry_interval",
        "receive_maximum",
        "maximum_qos",
        "retain_available",
        "maximum_packet_size",
        "assigned_client_identifier",
        "topic_alias_maximum",
        "reason_string",
        "user_property",
        "wildcard_subscription_available",
        "subscription_identifier_available",
        "shared_subscription_available",
        "server_keep_alive",
        "response_information",
        "server_reference",
        "authentication_method",
        "authentication_data",
    ),
    "publish": (*MESSAGE_PROPS, "subscription_identifier", "topic_alias"),
    "ack": ACK_PROPS,
    "subscribe": ("user_property",),
    "unsubscribe": ("user_property",),
    "disconnect": ("session_expiry_interval", "server_reference", *ACK_PROPS),
    "auth": ("authentication_data", *ACK_PROPS),
}


def properties(kind: str, version: int) -> st.SearchStrategy[dict[str, Any]]:
    """Properties allowed in ``kind``; always empty for 3.1.1."""
    if version == 4:
        return st.builds(dict)
    optional = {name: PROPERTY_VALUES[name] for name in PROPERTIES_IN[kind]}
    return st.fixed_dictionaries({}, optional=optional)


@st.composite
def connects(draw: st.DrawFn, version: int) -> Connect:
    username = draw(st.none() | TEXT)
    password = draw(st.none() | BINARY) if username is not None or version == 5 else None
    props = draw(properties("connect", version))
    if "authentication_data" in props:
        props.setdefault("authentication_method", "SCRAM-SHA-1")
    will = draw(
        st.none()
        | st.builds(
            Will, TOPIC_NAME, BINARY, st.integers(0, 2), st.booleans(), properties("will", version)
        )
    )
    return Connect(
        version, draw(TEXT), draw(st.booleans()), draw(U16), username, password, will, props
    )


@st.composite
def publishes(draw: st.DrawFn, version: int) -> Publish:
    qos = draw(st.integers(0, 2))
    props = draw(properties("publish", version))
    topic = "" if "topic_alias" in props and draw(st.booleans()) else draw(TOPIC_NAME)
    return Publish(
        topic,
        draw(st.binary(max_size=300)),
        qos,
        draw(st.booleans()),
        draw(st.booleans()) if qos else False,
        draw(PACKET_ID) if qos else None,
        props,
    )


def acks(cls: type[PubAck | PubRec | PubRel | PubComp], version: int) -> st.SearchStrategy[Any]:
    if version == 4:
        return st.builds(cls, PACKET_ID)
    codes = [0x00, 0x92] if cls in (PubRel, PubComp) else [0x00, 0x10, 0x80, 0x87, 0x99]
    return st.builds(cls, PACKET_ID, st.sampled_from(codes), properties("ack", version))


def connacks(version: int) -> st.SearchStrategy[ConnAck]:
    codes = range(6) if version == 4 else [0x00, 0x80, 0x84, 0x86, 0x87, 0x9F]
    return st.builds(
        lambda code, present, props: ConnAck(code, present and not code, props),
        st.sampled_from(codes),
        st.booleans(),
        properties("connack", version),
    )


def subscribes(version: int) -> st.SearchStrategy[Subscribe]:
    if version == 4:
        options = st.integers(0, 2)
        props = st.builds(dict)
    else:
        options = st.builds(
            lambda qos, flags, handling: qos | flags << 2 | handling << 4,
            st.integers(0, 2),
            st.integers(0, 3),
            st.integers(0, 2),
        )
        props = st.fixed_dictionaries(
            {},
            optional={
                "subscription_identifier": st.lists(
                    st.integers(1, 268_435_455), min_size=1, max_size=1
                ),
                "user_property": PROPERTY_VALUES["user_property"],
            },
        )
    subscriptions = st.lists(st.tuples(TOPIC_FILTER, options), min_size=1, max_size=4)
    return st.builds(Subscribe, PACKET_ID, subscriptions, props)


def auths() -> st.SearchStrategy[Auth]:
    with_method = properties("auth", 5).map(lambda p: {"authentication_method": "X", **p})
    return st.just(Auth()) | st.builds(Auth, st.sampled_from([0x00, 0x18, 0x19]), with_method)


def packets(version: int) -> st.SearchStrategy[Packet]:
    """Every packet type valid in ``version``."""
    v5 = version == 5
    suback_codes = [0x00, 0x01, 0x02, 0x80] + ([0x87, 0x97, 0xA2] if v5 else [])
    unsuback = st.lists(st.sampled_from([0x00, 0x11, 0x80, 0x91]), min_size=1, max_size=4)
    choices: list[st.SearchStrategy[Any]] = [
        connects(version),
        connacks(version),
        publishes(version),
        *(acks(cls, version) for cls in (PubAck, PubRec, PubRel, PubComp)),
        subscribes(version),
        st.builds(
            SubAck,
            PACKET_ID,
            st.lists(st.sampled_from(suback_codes), min_size=1, max_size=4),
            properties("ack", version),
        ),
        st.builds(
            Unsubscribe,
            PACKET_ID,
            st.lists(TOPIC_FILTER, min_size=1, max_size=4),
            properties("unsubscribe", version),
        ),
        st.builds(
            UnsubAck, PACKET_ID, unsuback if v5 else st.builds(list), properties("ack", version)
        ),
        st.just(PingReq()),
        st.just(PingResp()),
        st.builds(
            Disconnect,
            st.sampled_from([0x00, 0x04, 0x81, 0x8E, 0xA2] if v5 else [0]),
            properties("disconnect", version),
        ),
    ]
    if v5:
        choices.append(auths())
    return st.one_of(choices)


PACKETS = {4: packets(4), 5: packets(5)}


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", [4, 5])
@settings(max_examples=700, deadline=None)
@given(data=st.data())
def test_every_packet_survives_a_round_trip(version: int, data: st.DataObject) -> None:
    packet = data.draw(PACKETS[version])
    wire = encode(packet, version)
    decoded = read_one(wire, version)
    assert decoded == packet
    assert encode(decoded, version) == wire


# --- the stream reader ----------------------------------------------------------------------


def sample_stream() -> tuple[bytes, list[tuple[int, int, bytes]]]:
    packets_ = [
        Connect(5, "pole-1", True, 30, properties={"receive_maximum": 10}),
        Publish("poles/1/telemetry", b"x" * 200, 1, packet_id=1),  # two-byte remaining length
        PubAck(1),
        PingReq(),
        Subscribe(2, [("poles/+/rpc/#", 1)]),
        Publish("a", b"", 0),
        Disconnect(0x04),
    ]
    chunks = [encode(p, 5) for p in packets_] * 3
    expected = [Reader().feed(chunk)[0] for chunk in chunks]
    return b"".join(chunks), expected


def test_reader_splits_a_stream_cut_at_every_byte() -> None:
    stream, expected = sample_stream()
    for cut in range(len(stream) + 1):
        reader = Reader()
        assert reader.feed(stream[:cut]) + reader.feed(stream[cut:]) == expected


def test_reader_reassembles_a_stream_fed_byte_by_byte() -> None:
    stream, expected = sample_stream()
    reader = Reader()
    got = []
    for index in range(len(stream)):
        got += reader.feed(stream[index : index + 1])
    assert got == expected


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(0, 2000), max_size=20))
def test_reader_handles_arbitrary_chunking(cuts: list[int]) -> None:
    stream, expected = sample_stream()
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    reader = Reader()
    got = []
    for start, stop in itertools.pairwise(bounds):
        got += reader.feed(stream[start:stop])
    assert got == expected


def test_reader_rejects_an_oversized_packet_before_its_body_arrives() -> None:
    reader = Reader(max_packet_size=1000)
    with pytest.raises(PacketTooLarge):
        reader.feed(b"\x30\xe6\x07")  # remaining length 998 + 3 header bytes = 1001


def test_reader_accepts_a_packet_of_exactly_the_maximum_size() -> None:
    reader = Reader(max_packet_size=1001)
    assert reader.feed(b"\x30\xe6\x07") == []
    body = b"\x00\x01a" + b"x" * 995
    assert reader.feed(body) == [(3, 0, body)]


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(b"\x30\xff\xff\xff\xff", id="five-byte-remaining-length"),
        pytest.param(b"\x30\x80\x00", id="overlong-remaining-length"),
    ],
)
def test_reader_rejects_a_bad_remaining_length(header: bytes) -> None:
    with pytest.raises(MalformedPacket):
        Reader().feed(header)


def test_reader_keeps_an_incomplete_header_buffered() -> None:
    reader = Reader()
    assert reader.feed(b"\x30\xc8") == []
    assert reader.feed(b"\x01" + b"\x00\x01a" + b"p" * 197 + b"\xc0") == [
        (3, 0, b"\x00\x01a" + b"p" * 197)
    ]
    assert reader.feed(b"\x00") == [(12, 0, b"")]


# --- strictness -----------------------------------------------------------------------------


def connect_body(flags: int = 0x02, level: int = 4, name: str = "MQTT", rest: bytes = b"") -> bytes:
    """A CONNECT body: protocol name and level, connect flags, keep alive 60, then ``rest``."""
    return mqtt_str(name) + bytes((level, flags)) + b"\x00\x3c" + rest


A_B = mqtt_str("a/b")

STRICTNESS = [
    # fixed header
    pytest.param(frame(0x00, b""), 4, MalformedPacket, id="reserved-type-0"),
    pytest.param(frame(0xC1, b""), 4, MalformedPacket, id="pingreq-flags"),
    pytest.param(frame(0x42, b"\x00\x0a"), 4, MalformedPacket, id="puback-flags"),
    pytest.param(frame(0x60, b"\x00\x0a"), 4, MalformedPacket, id="pubrel-flags-0"),
    pytest.param(frame(0x80, b"\x00\x01" + A_B + b"\x00"), 4, MalformedPacket, id="sub-flags-0"),
    pytest.param(frame(0xA0, b"\x00\x01" + A_B), 4, MalformedPacket, id="unsub-flags-0"),
    pytest.param(
        frame(0x12, connect_body(rest=mqtt_str("c"))), 4, MalformedPacket, id="conn-flags"
    ),
    # PUBLISH
    pytest.param(frame(0x36, A_B + b"\x00\x01hi"), 4, MalformedPacket, id="publish-qos-3"),
    pytest.param(frame(0x38, A_B + b"hi"), 4, MalformedPacket, id="publish-dup-qos-0"),
    pytest.param(frame(0x32, A_B + b"\x00\x00hi"), 4, MalformedPacket, id="publish-packet-id-0"),
    pytest.param(frame(0x30, mqtt_str("a/+") + b"hi"), 4, ProtocolError, id="publish-plus"),
    pytest.param(frame(0x30, mqtt_str("a/#") + b"\x00"), 5, ProtocolError, id="publish-hash"),
    pytest.param(frame(0x30, b"\x00\x00hi"), 4, ProtocolError, id="publish-empty-topic"),
    pytest.param(frame(0x30, b"\x00\x00\x00hi"), 5, ProtocolError, id="publish-empty-no-alias"),
    pytest.param(frame(0x30, b"\x00\x03a\xffb"), 4, MalformedPacket, id="publish-topic-not-utf8"),
    pytest.param(frame(0x30, b"\x00\x03a\x00b"), 4, MalformedPacket, id="publish-topic-nul"),
    pytest.param(frame(0x30, b"\x00\x09a/b"), 4, MalformedPacket, id="publish-topic-overrun"),
    pytest.param(frame(0x30, A_B), 5, MalformedPacket, id="publish-v5-no-property-length"),
    pytest.param(frame(0x32, A_B + b"\x00"), 4, MalformedPacket, id="publish-truncated-id"),
    # CONNECT
    pytest.param(
        frame(0x10, connect_body(level=3, name="MQIsdp", rest=mqtt_str("c"))),
        4,
        UnsupportedProtocol,
        id="connect-mqisdp-3",
    ),
    pytest.param(
        frame(0x10, connect_body(level=6, rest=mqtt_str("c"))),
        4,
        UnsupportedProtocol,
        id="connect-level-6",
    ),
    pytest.param(
        frame(0x10, connect_body(name="MQTX", rest=mqtt_str("c"))),
        5,
        UnsupportedProtocol,
        id="connect-name",
    ),
    pytest.param(
        frame(0x10, connect_body(0x03, rest=mqtt_str("c"))),
        4,
        MalformedPacket,
        id="connect-reserved-flag",
    ),
    pytest.param(
        frame(0x10, connect_body(0x0A, rest=mqtt_str("c"))),
        4,
        MalformedPacket,
        id="connect-will-qos-without-will",
    ),
    pytest.param(
        frame(0x10, connect_body(0x22, rest=mqtt_str("c"))),
        4,
        MalformedPacket,
        id="connect-will-retain-without-will",
    ),
    pytest.param(
        frame(0x10, connect_body(0x1E, rest=mqtt_str("c") + A_B + b"\x00\x00")),
        4,
        MalformedPacket,
        id="connect-will-qos-3",
    ),
    pytest.param(
        frame(0x10, connect_body(0x42, rest=mqtt_str("c") + b"\x00\x01p")),
        4,
        MalformedPacket,
        id="connect-v4-password-without-username",
    ),
    pytest.param(
        frame(0x10, connect_body(0x02, rest=mqtt_str("c") + b"x")),
        4,
        MalformedPacket,
        id="connect-trailing-bytes",
    ),
    pytest.param(
        frame(0x10, connect_body(0x02, level=5, rest=b"\x00" + mqtt_str("c") + b"x")),
        5,
        MalformedPacket,
        id="connect-v5-trailing-bytes",
    ),
    pytest.param(
        frame(0x10, connect_body(0x02, rest=b"\x00\x02\xc3\x28")),
        4,
        MalformedPacket,
        id="connect-client-id-not-utf8",
    ),
    pytest.param(
        frame(0x10, connect_body(0x02, rest=b"\x00\x01\x00")),
        4,
        MalformedPacket,
        id="connect-client-id-nul",
    ),
    pytest.param(
        frame(0x10, connect_body(0x02, rest=b"\x00\x05ab")),
        4,
        MalformedPacket,
        id="connect-truncated",
    ),
    pytest.param(
        frame(0x10, connect_body(0x06, rest=mqtt_str("c") + mqtt_str("a/+") + b"\x00\x00")),
        4,
        ProtocolError,
        id="connect-will-topic-wildcard",
    ),
    pytest.param(frame(0x10, b"\x00\x04MQ"), 4, MalformedPacket, id="connect-short-name"),
    # SUBSCRIBE / UNSUBSCRIBE
    pytest.param(frame(0x82, b"\x00\x01"), 4, ProtocolError, id="subscribe-no-filter"),
    pytest.param(frame(0x82, b"\x00\x01\x00"), 5, ProtocolError, id="subscribe-v5-no-filter"),
    pytest.param(frame(0xA2, b"\x00\x01"), 4, ProtocolError, id="unsubscribe-no-topic"),
    pytest.param(
        frame(0x82, b"\x00\x01" + A_B + b"\x04"), 4, MalformedPacket, id="subscribe-v4-reserved"
    ),
    pytest.param(
        frame(0x82, b"\x00\x01\x00" + A_B + b"\x40"),
        5,
        MalformedPacket,
        id="subscribe-v5-reserved",
    ),
    pytest.param(frame(0x82, b"\x00\x01" + A_B + b"\x03"), 4, MalformedPacket, id="sub-v4-qos-3"),
    pytest.param(
        frame(0x82, b"\x00\x01\x00" + A_B + b"\x30"), 5, ProtocolError, id="sub-retain-handling-3"
    ),
    pytest.param(
        frame(0x82, b"\x00\x01" + mqtt_str("a/#/b") + b"\x00"), 4, ProtocolError, id="sub-hash-mid"
    ),
    pytest.param(
        frame(0x82, b"\x00\x01" + mqtt_str("a+") + b"\x00"), 4, ProtocolError, id="sub-plus-part"
    ),
    pytest.param(frame(0xA2, b"\x00\x01" + mqtt_str("a#")), 4, ProtocolError, id="unsub-hash"),
    pytest.param(frame(0x82, b"\x00\x00" + A_B + b"\x00"), 4, MalformedPacket, id="sub-id-0"),
    pytest.param(frame(0x82, b"\x00\x01" + A_B), 4, MalformedPacket, id="sub-no-options"),
    # variable byte integers and properties (v5)
    pytest.param(
        frame(0x30, A_B + b"\xff\xff\xff\xff\x01"), 5, MalformedPacket, id="property-length-5-bytes"
    ),
    pytest.param(frame(0x30, A_B + b"\x80\x00"), 5, MalformedPacket, id="property-length-overlong"),
    pytest.param(frame(0x30, A_B + b"\x09\x01\x01"), 5, MalformedPacket, id="properties-overrun"),
    pytest.param(
        frame(0x30, A_B + b"\x03\x02\x00\x00"), 5, MalformedPacket, id="property-value-overrun"
    ),
    pytest.param(frame(0x30, A_B + b"\x02\x7f\x00"), 5, MalformedPacket, id="property-unknown"),
    pytest.param(
        frame(0x30, A_B + b"\x05\x11\x00\x00\x00\x01"), 5, ProtocolError, id="property-not-allowed"
    ),
    pytest.param(
        frame(0x30, A_B + b"\x06\x23\x00\x01\x23\x00\x02"), 5, ProtocolError, id="property-twice"
    ),
    pytest.param(frame(0x30, A_B + b"\x03\x23\x00\x00"), 5, ProtocolError, id="topic-alias-0"),
    pytest.param(frame(0x30, A_B + b"\x02\x01\x02"), 5, ProtocolError, id="payload-format-2"),
    pytest.param(
        frame(0x30, A_B + b"\x03\x03\x00\x01\x00"), 5, MalformedPacket, id="property-string-nul"
    ),
    pytest.param(
        frame(0x82, b"\x00\x01\x04\x0b\x01\x0b\x02" + A_B + b"\x00"),
        5,
        ProtocolError,
        id="subscribe-two-subscription-ids",
    ),
    pytest.param(
        frame(0x10, connect_body(0x02, level=5, rest=b"\x03\x21\x00\x00" + mqtt_str("c"))),
        5,
        ProtocolError,
        id="connect-receive-maximum-0",
    ),
    # acknowledgements and the rest
    pytest.param(frame(0x40, b"\x00\x0a\x00"), 4, MalformedPacket, id="puback-v4-trailing"),
    pytest.param(frame(0x40, b"\x00\x00"), 4, MalformedPacket, id="puback-packet-id-0"),
    pytest.param(frame(0x40, b"\x00\x0a"[:1]), 4, MalformedPacket, id="puback-truncated"),
    pytest.param(frame(0x40, b"\x00\x0a\x05"), 5, ProtocolError, id="puback-bad-reason"),
    pytest.param(frame(0x40, b"\x00\x0a\x00\x00\x00"), 5, MalformedPacket, id="puback-trailing"),
    pytest.param(frame(0x90, b"\x00\x01"), 4, ProtocolError, id="suback-no-codes"),
    pytest.param(frame(0x90, b"\x00\x01\x03"), 4, ProtocolError, id="suback-v4-bad-code"),
    pytest.param(frame(0x20, b"\x02\x00"), 4, MalformedPacket, id="connack-reserved-flags"),
    pytest.param(frame(0x20, b"\x00\x06"), 4, ProtocolError, id="connack-v4-bad-code"),
    pytest.param(frame(0x20, b"\x01\x05"), 4, ProtocolError, id="connack-present-with-failure"),
    pytest.param(frame(0x20, b"\x00\x00"), 5, MalformedPacket, id="connack-v5-no-properties"),
    pytest.param(frame(0xC0, b"\x00"), 4, MalformedPacket, id="pingreq-with-body"),
    pytest.param(frame(0xE0, b"\x00"), 4, MalformedPacket, id="disconnect-v4-with-body"),
    pytest.param(frame(0xE0, b"\x8e\x00\x00"), 5, MalformedPacket, id="disconnect-trailing"),
    pytest.param(frame(0xE0, b"\x05"), 5, ProtocolError, id="disconnect-bad-reason"),
    pytest.param(frame(0xF0, b""), 4, MalformedPacket, id="auth-in-v4"),
    pytest.param(frame(0xF0, b"\x18\x00"), 5, ProtocolError, id="auth-without-method"),
    pytest.param(frame(0xB0, b"\x00\x01\x00"), 5, ProtocolError, id="unsuback-v5-no-codes"),
]


@pytest.mark.parametrize(("wire", "version", "error"), STRICTNESS)
def test_decode_rejects_each_violation(wire: bytes, version: int, error: type[MqttError]) -> None:
    with pytest.raises(error):
        read_one(wire, version)


ALLOWED = [
    pytest.param(
        frame(0x10, connect_body(0x42, level=5, rest=b"\x00" + mqtt_str("c") + b"\x00\x01p")),
        5,
        Connect(5, "c", True, 60, password=b"p"),
        id="connect-v5-password-without-username",
    ),
    pytest.param(
        frame(0x10, connect_body(0x02, rest=mqtt_str("c"))),
        5,
        Connect(4, "c", True, 60),
        id="connect-v4-while-expecting-v5",
    ),
    pytest.param(
        frame(0x30, b"\x00\x00\x03\x23\x00\x07hi"),
        5,
        Publish("", b"hi", properties={"topic_alias": 7}),
        id="publish-v5-empty-topic-with-alias",
    ),
    pytest.param(
        frame(0x30, A_B + b"\x0e" + b"\x26\x00\x01k\x00\x01v" * 2 + b"hi"),
        5,
        Publish("a/b", b"hi", properties={"user_property": [("k", "v"), ("k", "v")]}),
        id="user-property-twice",
    ),
    pytest.param(
        frame(0x32, A_B + b"\x00\x01\x04\x0b\x01\x0b\x02hi"),
        5,
        Publish("a/b", b"hi", 1, packet_id=1, properties={"subscription_identifier": [1, 2]}),
        id="publish-two-subscription-ids",
    ),
    pytest.param(
        frame(0x82, b"\x00\x01\x00" + mqtt_str("#") + b"\x2e" + mqtt_str("+/a/+") + b"\x01"),
        5,
        Subscribe(1, [("#", 0x2E), ("+/a/+", 1)]),
        id="subscribe-v5-options-and-wildcards",
    ),
    pytest.param(frame(0x40, b"\x00\x0a\x10"), 5, PubAck(10, 0x10), id="puback-reason-only"),
    pytest.param(frame(0xE0, b"\x04"), 5, Disconnect(4), id="disconnect-reason-only"),
]


@pytest.mark.parametrize(("wire", "version", "packet"), ALLOWED)
def test_decode_accepts_the_edge_cases_the_spec_allows(
    wire: bytes, version: int, packet: Packet
) -> None:
    assert read_one(wire, version) == packet


@pytest.mark.parametrize(
    ("packet", "version"),
    [
        pytest.param(Publish("a/+", b""), 4, id="publish-wildcard"),
        pytest.param(Publish("a", b"", 1), 4, id="publish-qos1-without-id"),
        pytest.param(Publish("a", b"", 0, dup=True), 4, id="publish-dup-qos0"),
        pytest.param(Publish("", b"", properties={"topic_alias": 1}), 4, id="v4-empty-topic"),
        pytest.param(Publish("a", b"", properties={"receive_maximum": 1}), 5, id="wrong-property"),
        pytest.param(Connect(4, "c", True, 60, password=b"p"), 4, id="v4-password-only"),
        pytest.param(ConnAck(0x84), 4, id="connack-v5-code-in-v4"),
        pytest.param(Subscribe(1, []), 4, id="subscribe-empty"),
        pytest.param(Subscribe(1, [("a/#/b", 0)]), 4, id="subscribe-bad-filter"),
        pytest.param(Unsubscribe(1, []), 4, id="unsubscribe-empty"),
        pytest.param(UnsubAck(1), 5, id="unsuback-v5-without-codes"),
        pytest.param(PubAck(0), 4, id="puback-id-0"),
        pytest.param(Auth(0x18), 4, id="auth-in-v4"),
    ],
)
def test_encode_refuses_packets_that_cannot_be_sent(packet: Packet, version: int) -> None:
    with pytest.raises(MqttError):
        encode(packet, version)


@pytest.mark.parametrize(
    ("topic", "valid"),
    [
        pytest.param("a/b", True, id="plain"),
        pytest.param("/", True, id="empty-levels"),
        pytest.param("", False, id="empty"),
        pytest.param("a/+", False, id="plus"),
        pytest.param("a/#", False, id="hash"),
        pytest.param("a\x00", False, id="nul"),
    ],
)
def test_validate_topic_name(topic: str, valid: bool) -> None:
    if valid:
        validate_topic_name(topic)
    else:
        with pytest.raises(MqttError):
            validate_topic_name(topic)


@pytest.mark.parametrize(
    ("topic", "valid"),
    [
        pytest.param("#", True, id="hash"),
        pytest.param("+", True, id="plus"),
        pytest.param("a/+/b/#", True, id="both"),
        pytest.param("/+/", True, id="plus-between-empty-levels"),
        pytest.param("", False, id="empty"),
        pytest.param("a/#/b", False, id="hash-not-last"),
        pytest.param("a#", False, id="hash-in-level"),
        pytest.param("a/b+", False, id="plus-in-level"),
        pytest.param("a\x00", False, id="nul"),
    ],
)
def test_validate_topic_filter(topic: str, valid: bool) -> None:
    if valid:
        validate_topic_filter(topic)
    else:
        with pytest.raises(MqttError):
            validate_topic_filter(topic)


# --- fuzzing: only MqttError, never another exception ---------------------------------------


def parse_everything(data: bytes) -> None:
    """Feed ``data`` and decode every packet as 3.1.1 and 5.0, ignoring MqttError only."""
    with contextlib.suppress(MqttError):
        for packet_type, flags, body in Reader(max_packet_size=4096).feed(data):
            for version in (4, 5):
                with contextlib.suppress(MqttError):
                    decode(packet_type, flags, body, version)


@settings(max_examples=1500, deadline=None)
@given(
    packet_type=st.integers(0, 15),
    flags=st.integers(0, 15),
    right_flags=st.booleans(),
    body=st.binary(max_size=64),
)
def test_decoding_random_bodies_raises_only_mqtt_errors(
    packet_type: int, flags: int, right_flags: bool, body: bytes
) -> None:
    if right_flags and packet_type != PacketType.PUBLISH:
        flags = 2 if packet_type in (6, 8, 10) else 0  # reach the body parser, not the flag check
    for version in (4, 5):
        with contextlib.suppress(MqttError):
            decode(packet_type, flags, body, version)


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=200))
def test_reading_random_bytes_raises_only_mqtt_errors(data: bytes) -> None:
    parse_everything(data)


@settings(max_examples=600, deadline=None)
@given(data=st.data(), version=st.sampled_from([4, 5]), rng=st.randoms(use_true_random=False))
def test_reading_mutated_packets_raises_only_mqtt_errors(
    data: st.DataObject, version: int, rng: random.Random
) -> None:
    original = encode(data.draw(PACKETS[version]), version)
    for _ in range(8):  # several mutants per generated packet: generating packets is the cost
        wire = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            index = rng.randrange(len(wire) + 1)
            operation = rng.choice(("flip", "insert", "delete"))
            if operation == "insert":
                wire.insert(index, rng.randrange(256))
            elif index < len(wire):
                if operation == "flip":
                    wire[index] ^= 1 << rng.randrange(8)
                else:
                    del wire[index]
        parse_everything(bytes(wire))
