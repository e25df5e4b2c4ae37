"""A connection's life: CONNECT, CONNACK, AUTH, PINGREQ, PINGRESP and DISCONNECT."""

from __future__ import annotations

from smartpole.transport.mqtt.codec.packets import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    MalformedPacket,
    PingReq,
    PingResp,
    Properties,
    ProtocolError,
    UnsupportedProtocol,
    Will,
)
from smartpole.transport.mqtt.codec.primitives import (
    _BYTES,
    _U16_FROM,
    _U16_PACK,
    _bin,
    _end,
    _frame,
    _read_bin,
    _read_str,
    _str,
    validate_topic_name,
)
from smartpole.transport.mqtt.codec.properties import (
    _CONNACK_V4_CODES,
    _T,
    _WILL,
    _properties,
    _read_properties,
    _reason,
)

# --- decoding -------------------------------------------------------------------------------


def _decode_connect(flags: int, body: bytes, version: int) -> Connect:
    (size,) = _U16_FROM(body, 0)
    pos = 2 + size
    name = body[2:pos]
    level = body[pos]
    if name != b"MQTT" or level not in (4, 5):
        raise UnsupportedProtocol(f"protocol {name!r} level {level}", level)
    connect_flags = body[pos + 1]
    (keep_alive,) = _U16_FROM(body, pos + 2)
    pos += 4
    if connect_flags & 0x01:
        raise MalformedPacket("reserved connect flag set")
    has_will = connect_flags & 0x04
    will_qos = (connect_flags >> 3) & 3
    will_retain = connect_flags & 0x20
    has_password = connect_flags & 0x40
    has_username = connect_flags & 0x80
    if will_qos == 3:
        raise MalformedPacket("will QoS 3")
    if not has_will and (will_qos or will_retain):
        raise MalformedPacket("will QoS or retain without a will")
    if level == 4 and has_password and not has_username:
        raise MalformedPacket("password without user name")
    props: Properties = {}
    if level == 5:
        props, pos = _read_properties(body, pos, _T.CONNECT)
        if "authentication_data" in props and "authentication_method" not in props:
            raise ProtocolError("authentication data without authentication method")
    client_id, pos = _read_str(body, pos)
    will = None
    if has_will:
        will_props: Properties = {}
        if level == 5:
            will_props, pos = _read_properties(body, pos, _WILL)
        topic, pos = _read_str(body, pos)
        validate_topic_name(topic)
        payload, pos = _read_bin(body, pos)
        will = Will(topic, payload, will_qos, bool(will_retain), will_props)
    username = password = None
    if has_username:
        username, pos = _read_str(body, pos)
    if has_password:
        password, pos = _read_bin(body, pos)
    _end(body, pos)
    return Connect(
        level, client_id, bool(connect_flags & 0x02), keep_alive, username, password, will, props
    )


def _decode_connack(flags: int, body: bytes, version: int) -> ConnAck:
    ack_flags, code = body[0], body[1]
    if ack_flags & 0xFE:
        raise MalformedPacket("reserved CONNACK flags set")
    props: Properties = {}
    pos = 2
    if version == 5:
        props, pos = _read_properties(body, pos, _T.CONNACK)
        _reason(_T.CONNACK, code)
    elif code not in _CONNACK_V4_CODES:
        raise ProtocolError(f"CONNACK return code {code}")
    _end(body, pos)
    if ack_flags and code:
        raise ProtocolError("session present with a failure code")
    return ConnAck(code, bool(ack_flags), props)


def _decode_pingreq(flags: int, body: bytes, version: int) -> PingReq:
    _end(body, 0)
    return PingReq()


def _decode_pingresp(flags: int, body: bytes, version: int) -> PingResp:
    _end(body, 0)
    return PingResp()


def _decode_disconnect(flags: int, body: bytes, version: int) -> Disconnect:
    if version != 5 or not body:
        _end(body, 0)
        return Disconnect()
    props: Properties = {}
    if len(body) > 1:
        props, pos = _read_properties(body, 1, _T.DISCONNECT)
        _end(body, pos)
    return Disconnect(_reason(_T.DISCONNECT, body[0]), props)


def _decode_auth(flags: int, body: bytes, version: int) -> Auth:
    if version != 5:
        raise MalformedPacket("AUTH is reserved in MQTT 3.1.1")
    if not body:
        return Auth()
    props, pos = _read_properties(body, 1, _T.AUTH)
    _end(body, pos)
    if "authentication_method" not in props:
        raise ProtocolError("AUTH without authentication method")
    return Auth(_reason(_T.AUTH, body[0]), props)


# --- encoding -------------------------------------------------------------------------------


def _encode_connect(p: Connect, version: int) -> bytes:
    level = p.protocol_level
    if level not in (4, 5):
        raise UnsupportedProtocol(f"protocol level {level}", level)
    flags = 0x02 if p.clean_start else 0
    payload = [_str(p.client_id)]
    will = p.will
    if will is not None:
        if will.qos not in (0, 1, 2):
            raise ProtocolError(f"will QoS {will.qos}")
        validate_topic_name(will.topic)
        flags |= 0x04 | will.qos << 3 | (0x20 if will.retain else 0)
        if level == 5:
            payload.append(_properties(will.properties, _WILL))
        payload += (_str(will.topic), _bin(will.payload))
    if p.username is not None:
        flags |= 0x80
        payload.append(_str(p.username))
    if p.password is not None:
        if level == 4 and p.username is None:
            raise ProtocolError("MQTT 3.1.1 forbids a password without a user name")
        flags |= 0x40
        payload.append(_bin(p.password))
    head = b"\x00\x04MQTT" + bytes((level, flags)) + _U16_PACK(p.keep_alive)
    if level == 5:
        head += _properties(p.properties, _T.CONNECT)
    return _frame(0x10, head + b"".join(payload))


def _encode_connack(p: ConnAck, version: int) -> bytes:
    code = p.reason_code
    if version == 5:
        _reason(_T.CONNACK, code)
    elif code not in _CONNACK_V4_CODES:
        raise ProtocolError(f"CONNACK return code {code} does not exist in MQTT 3.1.1")
    if p.session_present and code:
        raise ProtocolError("session present with a failure code")
    body = bytes((1 if p.session_present else 0, code))
    if version == 5:
        body += _properties(p.properties, _T.CONNACK)
    return _frame(0x20, body)


def _encode_pingreq(p: PingReq, version: int) -> bytes:
    return b"\xc0\x00"


def _encode_pingresp(p: PingResp, version: int) -> bytes:
    return b"\xd0\x00"


def _encode_disconnect(p: Disconnect, version: int) -> bytes:
    if version != 5 or not (p.reason_code or p.properties):
        return b"\xe0\x00"
    body = _BYTES[_reason(_T.DISCONNECT, p.reason_code)]
    if p.properties:
        body += _properties(p.properties, _T.DISCONNECT)
    return _frame(0xE0, body)


def _encode_auth(p: Auth, version: int) -> bytes:
    if version != 5:
        raise ProtocolError("AUTH does not exist in MQTT 3.1.1")
    if not (p.reason_code or p.properties):
        return b"\xf0\x00"
    if "authentication_method" not in p.properties:
        raise ProtocolError("AUTH without authentication method")
    body = _BYTES[_reason(_T.AUTH, p.reason_code)] + _properties(p.properties, _T.AUTH)
    return _frame(0xF0, body)
