"""Random and mutated MQTT packets over real sockets never hurt the server or other sessions.

Hypothesis builds packet sequences with smartpole's own codec (CONNECT with a real token,
PUBLISH to the device and gateway topics, SUBSCRIBE, PINGREQ, ...), then mutates the bytes
(flips, cuts, insertions). After each example a well-behaved paho client still connects and
its telemetry is stored, and the server logged no internal error.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures_api import City, grant_mount, make_device, make_pole
from mqtt_client import V5, Device
from smartpole.app import Platform
from smartpole.transport.mqtt import codec

TOPICS = [
    "v1/devices/me/telemetry",
    "v1/devices/me/attributes",
    "v1/devices/me/attributes/request/1",
    "v1/devices/me/rpc/request/1",
    "v1/devices/me/rpc/response/1",
    "v2/t",
    "v1/gateway/connect",
    "v1/gateway/disconnect",
    "v1/gateway/telemetry",
    "v1/gateway/attributes",
    "v1/gateway/attributes/request",
    "v1/gateway/rpc",
    "v1/gateway/claim",
    "v1/devices/other/telemetry",
    # ids a device may put in a topic that no column holds
    "v1/devices/me/rpc/response/2147483648",
    "v1/devices/me/rpc/response/100000000000000000000",
    "v1/devices/me/rpc/request/-1",
    "v1/devices/me/attributes/request/100000000000000000000",
    "v2/fw/request/1/chunk/100000000000000000000",
]
FILTERS = ["v1/devices/me/#", "v1/gateway/+", "v1/devices/me/rpc/request/+", "#", "a/#/b", "+"]
PAYLOADS = [
    b'{"power": 1}',
    b'[{"ts": 1, "values": {"dim": 2}}]',
    b'{"cell-f": [{"users": 1}]}',
    b'{"device": "cell-f", "type": "small_cell"}',
    b'{"device": "nobody", "type": "lamp"}',
    b'{"id": 1, "device": "cell-f", "keys": ["a"]}',
    b'{"device": "cell-f", "id": 1, "data": {"ok": true}}',
    b'{"method": "getSessionLimits"}',
    b'{"clientKeys": "a", "sharedKeys": "b"}',
    b"{",
    b"[]",
    b"null",
    b'"\xff\xfe"',
]

# a well-formed message of each topic, for mutants: one field replaced by anything (random
# JSON rarely has the shape a handler reads far enough to fail on)
SHAPES: dict[str, dict[str, Any]] = {
    "v1/devices/me/telemetry": {"ts": 1, "values": {"power": 1}},
    "v1/devices/me/attributes": {"firmware": "1"},
    "v1/devices/me/attributes/request/1": {"clientKeys": "a", "sharedKeys": "b"},
    "v1/devices/me/rpc/request/1": {"method": "getSessionLimits", "params": {}},
    "v1/devices/me/rpc/response/1": {"ok": True},
    "v1/devices/me/claim": {"secretKey": "s", "durationMs": 1000},
    "v1/gateway/telemetry": {"cell-f": [{"ts": 1, "values": {"users": 1}}]},
    "v1/gateway/attributes": {"cell-f": {"firmware": "1"}},
    "v1/gateway/connect": {"device": "cell-f", "type": "small_cell"},
    "v1/gateway/disconnect": {"device": "cell-f"},
    "v1/gateway/attributes/request": {"id": 1, "device": "cell-f", "client": False, "key": "a"},
    "v1/gateway/rpc": {"device": "cell-f", "id": 1, "data": {"ok": True}},
    "v1/gateway/claim": {"cell-f": {"secretKey": "s"}},
    "/provision/request": {"deviceName": "new", "provisionDeviceKey": "k"},
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return draw(st.sampled_from(PAYLOADS))
    if kind == 1:
        return orjson.dumps(draw(json_values))
    return draw(st.binary(max_size=64))


@st.composite
def packets(draw: st.DrawFn, tokens: list[str | None], version: int) -> bytes:
    """One encoded packet (possibly not valid in this state), or raw bytes."""
    kind = draw(
        st.sampled_from(
            [
                "connect",
                "publish",
                "publish",
                "publish",
                "subscribe",
                "unsubscribe",
                "ping",
                "puback",
                "disconnect",
                "auth",
                "raw",
            ]
        )
    )
    v = version
    if kind == "connect":
        will = None
        if draw(st.booleans()):
            will = codec.Will(
                draw(st.sampled_from(TOPICS)), draw(payloads()), draw(st.integers(0, 1))
            )
        packet: Any = codec.Connect(
            draw(st.sampled_from([4, 5])),
            draw(st.sampled_from(["", "fuzz", "fuzz-2"])),
            draw(st.booleans()),
            draw(st.integers(0, 120)),
            draw(st.sampled_from(tokens)),
            will=will,
        )
        v = packet.protocol_level
    elif kind == "publish":
        qos = draw(st.integers(0, 1))
        if draw(st.booleans()):  # a mutant of the topic's own message
            topic = draw(st.sampled_from(sorted(SHAPES)))
            shape = SHAPES[topic]
            body = orjson.dumps(
                {**shape, draw(st.sampled_from([*shape, "device"])): draw(json_values)}
            )
        else:
            topic = draw(st.sampled_from(TOPICS) | st.text("abv12/+#me", min_size=1, max_size=20))
            body = draw(payloads())
        packet = codec.Publish(
            topic, body, qos, packet_id=draw(st.integers(1, 65535)) if qos else None
        )
    elif kind == "subscribe":
        filters = draw(st.lists(st.sampled_from(FILTERS), min_size=1, max_size=3))
        packet = codec.Subscribe(
            draw(st.integers(1, 65535)), [(f, draw(st.integers(0, 2))) for f in filters]
        )
    elif kind == "unsubscribe":
        packet = codec.Unsubscribe(draw(st.integers(1, 65535)), [draw(st.sampled_from(FILTERS))])
    elif kind == "ping":
        packet = codec.PingReq()
    elif kind == "puback":
        packet = codec.PubAck(draw(st.integers(1, 65535)))
    elif kind == "disconnect":
        packet = codec.Disconnect(draw(st.sampled_from([0, 4])))
    elif kind == "auth":
        return b"\xf0\x00"
    else:
        return draw(st.binary(min_size=1, max_size=32))
    try:
        return codec.encode(packet, v)
    except Exception:  # the codec refuses to build it (a bad topic, say): send raw bytes
        return draw(st.binary(min_size=1, max_size=16))


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few random edits."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(0, 3))):
        if not buf:
            break
        pos = draw(st.integers(0, len(buf) - 1))
        op = draw(st.sampled_from(["flip", "delete", "insert", "cut"]))
        if op == "flip":
            buf[pos] = draw(st.integers(0, 255))
        elif op == "delete":
            del buf[pos]
        elif op == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        else:
            del buf[pos:]
    return bytes(buf)


@st.composite
def sessions(draw: st.DrawFn, tokens: list[str | None]) -> list[bytes]:
    """A CONNECT (usually valid) then packets, each maybe mutated."""
    version = draw(st.sampled_from([4, 5]))
    token = draw(st.sampled_from(tokens))
    first = codec.encode(codec.Connect(version, "fuzz", True, 30, token), version)
    out = [first if draw(st.integers(0, 4)) else draw(mutated(first))]
    for _ in range(draw(st.integers(0, 6))):
        packet = draw(packets(tokens, version))
        out.append(draw(mutated(packet)) if draw(st.integers(0, 2)) == 0 else packet)
    return out


@pytest.fixture
async def fleet(client: httpx.AsyncClient, city: City) -> dict[str, Any]:
    pole = await make_pole(client, city, "FT-FZ-0001")
    out = {
        "gw": await make_device(client, city, "city", "gateway", pole, name="gw-f"),
        "cell": await make_device(client, city, "telecom", "small_cell", pole, name="cell-f"),
    }
    await grant_mount(client, city, pole, "telecom", "lighting")
    out["lamp"] = await make_device(client, city, "lighting", "lamp", pole, name="lamp-f")
    out["good"] = await make_device(client, city, "lighting", "lamp", pole, name="lamp-good")
    return out


async def play(port: int, chunks: list[bytes]) -> None:
    """Send the chunks on one connection, read what comes back for a moment, close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for chunk in chunks:
            if writer.is_closing():
                break
            writer.write(chunk)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        with contextlib.suppress(TimeoutError, ConnectionError):
            while await asyncio.wait_for(reader.read(4096), 0.03):
                pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "20")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_bad_sessions_never_affect_others(
    data: st.DataObject,
    platform: Platform,
    client: httpx.AsyncClient,
    city: City,
    fleet: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    counter: list[int],
) -> None:
    tokens = [fleet["gw"]["token"], fleet["lamp"]["token"], fleet["cell"]["token"], "bad", None]
    chunks = data.draw(sessions(tokens))
    port = platform.mqtt[0].mqtt_port
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        await play(port, chunks)
        await asyncio.sleep(0.01)  # let the server finish with the closed session
        gc.collect()  # an exception nobody retrieved is logged when its future is collected
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]

    counter[0] += 1
    seq = counter[0]
    good = Device(port, fleet["good"]["token"], V5, client_id="good-client")
    try:
        assert await good.connect() == 0
        assert await good.publish("v1/devices/me/telemetry", {"seq": seq}) == 0
    finally:
        await good.close()
    r = await client.get(
        f"/api/devices/{fleet['good']['id']}/latest", headers=city.auth("lighting")
    )
    assert r.json()["seq"]["value"] == seq


