"""The one table of device API topics: each operation and reply with its ThingsBoard topic (the
built-in endpoint's) and its suffix in broker mode (``sp/v1/{device}/{suffix}``, see
:mod:`smartpole.transport.broker.topics` for who may use which).

A topic ending in ``/`` is a prefix: what follows it is the request (an id, or
``{request}/chunk/{n}``), which the device API reads and its answer carries back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from smartpole.devices.operations import Operation, Reply

__all__ = [
    "DOWNLINK",
    "UPLINK",
    "Route",
    "broker_operation",
    "broker_suffix",
    "thingsboard_operation",
    "thingsboard_topic",
]


@dataclass(frozen=True, slots=True)
class Route:
    """Where one operation (or reply) travels: its ThingsBoard topics and broker suffix."""

    thingsboard: tuple[str, ...]  # the first is the one the platform sends on
    broker: str | None  # None: not in broker mode
    unsolicited: bool = False  # ThingsBoard sends it whatever the device subscribed to


UPLINK: Final[dict[Operation, Route]] = {
    Operation.TELEMETRY: Route(("v1/devices/me/telemetry", "v2/t"), "telemetry"),
    Operation.CLIENT_ATTRIBUTES: Route(("v1/devices/me/attributes", "v2/a"), "attributes"),
    Operation.ATTRIBUTE_REQUEST: Route(
        ("v1/devices/me/attributes/request/",), "attributes/request/"
    ),
    Operation.RPC_REPLY: Route(("v1/devices/me/rpc/response/",), "rpc/response/"),
    Operation.CLIENT_RPC: Route(("v1/devices/me/rpc/request/",), "rpc/call/"),
    Operation.CLAIM: Route(("v1/devices/me/claim",), "claim"),
    Operation.FIRMWARE_CHUNK: Route(("v2/fw/request/",), "fw/request/"),
    Operation.PROVISION: Route(("/provision/request",), None),
    Operation.GATEWAY_CONNECT: Route(("v1/gateway/connect",), "gateway/connect"),
    Operation.GATEWAY_DISCONNECT: Route(("v1/gateway/disconnect",), "gateway/disconnect"),
    Operation.GATEWAY_TELEMETRY: Route(("v1/gateway/telemetry",), "gateway/telemetry"),
    Operation.GATEWAY_ATTRIBUTES: Route(("v1/gateway/attributes",), "gateway/attributes"),
    Operation.GATEWAY_ATTRIBUTE_REQUEST: Route(
        ("v1/gateway/attributes/request",), "gateway/attributes/request"
    ),
    Operation.GATEWAY_RPC_REPLY: Route(("v1/gateway/rpc",), "gateway/rpc"),
    Operation.GATEWAY_CLAIM: Route(("v1/gateway/claim",), "gateway/claim"),
}

DOWNLINK: Final[dict[Reply, Route]] = {
    Reply.ATTRIBUTE_RESPONSE: Route(
        ("v1/devices/me/attributes/response/",), "attributes/response/"
    ),
    Reply.CLIENT_RPC_RESPONSE: Route(("v1/devices/me/rpc/response/",), "rpc/result/"),
    Reply.FIRMWARE_CHUNK: Route(("v2/fw/response/",), "fw/response/", unsolicited=True),
    Reply.FIRMWARE_ERROR: Route(("v2/fw/error",), "fw/error", unsolicited=True),
    Reply.PROVISION_RESPONSE: Route(("/provision/response",), None, unsolicited=True),
    Reply.GATEWAY_ATTRIBUTE_RESPONSE: Route(
        ("v1/gateway/attributes/response",), "gateway/attributes/response"
    ),
    Reply.COMMAND: Route(("v1/devices/me/rpc/request/",), "rpc/request/"),
    # broker mode pushes on a topic of its own (see transport.broker.topics)
    Reply.SHARED_ATTRIBUTES: Route(("v1/devices/me/attributes",), "attributes/shared"),
    Reply.GATEWAY_COMMAND: Route(("v1/gateway/rpc",), "gateway/rpc/request"),
    Reply.GATEWAY_SHARED_ATTRIBUTES: Route(("v1/gateway/attributes",), "gateway/attributes/shared"),
}


def _index(
    column: dict[str, Operation],
) -> tuple[dict[str, Operation], list[tuple[str, Operation]]]:
    exact = {t: op for t, op in column.items() if not t.endswith("/")}
    prefixes = [(t, op) for t, op in column.items() if t.endswith("/")]
    return exact, prefixes


_TB_EXACT, _TB_PREFIXES = _index({t: op for op, r in UPLINK.items() for t in r.thingsboard})
_BROKER_EXACT, _BROKER_PREFIXES = _index(
    {r.broker: op for op, r in UPLINK.items() if r.broker is not None}
)


def _lookup(
    topic: str, exact: dict[str, Operation], prefixes: list[tuple[str, Operation]]
) -> tuple[Operation, str] | None:
    op = exact.get(topic)
    if op is not None:
        return op, ""
    for prefix, op in prefixes:
        if topic.startswith(prefix):
            return op, topic[len(prefix) :]
    return None


def thingsboard_operation(topic: str) -> tuple[Operation, str] | None:
    """The operation of a ThingsBoard topic and the request it carries, or None."""
    return _lookup(topic, _TB_EXACT, _TB_PREFIXES)


def broker_operation(suffix: str) -> tuple[Operation, str] | None:
    """The operation of a broker-mode topic's suffix and the request it carries, or None."""
    return _lookup(suffix, _BROKER_EXACT, _BROKER_PREFIXES)


def thingsboard_topic(reply: Reply, request: str = "") -> str:
    """The ThingsBoard topic a reply is sent on."""
    return DOWNLINK[reply].thingsboard[0] + request


def broker_suffix(reply: Reply, request: str = "") -> str:
    """The broker-mode suffix a reply is sent on (under ``sp/v1/{device}/``)."""
    suffix = DOWNLINK[reply].broker
    assert suffix is not None, f"{reply.value} has no broker-mode topic"
    return suffix + request
