"""What a device is told when smartpole refuses, or quarantines, what it sent: one table.

Each error of the tree (:mod:`smartpole.errors`) has one MQTT 5 reason code (a PUBACK's, with
the error's detail as its Reason String) and one HTTP status (the problem+json answer of
:mod:`smartpole.api.problems` and the HTTP device API). MQTT 3.1.1 has no negative
acknowledgement: a refused QoS 1 publish ends the connection (the device must not believe it
was stored), a refused QoS 0 publish is dropped; both are logged naming the device. In broker
mode the broker acknowledged the device's publish already: a refusal is logged naming the
device and counted (``smartpole_messages_rejected{transport="broker"}``).

A message taken with values outside the catalog is a success, with a Reason String saying how
many were quarantined and a user property ``quarantined=N`` (MQTT 5); HTTP answers
``{"accepted": n, "quarantined": m}``. ``docs/device-makers.md`` ("What a refusal looks like")
shows the table to device makers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from smartpole.errors import (
    ClaimExpired,
    Conflict,
    DeviceOffline,
    Forbidden,
    InvalidInput,
    InvalidTransition,
    NotFound,
    Overloaded,
    PayloadError,
    PayloadTooLarge,
    SmartpoleError,
    StoreUnavailable,
    Throttled,
    Timeout,
    Unauthenticated,
)
from smartpole.metrics import Metrics
from smartpole.model.writes import Quarantine
from smartpole.transport.mqtt.reasons import Reason

__all__ = [
    "MAX_REASON",
    "REFUSALS",
    "Refusal",
    "http_status",
    "mqtt_reason",
    "noted",
    "reason_string",
    "told",
    "unheard",
]

log = logging.getLogger(__name__)

MAX_REASON = 200  # characters of a Reason String: enough for the detail and the first problem
INTERNAL_STATUS = 500


@dataclass(frozen=True, slots=True)
class Refusal:
    """How one error reaches the device: an MQTT 5 reason code and an HTTP status."""

    mqtt5: Reason
    http: int


REFUSALS: Final[dict[type[SmartpoleError], Refusal]] = {
    PayloadError: Refusal(Reason.PAYLOAD_FORMAT_INVALID, 422),  # 400 when the JSON is malformed
    InvalidInput: Refusal(Reason.PAYLOAD_FORMAT_INVALID, 422),  # 0x90 when it names a ``topic``
    PayloadTooLarge: Refusal(Reason.QUOTA_EXCEEDED, 413),
    Overloaded: Refusal(Reason.QUOTA_EXCEEDED, 503),
    Forbidden: Refusal(Reason.NOT_AUTHORIZED, 403),
    Unauthenticated: Refusal(Reason.NOT_AUTHORIZED, 401),
    Throttled: Refusal(Reason.QUOTA_EXCEEDED, 429),
    NotFound: Refusal(Reason.IMPLEMENTATION_SPECIFIC, 404),
    ClaimExpired: Refusal(Reason.IMPLEMENTATION_SPECIFIC, 409),
    InvalidTransition: Refusal(Reason.IMPLEMENTATION_SPECIFIC, 409),
    Conflict: Refusal(Reason.IMPLEMENTATION_SPECIFIC, 409),
    DeviceOffline: Refusal(Reason.IMPLEMENTATION_SPECIFIC, 409),
    StoreUnavailable: Refusal(Reason.IMPLEMENTATION_SPECIFIC, 503),
    Timeout: Refusal(Reason.IMPLEMENTATION_SPECIFIC, 504),
}
# An error smartpole did not raise on purpose (a bug): unspecified, a 500.
INTERNAL: Final = Refusal(Reason.UNSPECIFIED, INTERNAL_STATUS)


def refusal(err: BaseException) -> Refusal:
    """The table's row of ``err``: its own class's, else its nearest ancestor's."""
    for cls in type(err).__mro__:
        row = REFUSALS.get(cls)
        if row is not None:
            return row
    return INTERNAL


def mqtt_reason(err: BaseException) -> Reason:
    """The MQTT 5 PUBACK reason code of a refusal."""
    if isinstance(err, InvalidInput) and "topic" in err.fields:
        return Reason.TOPIC_NAME_INVALID  # a topic outside the device API, not a bad payload
    return refusal(err).mqtt5


def http_status(err: BaseException) -> int:
    """The HTTP status of a refusal."""
    if isinstance(err, PayloadError) and "pos" in err.fields:
        return 400  # malformed JSON; a well-formed body of the wrong shape is a 422
    return refusal(err).http


def reason_string(err: BaseException) -> str:
    """What went wrong, for a device's developer: the error's detail and its first problem
    with the place it was found (``body.room temp: ...``), at most :data:`MAX_REASON` long."""
    if not isinstance(err, SmartpoleError):
        return "internal error"
    text = err.detail
    if isinstance(err, InvalidInput) and err.errors:
        first = err.errors[0]
        msg = str(first.get("msg", ""))
        if msg not in text:  # payload errors name their first problem in the detail already
            where = ".".join(str(part) for part in first.get("loc", ()))
            text += f"; {where}: {msg}" if where else f"; {msg}"
    return _clipped(text)


def _clipped(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def told(err: BaseException) -> dict[str, Any]:
    """The MQTT 5 properties of a refusal's PUBACK: its Reason String."""
    return {"reason_string": reason_string(err)}


def unheard(device: str, topic: str, err: BaseException, metrics: Metrics | None) -> None:
    """A refusal in broker mode, where the broker has acknowledged the device's publish
    already: logged naming the device, and counted."""
    log.warning(
        "broker: refused a message of device %s on %s: %s", device, topic, reason_string(err)
    )
    if metrics is not None:
        metrics.reject("broker", err)


def noted(note: Quarantine) -> dict[str, Any]:
    """The MQTT 5 properties of a PUBACK of a message with quarantined values."""
    return {
        "reason_string": _clipped(f"{note.count} value(s) quarantined: {note.first}"),
        "user_property": [("quarantined", str(note.count))],
    }
