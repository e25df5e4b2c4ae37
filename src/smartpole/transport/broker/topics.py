"""The topics of broker mode and who may use them: one table for Mosquitto's ACL and EMQX's hook.

Every topic is ``sp/v1/{device}/{suffix}``, where ``{device}`` is the device's broker user name
(its name), so the broker's ACL alone keeps a device to its own topics::

    device → smartpole (uplink)         smartpole → device (downlink)
    sp/v1/{d}/telemetry                 sp/v1/{d}/rpc/request/{id}
    sp/v1/{d}/attributes                sp/v1/{d}/attributes/shared
    sp/v1/{d}/attributes/request/{id}   sp/v1/{d}/attributes/response/{id}
    sp/v1/{d}/rpc/response/{id}
    sp/v1/{d}/status   (retained "online"/"offline", with a will)
    sp/v1/{d}/rpc/call/{id}             sp/v1/{d}/rpc/result/{id}   (device-initiated RPC)
    sp/v1/{d}/claim
    sp/v1/{d}/fw/request/{r}/chunk/{n}  sp/v1/{d}/fw/response/{r}/chunk/{n}, sp/v1/{d}/fw/error

A gateway (a device of kind ``gateway``) also has ThingsBoard's gateway API under its own
name, for the sub-devices of its pole::

    sp/v1/{g}/gateway/telemetry           sp/v1/{g}/gateway/rpc/request
    sp/v1/{g}/gateway/attributes          sp/v1/{g}/gateway/attributes/shared
    sp/v1/{g}/gateway/connect             sp/v1/{g}/gateway/attributes/response
    sp/v1/{g}/gateway/disconnect
    sp/v1/{g}/gateway/attributes/request
    sp/v1/{g}/gateway/rpc              (replies to commands)
    sp/v1/{g}/gateway/claim

Shared-attribute pushes have their own topic rather than ThingsBoard's two-way ``attributes``:
on one topic, smartpole's shared subscription would receive its own pushes as client
attributes (MQTT 5 forbids No Local on shared subscriptions), and a device its own uploads.
"""

from __future__ import annotations

from smartpole.devices.operations import Operation, Reply
from smartpole.registry.broker import USERNAME_RE
from smartpole.transport.topics import ROUTES

__all__ = [
    "ATTRIBUTES",
    "ATTR_REQUEST",
    "ATTR_RESPONSE",
    "CLAIM",
    "FW_ERROR",
    "FW_REQUEST",
    "FW_RESPONSE",
    "GATEWAY",
    "GATEWAY_READ",
    "GATEWAY_WRITE",
    "GW_ATTRIBUTES",
    "GW_ATTR_REQUEST",
    "GW_ATTR_RESPONSE",
    "GW_CLAIM",
    "GW_CONNECT",
    "GW_DISCONNECT",
    "GW_RPC",
    "GW_RPC_REQUEST",
    "GW_SHARED",
    "GW_TELEMETRY",
    "PREFIX",
    "RPC_CALL",
    "RPC_REQUEST",
    "RPC_RESPONSE",
    "RPC_RESULT",
    "SHARED",
    "STATUS",
    "TELEMETRY",
    "covers",
    "device_topic",
    "may",
    "parse",
    "subscriptions",
    "unshare",
]

PREFIX = "sp/v1/"
STATUS = "status"  # broker mode's own: a device's retained presence


def _suffix(what: Operation | Reply) -> str:
    suffix = ROUTES[what].broker
    assert suffix is not None
    return suffix


# The suffixes, from the one table of device API topics (transport.topics).
TELEMETRY = _suffix(Operation.TELEMETRY)
ATTRIBUTES = _suffix(Operation.CLIENT_ATTRIBUTES)
ATTR_REQUEST = _suffix(Operation.ATTRIBUTE_REQUEST)
RPC_RESPONSE = _suffix(Operation.RPC_REPLY)
RPC_REQUEST = _suffix(Reply.COMMAND)
SHARED = _suffix(Reply.SHARED_ATTRIBUTES)
ATTR_RESPONSE = _suffix(Reply.ATTRIBUTE_RESPONSE)
RPC_CALL = _suffix(Operation.CLIENT_RPC)
RPC_RESULT = _suffix(Reply.CLIENT_RPC_RESPONSE)
CLAIM = _suffix(Operation.CLAIM)
FW_REQUEST = _suffix(Operation.FIRMWARE_CHUNK)
FW_RESPONSE = _suffix(Reply.FIRMWARE_CHUNK)
FW_ERROR = _suffix(Reply.FIRMWARE_ERROR)
GATEWAY = "gateway/"
GW_TELEMETRY = _suffix(Operation.GATEWAY_TELEMETRY)
GW_ATTRIBUTES = _suffix(Operation.GATEWAY_ATTRIBUTES)
GW_CONNECT = _suffix(Operation.GATEWAY_CONNECT)
GW_DISCONNECT = _suffix(Operation.GATEWAY_DISCONNECT)
GW_ATTR_REQUEST = _suffix(Operation.GATEWAY_ATTRIBUTE_REQUEST)
GW_RPC = _suffix(Operation.GATEWAY_RPC_REPLY)
GW_CLAIM = _suffix(Operation.GATEWAY_CLAIM)
GW_RPC_REQUEST = _suffix(Reply.GATEWAY_COMMAND)
GW_SHARED = _suffix(Reply.GATEWAY_SHARED_ATTRIBUTES)
GW_ATTR_RESPONSE = _suffix(Reply.GATEWAY_ATTRIBUTE_RESPONSE)

