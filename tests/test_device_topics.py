"""The one table of device API topics: the built-in endpoint and broker mode read it alike."""

from __future__ import annotations

import pytest

from smartpole.devices import Operation, Reply
from smartpole.transport.topics import (
    ROUTES,
    broker_operation,
    broker_suffix,
    thingsboard_operation,
    thingsboard_topic,
)


def test_every_operation_and_reply_has_its_topic() -> None:
    assert set(ROUTES) == {*Operation, *Reply}


@pytest.mark.parametrize(
    ("topic", "operation", "request_id"),
    [
        pytest.param("v1/devices/me/telemetry", Operation.TELEMETRY, "", id="telemetry"),
        pytest.param("v2/t", Operation.TELEMETRY, "", id="short telemetry"),
        pytest.param("v1/devices/me/attributes", Operation.CLIENT_ATTRIBUTES, "", id="attributes"),
        pytest.param(
            "v1/devices/me/attributes/request/7", Operation.ATTRIBUTE_REQUEST, "7", id="request"
        ),
        pytest.param("v1/devices/me/rpc/response/3", Operation.RPC_REPLY, "3", id="reply"),
        pytest.param("v1/devices/me/rpc/request/9", Operation.CLIENT_RPC, "9", id="client rpc"),
        pytest.param("v2/fw/request/1/chunk/0", Operation.FIRMWARE_CHUNK, "1/chunk/0", id="fw"),
        pytest.param("v1/gateway/rpc", Operation.GATEWAY_RPC_REPLY, "", id="gateway reply"),
    ],
)
def test_a_thingsboard_topic_names_its_operation(
    topic: str, operation: Operation, request_id: str
) -> None:
    assert thingsboard_operation(topic) == (operation, request_id)


@pytest.mark.parametrize(
    "topic", ["v1/devices/me/nothing", "v1/gateway/unknown", "sp/v1/x/telemetry", ""]
)
def test_a_topic_outside_the_device_api_names_none(topic: str) -> None:
    assert thingsboard_operation(topic) is None


def test_broker_mode_reads_the_same_operations_under_its_own_suffixes() -> None:
    assert broker_operation("telemetry") == (Operation.TELEMETRY, "")
    assert broker_operation("rpc/call/4") == (Operation.CLIENT_RPC, "4")
    assert broker_operation("gateway/attributes/request") == (
        Operation.GATEWAY_ATTRIBUTE_REQUEST,
        "",
    )
    assert broker_operation("status") is None  # broker mode's own: not the device API


def test_answers_go_back_on_the_topic_of_their_request() -> None:
    assert thingsboard_topic(Reply.ATTRIBUTE_RESPONSE, "7") == (
        "v1/devices/me/attributes/response/7"
    )
    assert broker_suffix(Reply.CLIENT_RPC_RESPONSE, "9") == "rpc/result/9"
    assert thingsboard_topic(Reply.FIRMWARE_CHUNK, "1/chunk/0") == "v2/fw/response/1/chunk/0"
    assert ROUTES[Reply.FIRMWARE_ERROR].unsolicited
    assert not ROUTES[Reply.ATTRIBUTE_RESPONSE].unsolicited
