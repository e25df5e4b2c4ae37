"""The worst state of every pole, per tenant, kept in memory for the city map.

Built at start from the store (active alarms on poles, devices offline), then kept up to date
by events: alarm changes (an :class:`~smartpole.hub.alarms.store.Alarms` listener), committed
batches (a pipeline listener: a device's ``online`` reading or a reading from a device deemed
offline) and a sweep that takes those devices' presence and, now and then, every device's.

Memory grows with the problems, not the fleet: only active alarms on poles, offline devices on
poles, and the poles whose state is not ok in some view are held.

A tenant's state of a pole is computed only from what that tenant sees: the active alarms
propagated to it and its own devices on the pole. The police see their camera's state, never
the lighting department's lamp alarm on the same pole. The city operator sees everything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from sqlalchemy import Engine, case, select

from smartpole.hub.alarms.store import ACTIVE
from smartpole.hub.alarms.tables import alarm_tenants, alarms
from smartpole.model.alarms import Alarm, AlarmChange
from smartpole.model.lifecycle import Severity
from smartpole.model.map import CITY_VIEW, PoleState, StateChange, state_of
from smartpole.model.writes import WriteBatch
from smartpole.registry.access import Principal
from smartpole.store.schema import devices

__all__ = ["PoleStates", "PoleStatesListener", "pole_of_alarm"]

log = logging.getLogger(__name__)
PRESENCE_KEY = "online"  # the reading a session's start and end record (devices.service)
IsOnline = Callable[[int, int | None], bool]


class PoleStatesListener(Protocol):
    """Told what changed, on the event loop, after the index changed."""

    def on_states(self, changes: Sequence[StateChange]) -> None:
        """Poles whose state changed in a view."""

    def on_presence(self, device_id: int, online: bool) -> None:
        """A device on a pole went online or offline."""


def pole_of_alarm(alarm: Alarm) -> int | None:
    """The pole an alarm shows on: its own pole, or the pole it is raised on."""
    if alarm.originator_type == "pole":
        return alarm.originator_id
    return alarm.pole_id


class PoleStates:
    """Every pole's state in every view (``CITY_VIEW`` or a tenant id); ok poles are not held.

    ``is_online(device_id, last_seen)`` is the platform's one presence rule; ``refresh_s`` is
    how often every device's presence is read again (a device falls silent without an event).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        is_online: IsOnline,
        listeners: Iterable[PoleStatesListener] = (),
        refresh_s: float = 30.0,
    ) -> None:
        self.engine = engine
        self.is_online = is_online
        self.refresh_s = refresh_s
        self.listeners = tuple(listeners)
        self.version = 0  # bumped with every change of any view
        # pole -> alarm id -> (state, tenants that see it)
        self._alarms: dict[int, dict[int, tuple[PoleState, frozenset[int]]]] = {}
        self._offline: dict[int, int] = {}  # device -> its pole
        self._offline_at: dict[int, dict[int, int]] = {}  # pole -> offline device -> owner
        self._views: dict[int, dict[int, PoleState]] = {}  # view -> pole -> state (not ok)
        self._pole_views: dict[int, set[int]] = {}  # pole -> views where it is not ok
        self._pending: set[int] = set()  # devices whose presence may have changed
        self._alarm_changes = 0  # alarm changes told so far (a refresh must not undo one)
        self._refreshed = 0.0

    # -- reads -----------------------------------------------------------------------------
    @staticmethod
    def view_of(who: Principal) -> int:
        """The view a caller sees: the city's for an operator tenant, else its own."""
        return CITY_VIEW if who.is_operator else who.tenant_id

    def states(self, who: Principal) -> dict[int, PoleState]:
        """The poles that are not ok in the caller's view, and their states (a copy)."""
        return dict(self._views.get(self.view_of(who), {}))

    def state(self, who: Principal, pole_id: int) -> PoleState:
        """One pole's state in the caller's view."""
        return self._views.get(self.view_of(who), {}).get(pole_id, PoleState.OK)

    def is_offline(self, device_id: int) -> bool:
        """Whether a device on a pole is offline, as the map shows it."""
        return device_id in self._offline

    @property
    def offline(self) -> int:
        """How many devices on poles are offline."""
        return len(self._offline)

    def held(self) -> int:
        """How many entries the index holds (alarms, offline devices, poles not ok per view)."""
        return (
            sum(len(a) for a in self._alarms.values())
            + len(self._offline)
            + sum(len(v) for v in self._views.values())
        )

    # -- building --------------------------------------------------------------------------
    async def start(self) -> None:
        """Read the active alarms and every device's presence from the store."""
        found, offline = await asyncio.to_thread(self._load)
        self._alarms = found
        self._set_offline(offline)
        self._refreshed = time.monotonic()
        for pole in {*self._alarms, *self._offline_at}:
            self._recompute(pole, [])

    def _set_offline(self, offline: dict[int, tuple[int, int]]) -> None:
        self._offline = {d: p for d, (p, _) in offline.items()}
        self._offline_at = {}
        for device_id, (pole_id, owner_id) in offline.items():
            self._offline_at.setdefault(pole_id, {})[device_id] = owner_id

    def _load(
        self,
    ) -> tuple[dict[int, dict[int, tuple[PoleState, frozenset[int]]]], dict[int, tuple[int, int]]]:
        pole = case(
            (alarms.c.originator_type == "pole", alarms.c.originator_id), else_=alarms.c.pole_id
        )
        q = (
            select(alarms.c.id, pole.label("pole"), alarms.c.severity, alarm_tenants.c.tenant_id)
            .join(alarm_tenants, alarm_tenants.c.alarm_id == alarms.c.id, isouter=True)
            .where(alarms.c.status.in_(ACTIVE), pole.is_not(None))
        )
        found: dict[int, dict[int, tuple[PoleState, frozenset[int]]]] = {}
        with self.engine.connect() as conn:
            for alarm_id, pole_id, severity, tenant in conn.execute(q):
                at = found.setdefault(pole_id, {})
                state, tenants = at.get(alarm_id, (state_of(Severity(severity)), frozenset()))
                at[alarm_id] = (state, tenants | {tenant} if tenant is not None else tenants)
        return found, self._presence(None)

    def _presence(self, ids: Sequence[int] | None) -> dict[int, tuple[int, int]]:
        """The offline devices on poles, of ``ids`` (None: all), with their pole and owner."""
        q = select(devices.c.id, devices.c.pole_id, devices.c.owner_id, devices.c.last_seen).where(
            devices.c.pole_id.is_not(None)
        )
        if ids is not None:
            q = q.where(devices.c.id.in_(ids))
        offline: dict[int, tuple[int, int]] = {}
        is_online = self.is_online
        with self.engine.connect() as conn:
            for device_id, pole_id, owner_id, last_seen in conn.execute(q):
                if not is_online(device_id, last_seen):
                    offline[device_id] = (pole_id, owner_id)
        return offline

    # -- events ----------------------------------------------------------------------------
    def on_alarm(self, change: AlarmChange) -> None:
        """An alarm listener: an active alarm counts on its pole, a cleared one no more."""
        alarm = change.alarm
        pole_id = pole_of_alarm(alarm)
        if pole_id is None:
            return
        self._alarm_changes += 1
        at = self._alarms.setdefault(pole_id, {})
        if alarm.status.active:
            at[alarm.id] = (state_of(alarm.severity), frozenset(change.tenants))
        elif at.pop(alarm.id, None) is None:
            return
        if not at:
            del self._alarms[pole_id]
        changes: list[StateChange] = []
        self._recompute(pole_id, changes)
        self._tell(changes)

    async def on_batch(self, batch: WriteBatch) -> None:
        """A pipeline listener: note the devices whose presence may have changed (a session
        began or ended, or a device deemed offline was heard from); ``sweep`` reads them."""
        for reading in batch.readings:
            if reading.key == PRESENCE_KEY:
                self._pending.add(reading.device_id)
        if self._offline:
            self._pending.update(batch.seen.keys() & self._offline.keys())

    async def sweep(self) -> None:
        """Read the presence of the noted devices, or every ``refresh_s`` of every device, and
        update the poles they are on (the platform calls this every second)."""
        if time.monotonic() - self._refreshed >= self.refresh_s:
            await self.refresh()
            return
        if not self._pending:
            return
        ids, self._pending = sorted(self._pending), set()
        self._apply(ids, await asyncio.to_thread(self._presence, ids))

    async def refresh(self) -> None:
        """Read every device's presence (a device falls silent without an event; devices are
        added, moved and removed) and the active alarms (another node may have changed one)
        again, and update the poles whose state that changes."""
        self._pending = set()
        self._refreshed = time.monotonic()
        told = self._alarm_changes
        found, offline = await asyncio.to_thread(self._load)
        touched: set[int] = set()
        if told == self._alarm_changes:  # else this read may be older than a change told
            for pole_id in self._alarms.keys() | found.keys():
                if self._alarms.get(pole_id) != found.get(pole_id):
                    touched.add(pole_id)
            self._alarms = found
        self._apply(sorted({*offline, *self._offline}), offline, touched)

    def _apply(
        self, ids: Sequence[int], found: dict[int, tuple[int, int]], touched: set[int] | None = None
    ) -> None:
        """Take the presence of ``ids`` as read (``found``: the offline ones, with pole and
        owner); tell presence changes, then the state changes of their poles and ``touched``."""
        changes: list[StateChange] = []
        touched = set() if touched is None else touched
        for device_id in ids:
            was = self._offline.get(device_id)
            now = found.get(device_id)
            if (was is None) == (now is None) and (now is None or was == now[0]):
                continue
            if was is not None:
                del self._offline[device_id]
                self._offline_at[was].pop(device_id, None)
                if not self._offline_at[was]:
                    del self._offline_at[was]
                touched.add(was)
            if now is not None:
                self._offline[device_id] = now[0]
                self._offline_at.setdefault(now[0], {})[device_id] = now[1]
                touched.add(now[0])
            for listener in self.listeners:
                listener.on_presence(device_id, now is None)
        for pole_id in sorted(touched):
            self._recompute(pole_id, changes)
        self._tell(changes)

    # -- the rule --------------------------------------------------------------------------
    def _recompute(self, pole_id: int, changes: list[StateChange]) -> None:
        """Compute the pole's state in every view it may be not ok in; note what changed."""
        at = self._alarms.get(pole_id, {})
        offline = self._offline_at.get(pole_id, {})
        views = {CITY_VIEW, *self._pole_views.get(pole_id, ()), *offline.values()}
        for _, tenants in at.values():
            views.update(tenants)
        for view in views:
            if view == CITY_VIEW:
                worst = max((s for s, _ in at.values()), default=PoleState.OK)
                if worst == PoleState.OK and offline:
                    worst = PoleState.OFFLINE
            else:
                worst = max((s for s, t in at.values() if view in t), default=PoleState.OK)
                if worst == PoleState.OK and view in offline.values():
                    worst = PoleState.OFFLINE
            self._put(view, pole_id, worst, changes)

    def _put(self, view: int, pole_id: int, state: PoleState, changes: list[StateChange]) -> None:
        held = self._views.get(view, {})
        if held.get(pole_id, PoleState.OK) == state:
            return
        if state == PoleState.OK:
            del held[pole_id]
            self._pole_views[pole_id].discard(view)
            if not self._pole_views[pole_id]:
                del self._pole_views[pole_id]
        else:
            self._views.setdefault(view, {})[pole_id] = state
            self._pole_views.setdefault(pole_id, set()).add(view)
        changes.append(StateChange(view, pole_id, state))

    def _tell(self, changes: list[StateChange]) -> None:
        if not changes:
            return
        self.version += 1
        for listener in self.listeners:
            try:
                listener.on_states(changes)
            except Exception:
                log.exception("pole state listener %r failed", listener)
