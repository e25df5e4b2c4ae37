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
    "ROUTES",
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


# operation or reply           ThingsBoard topic(s)                    broker suffix
_TABLE = """
TELEMETRY                       v1/devices/me/telemetry,v2/t           telemetry
CLIENT_ATTRIBUTES               v1/devices/me/attributes,v2/a          attributes
ATTRIBUTE_REQUEST               v1/devices/me/attributes/request/      attributes/request/
RPC_REPLY                       v1/devices/me/rpc/response/            rpc/response/
CLIENT_RPC                      v1/devices/me/rpc/request/             rpc/call/
CLAIM                           v1/devices/me/claim                    claim
FIRMWARE_CHUNK                  v2/fw/request/                         fw/request/
PROVISION                       /provision/request                     -
GATEWAY_CONNECT                 v1/gateway/connect                     gateway/connect
GATEWAY_DISCONNECT              v1/gateway/disconnect                  gateway/disconnect
GATEWAY_TELEMETRY               v1/gateway/telemetry                   gateway/telemetry
GATEWAY_ATTRIBUTES              v1/gateway/attributes                  gateway/attributes
GATEWAY_ATTRIBUTE_REQUEST       v1/gateway/attributes/request          gateway/attributes/request
GATEWAY_RPC_REPLY               v1/gateway/rpc                         gateway/rpc
GATEWAY_CLAIM                   v1/gateway/claim                       gateway/claim
reply ATTRIBUTE_RESPONSE        v1/devices/me/attributes/response/     attributes/response/
reply CLIENT_RPC_RESPONSE       v1/devices/me/rpc/response/            rpc/result/
reply FIRMWARE_CHUNK            v2/fw/response/                        fw/response/  unsolicited
reply FIRMWARE_ERROR            v2/fw/error                            fw/error      unsolicited
reply PROVISION_RESPONSE        /provision/response                    -             unsolicited
reply GATEWAY_ATTRIBUTE_RESPONSE  v1/gateway/attributes/response       gateway/attributes/response
reply COMMAND                   v1/devices/me/rpc/request/             rpc/request/
reply SHARED_ATTRIBUTES         v1/devices/me/attributes               attributes/shared
reply GATEWAY_COMMAND           v1/gateway/rpc                         gateway/rpc/request
reply GATEWAY_SHARED_ATTRIBUTES v1/gateway/attributes                  gateway/attributes/shared
"""
# (broker mode pushes shared attributes on a topic of their own: see transport.broker.topics)


def _routes(table: str) -> dict[Operation | Reply, Route]:
    """The table, read: a row per operation (``reply``: per reply); ``-`` for no broker topic;
    ``unsolicited``: ThingsBoard sends it whatever the device subscribed to."""
    routes: dict[Operation | Reply, Route] = {}
    for line in table.strip().splitlines():
        words = line.split()
        key: Operation | Reply = Reply[words[1]] if words[0] == "reply" else Operation[words[0]]
        tb, broker, *flags = words[2:] if words[0] == "reply" else words[1:]
        routes[key] = Route(tuple(tb.split(",")), None if broker == "-" else broker, bool(flags))
    return routes


ROUTES: Final = _routes(_TABLE)


def _index(
    column: dict[str, Operation],
) -> tuple[dict[str, Operation], list[tuple[str, Operation]]]:
    exact = {t: op for t, op in column.items() if not t.endswith("/")}
    prefixes = [(t, op) for t, op in column.items() if t.endswith("/")]
    return exact, prefixes


_UPLINK = {op: r for op, r in ROUTES.items() if isinstance(op, Operation)}
_TB_EXACT, _TB_PREFIXES = _index({t: op for op, r in _UPLINK.items() for t in r.thingsboard})
_BROKER_EXACT, _BROKER_PREFIXES = _index({r.broker: op for op, r in _UPLINK.items() if r.broker})


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
    return ROUTES[reply].thingsboard[0] + request


def broker_suffix(reply: Reply, request: str = "") -> str:
    """The broker-mode suffix a reply is sent on (under ``sp/v1/{device}/``)."""
    suffix = ROUTES[reply].broker
    assert suffix is not None, f"{reply.value} has no broker-mode topic"
    return suffix + request
