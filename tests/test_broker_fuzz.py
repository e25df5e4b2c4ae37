"""Random messages on every uplink topic of broker mode never stall a node.

A message a node cannot handle and does not acknowledge comes back from the broker after every
reconnection: one such message would stop the node's share of the city for good. Hypothesis
publishes random JSON (and non-JSON) through a real Mosquitto, as a gateway and as a lamp, to
each topic the nodes consume; afterwards the node must still be on its first connection, have
logged no error, and store a good reading published after them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures_api import City, make_device, make_pole
from helpers import device, eventually, latest, sync_files
from mosquitto import Mosquitto
from smartpole.app import Platform
from smartpole.transport.mqtt.client import PublishRefused


@pytest.fixture
def platform(broker_platform: Platform) -> Platform:
    """Broker mode: the platform consumes from ``broker`` (``fixtures_broker``)."""
    return broker_platform


SUFFIXES = [
    "telemetry",
    "attributes",
    "attributes/request/1",
    "rpc/response/1",
    "rpc/call/1",
    "claim",
    "fw/request/1/chunk/0",
    "status",
    "gateway/telemetry",
    "gateway/attributes",
    "gateway/connect",
    "gateway/disconnect",
    "gateway/attributes/request",
    "gateway/rpc",
    "gateway/claim",
    # ids a device may put in a topic that no column holds
    "rpc/response/2147483648",
    "rpc/response/100000000000000000000",
    "rpc/call/-1",
    "attributes/request/100000000000000000000",
    "fw/request/1/chunk/100000000000000000000",
]
NAMES = ["lamp-f", "lamp-g", "gw-f", "nobody", "", "x" * 300]
KEYS = [*NAMES, "ts", "values", "device", "type", "id", "data", "method", "params", "key"]
KEYS += ["keys", "client", "secretKey", "durationMs", "power", "clientKeys", "sharedKeys"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False),
    st.sampled_from([*NAMES, "lamp", "camera", "getCurrentTime", "1"]),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)
# a well-formed message of each topic, for mutants: one field replaced by anything
SHAPES: dict[str, dict[str, Any]] = {
    "telemetry": {"ts": 1, "values": {"power": 1}},
    "attributes": {"firmware": "1"},
    "attributes/request/1": {"clientKeys": "a", "sharedKeys": "b"},
    "rpc/response/1": {"ok": True},
    "rpc/call/1": {"method": "getCurrentTime", "params": {}},
    "claim": {"secretKey": "s", "durationMs": 1000},
    "gateway/telemetry": {"lamp-f": [{"ts": 1, "values": {"power": 1}}]},
    "gateway/attributes": {"lamp-f": {"firmware": "1"}},
    "gateway/connect": {"device": "lamp-f", "type": "lamp"},
    "gateway/disconnect": {"device": "lamp-f"},
    "gateway/attributes/request": {"id": 1, "device": "lamp-f", "client": False, "key": "a"},
    "gateway/rpc": {"device": "lamp-f", "id": 1, "data": {"ok": True}},
    "gateway/claim": {"lamp-f": {"secretKey": "s"}},
}
anything = st.one_of(
    values.map(orjson.dumps),
    st.binary(max_size=24),
    st.sampled_from([b"", b"{", b"online", b"offline", b"4096", b"-1", b"\xff\xfe"]),
)


def payloads(suffix: str) -> st.SearchStrategy[bytes]:
    """Mutants of the topic's well-formed message (most of the time), or anything."""
    shape = SHAPES.get(suffix)
    if shape is None:
        return anything
    mutants = st.tuples(st.sampled_from([*shape, "device"]), values).map(
        lambda kv: orjson.dumps({**shape, kv[0]: kv[1]})
    )
    return st.one_of(mutants, mutants, mutants, anything)


messages = st.tuples(st.sampled_from(["gw-f", "lamp-f"]), st.sampled_from(SUFFIXES)).flatmap(
    lambda m: st.tuples(st.just(m[0]), st.just(m[1]), payloads(m[1]))
)


@pytest.fixture
async def fleet(
    client: httpx.AsyncClient, city: City, platform: Platform, broker: Mosquitto
) -> dict[str, Any]:
    pole = await make_pole(client, city, "FT-FZ-0001")
    out = {
        "gw": await make_device(client, city, "city", "gateway", pole, name="gw-f"),
        "lamp": await make_device(client, city, "lighting", "lamp", pole, name="lamp-f", port=1),
        "good": await make_device(client, city, "lighting", "lamp", pole, name="lamp-g", port=2),
    }
    sync_files(platform, broker)
    return out


@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sent=st.lists(messages, min_size=1, max_size=8))
async def test_no_message_stalls_the_node(
    sent: list[tuple[str, str, bytes]],
    platform: Platform,
    client: httpx.AsyncClient,
    city: City,
    broker: Mosquitto,
    fleet: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    counter: list[int],
) -> None:
    consumer = platform.broker
    assert consumer is not None
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        senders = {
            "gw-f": await device(broker, "gw-f", fleet["gw"]["token"]),
            "lamp-f": await device(broker, "lamp-f", fleet["lamp"]["token"]),
        }
        try:
            for name, suffix, payload in sent:
                try:
                    await senders[name].publish(f"sp/v1/{name}/{suffix}", payload, qos=1)
                except PublishRefused:  # Mosquitto's ACL: the gateway API is for gateways
                    assert name == "lamp-f"
                    assert suffix.startswith("gateway/")
        finally:
            for sender in senders.values():
                await sender.close()
        counter[0] += 1
        seq = counter[0]
        good = await device(broker, "lamp-g", fleet["good"]["token"])
        await good.publish("sp/v1/lamp-g/telemetry", orjson.dumps({"seq": seq}), qos=1)
        await good.close()

        async def stored() -> bool:
            found = await latest(client, city, fleet["good"]["id"])
            return bool(found.get("seq", {}).get("value") == seq)

        await eventually(stored)
        await asyncio.sleep(0.02)  # the background answers (attribute requests, RPC, OTA)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors
    # a refused message is dropped and counted up front, not left to fail in the background
    failed = [r.getMessage() for r in caplog.records if "background work failed" in r.getMessage()]
    assert not failed
    assert consumer.stats.reconnects == 0, consumer.stats.last_error
    assert consumer.stats.connected