# Suffixes (topic filters under sp/v1/{d}/) a device may publish to and subscribe to.
DEVICE_UPLINK = (  # what smartpole's nodes share
    TELEMETRY,
    ATTRIBUTES,
    ATTR_REQUEST + "+",
    RPC_CALL + "+",
    CLAIM,
    FW_REQUEST + "+/chunk/+",
)
DEVICE_WRITE = (*DEVICE_UPLINK, RPC_RESPONSE + "+", STATUS)
DEVICE_READ = (
    RPC_REQUEST + "+",
    SHARED,
    ATTR_RESPONSE + "+",
    RPC_RESULT + "+",
    FW_RESPONSE + "+/chunk/+",
    FW_ERROR,
)
# ... and those a gateway may use besides (exact topics: no filter ends in a wildcard, so
# smartpole's subscriptions to the uplink never match its own downlink).
GATEWAY_UPLINK = (
    GW_TELEMETRY,
    GW_ATTRIBUTES,
    GW_CONNECT,
    GW_DISCONNECT,
    GW_ATTR_REQUEST,
    GW_CLAIM,
)
GATEWAY_WRITE = (*GATEWAY_UPLINK, GW_RPC)
GATEWAY_READ = (GW_RPC_REQUEST, GW_SHARED, GW_ATTR_RESPONSE)
# The ThingsBoard topics EMQX rewrites to the device's own (authorised before the rewrite).
TB_UPLINK = (
    "v1/devices/me/telemetry",
    "v1/devices/me/attributes",
    "v1/devices/me/attributes/request/+",
    "v1/devices/me/rpc/response/+",
    "v1/devices/me/rpc/request/+",  # device-initiated RPC, rewritten to rpc/call/{id}
    "v1/devices/me/claim",
    "v2/fw/request/+/chunk/+",
)
TB_GATEWAY_UPLINK = tuple("v1/" + s for s in GATEWAY_WRITE)
# smartpole's own user reads everything under the prefix and writes the downlink topics, and
# the retained status of the sub-devices a gateway connects and disconnects.
SERVICE_READ = (PREFIX + "#",)
SERVICE_WRITE = tuple(PREFIX + "+/" + s for s in (*DEVICE_READ, *GATEWAY_READ, STATUS))


def device_topic(device: str, suffix: str) -> str:
    """``sp/v1/{device}/{suffix}``."""
    return f"{PREFIX}{device}/{suffix}"


def parse(topic: str) -> tuple[str, str] | None:
    """``(device, suffix)`` of a topic under the prefix, or None."""
    if not topic.startswith(PREFIX):
        return None
    device, _, suffix = topic[len(PREFIX) :].partition("/")
    return (device, suffix) if device and suffix else None


def subscriptions(group: str) -> list[tuple[str, int]]:
    """What a smartpole node subscribes to (QoS 1).

    Uplink goes through a shared subscription, so the nodes split it; command replies and
    status reach every node, since only the node that sent a command waits for its reply and
    every node keeps the presence map.
    """
    shared = [f"$share/{group}/{PREFIX}+/{s}" for s in (*DEVICE_UPLINK, *GATEWAY_UPLINK)]
    every = [f"{PREFIX}+/{RPC_RESPONSE}+", f"{PREFIX}+/{GW_RPC}", f"{PREFIX}+/{STATUS}"]
    return [(f, 1) for f in [*shared, *every]]


def unshare(topic_filter: str) -> str:
    """A topic filter without its ``$share/{group}/`` prefix."""
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        return parts[2] if len(parts) == 3 else ""
    return topic_filter


def covers(allowed: str, wanted: str) -> bool:
    """Whether the filter ``allowed`` includes every topic the filter (or name) ``wanted`` does."""
    a, w = allowed.split("/"), wanted.split("/")
    for i, level in enumerate(a):
        if level == "#":
            return True
        if i >= len(w) or w[i] == "#" or (level != "+" and (w[i] == "+" or level != w[i])):
            return False
    return len(a) == len(w)


def may(
    username: str, topic: str, action: str, service_user: str, *, gateway: bool = False
) -> bool:
    """Whether ``username`` may ``publish`` to a topic or ``subscribe`` to a filter
    (``gateway``: the user is a gateway, which has the gateway API's topics too)."""
    wanted = unshare(topic)
    if not wanted or (action == "publish" and ("+" in wanted or "#" in wanted)):
        return False
    if username == service_user:
        rules = SERVICE_WRITE if action == "publish" else SERVICE_READ
    elif not USERNAME_RE.match(username):
        return False
    elif action == "publish":
        write = (*DEVICE_WRITE, *GATEWAY_WRITE) if gateway else DEVICE_WRITE
        tb = (*TB_UPLINK, *TB_GATEWAY_UPLINK) if gateway else TB_UPLINK
        rules = (*(device_topic(username, s) for s in write), *tb)
    elif action == "subscribe":
        read = (*DEVICE_READ, *GATEWAY_READ) if gateway else DEVICE_READ
        rules = tuple(device_topic(username, s) for s in read)
    else:
        return False
    return any(covers(rule, wanted) for rule in rules)