# -- what the fuzzer found, pinned down ---------------------------------------------------
CONNECT_V5 = codec.encode(codec.Connect(5, "x", True, 30, "t"), 5)  # byte 8: protocol level


async def connected_v5(port: int, token: str) -> tuple[asyncio.StreamReader, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(codec.encode(codec.Connect(5, "pinned", True, 30, token), 5))
    head = await reader.readexactly(2)
    await reader.readexactly(head[1])
    return reader, writer


@pytest.mark.parametrize(
    "packet",
    [
        pytest.param(b"\xf0\x00", id="auth"),
        pytest.param(CONNECT_V5[:8] + b"\x03" + CONNECT_V5[9:], id="connect-v3"),
    ],
)
async def test_auth_or_a_bad_second_connect_ends_with_a_protocol_error(
    platform: Platform, fleet: dict[str, Any], caplog: pytest.LogCaptureFixture, packet: bytes
) -> None:
    reader, writer = await connected_v5(platform.mqtt[0].mqtt_port, fleet["lamp"]["token"])
    writer.write(packet)
    answer = await reader.read(100)
    writer.close()
    assert answer[:3] == b"\xe0\x01\x82"  # DISCONNECT, protocol error (no CONNACK in between)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_refused_qos0_publish_is_dropped_quietly(
    platform: Platform, fleet: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    reader, writer = await connected_v5(platform.mqtt[0].mqtt_port, fleet["gw"]["token"])
    for topic, body in [
        ("v1/devices/other/telemetry", b'{"a": 1}'),
        ("v1/gateway/telemetry", b'{"nobody": [{"a": 1}]}'),
        ("v1/devices/me/telemetry", b"{"),
    ]:
        writer.write(codec.encode(codec.Publish(topic, body, 0), 5))
    writer.write(codec.encode(codec.PingReq(), 5))
    assert await reader.readexactly(2) == b"\xd0\x00"  # PINGRESP: the session goes on
    writer.close()
    await asyncio.sleep(0.05)
    gc.collect()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("QoS 0 publish" in r.getMessage() for r in caplog.records)
