"""The one device API the transports share (ThingsBoard's device and gateway APIs), and the
platform behind it.

``api`` holds the rules (:class:`DeviceApi`); ``service`` the platform side over the registry,
the ingest pipeline and the command control (:class:`DeviceService`); ``platform`` the
Protocol between them; ``gateway`` the gateway API's messages and a gateway's sub-devices;
``operations`` the operations and answers by name. See ``docs/architecture.md``.
"""

from __future__ import annotations

from smartpole.devices.api import DeviceApi, Session
from smartpole.devices.gateway import SubDevices
from smartpole.devices.operations import Answer, Ingested, Operation, Reply
from smartpole.devices.platform import DevicePlatform, SessionLimits
from smartpole.devices.service import DeviceService

__all__ = [
    "Answer",
    "DeviceApi",
    "DevicePlatform",
    "DeviceService",
    "Ingested",
    "Operation",
    "Reply",
    "Session",
    "SessionLimits",
    "SubDevices",
]
