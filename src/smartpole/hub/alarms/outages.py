"""Pole outages: one root alarm for a pole that went dark, its devices' alarms grouped under it.

A pole that loses power or its gateway takes every device on it offline, and the default
``device-offline`` rule raises one ``device_offline`` alarm per device: four to six alarms for
one problem. When every device on a pole (at least two) has an active ``device_offline`` alarm,
:class:`PoleOutages` raises one ``pole_offline`` alarm on the pole, seen by every tenant whose
alarm it groups, and makes it the root of those alarms (and of any raised while it is active).
The first device heard from again clears the root (the pole has power again) and leaves the
devices still offline as alarms of their own.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import func, select, update

from smartpole.hub.alarms.store import ACTIVE, Alarms, alarm_of
from smartpole.hub.alarms.tables import alarms
from smartpole.model.alarms import Alarm, AlarmChange
from smartpole.model.lifecycle import Severity
from smartpole.store.schema import devices

__all__ = ["DEVICE_OFFLINE", "POLE_OFFLINE", "PoleOutages"]

log = logging.getLogger(__name__)
DEVICE_OFFLINE = "device_offline"  # the alarm type of the default device-offline rule
POLE_OFFLINE = "pole_offline"
MIN_DEVICES = 2  # a pole with one device is that device's problem


class PoleOutages:
    """An alarm listener that groups a dark pole's ``device_offline`` alarms under a root."""

    def __init__(self, alarms: Alarms, severity: Severity = Severity.MAJOR) -> None:
        self.alarms = alarms
        self.severity = severity

    async def on_alarm_change(self, change: AlarmChange) -> None:
        """Group a device's new offline alarm; end the pole's outage when a device is back."""
        a = change.alarm
        if a.type != DEVICE_OFFLINE or a.originator_type != "device" or a.pole_id is None:
            return
        if change.change == "raised":
            await self._offline(a.pole_id)
        elif change.change == "cleared" and a.root_id is not None:
            await self._back(a)

    async def _offline(self, pole_id: int) -> None:
        count, offline = await asyncio.to_thread(self._pole, pole_id)
        root = await asyncio.to_thread(self.alarms.active, "pole", pole_id, POLE_OFFLINE)
        if root is None:
            if count < MIN_DEVICES or len(offline) < count:
                return
            first = min(offline, key=lambda a: (a.first_ts, a.id))
            root = await self.alarms.raise_alarm(
                tenant_id=first.tenant_id,
                originator_type="pole",
                originator_id=pole_id,
                type=POLE_OFFLINE,
                severity=self.severity,
                details={"devices": count, "device_ids": sorted(a.originator_id for a in offline)},
                ts=max(a.first_ts for a in offline),
                pole_id=pole_id,
                propagate=sorted({a.tenant_id for a in offline}),
            )
            log.debug("pole %s is dark: %d devices offline, root alarm %d", pole_id, count, root.id)
        await asyncio.to_thread(self._group, root.id, [a.id for a in offline])

    async def _back(self, device_alarm: Alarm) -> None:
        root = await asyncio.to_thread(self.alarms.get, device_alarm.root_id or 0)
        if root is None or not root.status.active:
            return
        await self.alarms.clear(
            originator_type="pole",
            originator_id=root.originator_id,
            type=POLE_OFFLINE,
            ts=device_alarm.cleared_ts,
        )
        await asyncio.to_thread(self._ungroup, root.id)

    # -- database work (in worker threads) -------------------------------------------------
    def _pole(self, pole_id: int) -> tuple[int, list[Alarm]]:
        """How many devices the pole has, and their active offline alarms."""
        q = select(alarms).where(
            alarms.c.pole_id == pole_id,
            alarms.c.originator_type == "device",
            alarms.c.type == DEVICE_OFFLINE,
            alarms.c.status.in_(ACTIVE),
        )
        with self.alarms.engine.connect() as conn:
            count = conn.execute(
                select(func.count()).select_from(devices).where(devices.c.pole_id == pole_id)
            ).scalar_one()
            return int(count), [alarm_of(r) for r in conn.execute(q)]

    def _group(self, root_id: int, alarm_ids: list[int]) -> None:
        with self.alarms.engine.begin() as conn:
            conn.execute(
                update(alarms)
                .where(alarms.c.id.in_(alarm_ids), alarms.c.root_id.is_(None))
                .values(root_id=root_id)
            )

    def _ungroup(self, root_id: int) -> None:
        """The devices still offline after the pole is back are problems of their own."""
        with self.alarms.engine.begin() as conn:
            conn.execute(
                update(alarms)
                .where(alarms.c.root_id == root_id, alarms.c.status.in_(ACTIVE))
                .values(root_id=None)
            )
