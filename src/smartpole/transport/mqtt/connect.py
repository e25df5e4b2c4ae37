"""MQTT CONNECT: who the client is (an access token, MQTT Basic credentials, or a provisioning
session), and the CONNACK that says so."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from smartpole.errors import StoreUnavailable
from smartpole.model.types import DeviceRef
from smartpole.transport.mqtt.codec import ConnAck, Connect
from smartpole.transport.mqtt.connection import Connection
from smartpole.transport.mqtt.reasons import Closing, ConnectReturn, Reason
from smartpole.transport.mqtt.session import DeviceSession, ProvisionSession

__all__ = ["accept"]

log = logging.getLogger("smartpole.transport.mqtt.session")

PROVISION = "provision"  # the user name (or client id) of a provisioning session
PROVISION_SESSION_S = 60.0  # ThingsBoard closes a provisioning session a minute after connect
MAX_KEEPALIVE_S = 1200


async def accept(conn: Connection, packet: Connect) -> None:
    """Answer a CONNECT: open the device's session, a provisioning session, or refuse."""
    conn.version = packet.protocol_level
    v5 = conn.version == 5
    props: dict[str, Any] = {}
    client_id = packet.client_id
    if not client_id:
        if not v5 and not packet.clean_start:
            conn.write(ConnAck(reason_code=ConnectReturn.IDENTIFIER_REJECTED))
            raise Closing(
                Reason.CLIENT_IDENTIFIER_NOT_VALID, "empty client id with a persistent session"
            )
        client_id = f"sp-{uuid.uuid4().hex[:16]}"
        if v5:
            props["assigned_client_identifier"] = client_id
    if PROVISION in (packet.username, packet.client_id):
        _provisioning(conn, client_id, props)
        return
    try:
        device, bad_credentials, why = await _authenticate(conn, packet)
    except StoreUnavailable as err:
        # Tell the device to come back later rather than accept what cannot be stored;
        # 3.1.1's nearest code is "server unavailable".
        code = Reason.SERVER_BUSY if v5 else ConnectReturn.SERVER_UNAVAILABLE
        _refuse(conn, code, client_id, f"server busy: {err}")
        return
    if device is None:
        if bad_credentials:
            code = (
                Reason.BAD_USER_NAME_OR_PASSWORD if v5 else ConnectReturn.BAD_USER_NAME_OR_PASSWORD
            )
        else:  # no token at all
            code = Reason.NOT_AUTHORIZED if v5 else ConnectReturn.NOT_AUTHORIZED
        _refuse(conn, code, client_id, why)
        return
    conn.client_id = client_id
    conn.device = device
    conn.problem_info = packet.properties.get("request_problem_information", 1) != 0
    conn.will = packet.will
    keepalive = packet.keep_alive
    if v5 and (keepalive == 0 or keepalive > MAX_KEEPALIVE_S):
        keepalive = MAX_KEEPALIVE_S
        props["server_keep_alive"] = keepalive
    conn.keepalive = keepalive
    if conn.timer is not None:
        conn.timer.cancel()
    period = keepalive / 2 if keepalive else 60.0
    conn.timer = asyncio.get_running_loop().call_later(period, conn.check_alive)
    if v5:
        props.update(
            receive_maximum=conn.limits.max_inflight,
            maximum_packet_size=conn.limits.max_payload + 1024,
            maximum_qos=1,
            retain_available=0,
            topic_alias_maximum=0,
            subscription_identifier_available=0,
            shared_subscription_available=0,
            wildcard_subscription_available=1,
        )
    session = DeviceSession(conn, device)
    conn.session = session
    present = conn.endpoint.attach(conn, packet.clean_start, packet.properties)
    conn.write(ConnAck(reason_code=0, session_present=present, properties=props))
    log.debug(
        "MQTT device %s (%s) connected from %s, MQTT %s",
        device.id,
        device.name,
        conn.peer,
        "5.0" if v5 else "3.1.1",
    )
    await conn.api.platform.connected(device)
    if any(conn.subscribed_to(topic) is not None for topic in session.commands()):
        await conn.api.platform.rpc_ready(device)  # a resumed session with its subscriptions


def _refuse(conn: Connection, code: int, client_id: str, why: str) -> None:
    """Answer a CONNECT with a refusal ``code`` and close."""
    conn.write(ConnAck(reason_code=code))
    log.warning("MQTT CONNECT refused from %s (client %r): %s", conn.peer, client_id, why)
    conn.closed = True
    if conn.transport is not None:
        conn.transport.close()


async def _authenticate(conn: Connection, packet: Connect) -> tuple[DeviceRef | None, bool, str]:
    """The device of a CONNECT, whether its credentials were bad, and why it was refused.

    The access token (cached) first, then MQTT Basic credentials, as ThingsBoard checks.
    """
    loop = asyncio.get_running_loop()
    username = packet.username or None
    if username:
        device = await loop.run_in_executor(None, conn.api.authenticate, username)
        if device is not None:
            return device, False, ""
    elif not packet.client_id:
        return None, False, "no access token"
    password = None if packet.password is None else packet.password.decode("utf-8", "replace")
    auth = await loop.run_in_executor(
        None, conn.api.authenticate_basic, packet.client_id, username, password
    )
    if auth.device is not None:
        return auth.device, False, ""
    if auth.wrong_password:
        return None, True, "wrong password for MQTT Basic credentials"
    if username:
        return None, True, "unknown access token or MQTT Basic user name"
    return None, False, "no access token, and the client id has no MQTT Basic credentials"


def _provisioning(conn: Connection, client_id: str, props: dict[str, Any]) -> None:
    """Accept a provisioning session: it may only ask for credentials, for a minute."""
    conn.session = ProvisionSession(conn)
    conn.client_id = client_id
    if conn.timer is not None:
        conn.timer.cancel()
    conn.timer = asyncio.get_running_loop().call_later(PROVISION_SESSION_S, conn.check_alive)
    conn.write(ConnAck(reason_code=0, properties=props))
    log.info("MQTT provisioning session from %s (client %r)", conn.peer, client_id)
