"""Live updates for the console: what changes, to each open socket that may see it.

One :class:`Live` per platform. It is told, on the event loop, of every committed batch (a
pipeline listener), alarm change (an alarm listener), command change (a control listener),
pole state change and device presence change (a :class:`~smartpole.hub.poles.PoleStates`
listener), and hands each to the watchers that asked for it and may see it:

- ``map``: pole state changes of the watcher's view, gathered and sent at most every
  ``states_interval`` seconds as one message;
- ``pole``: the latest values, presence and commands of the watched pole's devices the watcher
  may see (the API decides which, when the pole is chosen), and the alarms on that pole it sees;
- ``alarms``: every alarm change it sees.

Each watcher has a bounded queue: one that falls behind loses the oldest messages and is told
how many, so a slow client never slows ingest or the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from smartpole.hub.poles import PoleStates, pole_of_alarm
from smartpole.model.alarms import AlarmChange
from smartpole.model.commands import Command
from smartpole.model.map import CITY_VIEW, StateChange
from smartpole.model.types import Value
from smartpole.model.writes import WriteBatch
from smartpole.registry.access import Principal

__all__ = ["Live", "Message", "Watcher"]

MessageType = Literal["latest", "online", "alarm", "command", "states"]
Message = tuple[MessageType, Any]
"""What a watcher is sent, as domain values; the API encodes each as JSON:
``("latest", (device_id, {key: (ts, value)}))``, ``("online", (device_id, online))``,
``("alarm", AlarmChange)``, ``("command", Command)``, ``("states", [(pole_id, state), ...])``."""


@dataclass(eq=False)
class Watcher:
    """One open socket: who it is, what it asked for, and its messages waiting."""

    who: Principal
    capacity: int
    map: bool = False
    alarms: bool = False
    pole: int | None = None
    devices: frozenset[int] = frozenset()  # the watched pole's devices the watcher may see
    dropped: int = 0  # messages lost since the last time the client was told
    queue: deque[Message] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def view(self) -> int:
        """The view of pole states it sees."""
        return PoleStates.view_of(self.who)

    def sees(self, change: AlarmChange) -> bool:
        """Whether the watcher's tenant sees the alarm."""
        return self.who.is_operator or self.who.tenant_id in change.tenants

    def put(self, message: Message) -> None:
        """Queue a message; when full, the oldest one goes."""
        if len(self.queue) >= self.capacity:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(message)
        self.ready.set()

    async def take(self) -> list[Message]:
        """Wait for messages and take them all."""
        await self.ready.wait()
        self.ready.clear()
        out = list(self.queue)
        self.queue.clear()
        return out


class Live:
    """The watchers and the fan-out of changes to them."""

    def __init__(self, *, capacity: int = 1000, states_interval: float = 0.25) -> None:
        self.capacity = capacity
        self.states_interval = states_interval
        self._watchers: set[Watcher] = set()
        self._by_device: dict[int, set[Watcher]] = {}
        self._states: dict[int, dict[int, int]] = {}  # view -> pole -> state, not sent yet
        self._flush: asyncio.TimerHandle | None = None
        self._flushed = 0.0

    def __len__(self) -> int:
        return len(self._watchers)

    @contextlib.contextmanager
    def watch(self, who: Principal) -> Iterator[Watcher]:
        """A watcher for the caller until the block ends."""
        watcher = Watcher(who, self.capacity)
        self._watchers.add(watcher)
        try:
            yield watcher
        finally:
            self._watchers.discard(watcher)
            self.follow_pole(watcher, None, ())

    def follow_pole(self, watcher: Watcher, pole_id: int | None, device_ids: Sequence[int]) -> None:
        """Watch this pole and these of its devices (replacing an earlier pole)."""
        for device_id in watcher.devices:
            at = self._by_device.get(device_id)
            if at is not None:
                at.discard(watcher)
                if not at:
                    del self._by_device[device_id]
        watcher.pole = pole_id
        watcher.devices = frozenset(device_ids)
        for device_id in watcher.devices:
            self._by_device.setdefault(device_id, set()).add(watcher)

    # -- listeners -------------------------------------------------------------------------
    async def on_batch(self, batch: WriteBatch) -> None:
        """A pipeline listener: the newest committed value of each key of watched devices."""
        if not self._by_device:
            return
        values: dict[int, dict[str, tuple[int, Value]]] = {}
        by_device = self._by_device
        for r in batch.readings:
            if r.device_id in by_device:
                keys = values.setdefault(r.device_id, {})
                old = keys.get(r.key)
                if old is None or r.ts >= old[0]:
                    keys[r.key] = (r.ts, r.value)
        for device_id, keys in values.items():
            for watcher in by_device.get(device_id, ()):
                watcher.put(("latest", (device_id, keys)))

    def on_alarm(self, change: AlarmChange) -> None:
        """An alarm listener: to watchers of all alarms, or of its pole, that see it."""
        pole_id = pole_of_alarm(change.alarm)
        for watcher in self._watchers:
            wants = watcher.alarms or (pole_id is not None and watcher.pole == pole_id)
            if wants and watcher.sees(change):
                watcher.put(("alarm", change))

    def on_command(self, command: Command) -> None:
        """A control listener: a command's new state, to the watchers of its device."""
        for watcher in self._by_device.get(command.device_id, ()):
            watcher.put(("command", command))

    def on_presence(self, device_id: int, online: bool) -> None:
        """A device on a watched pole went online or offline."""
        for watcher in self._by_device.get(device_id, ()):
            watcher.put(("online", (device_id, online)))

    def on_states(self, changes: Sequence[StateChange]) -> None:
        """Pole states changed: gather them, and send them at most every ``states_interval``."""
        for change in changes:
            self._states.setdefault(change.view, {})[change.pole_id] = int(change.state)
        if self._flush is None:
            loop = asyncio.get_running_loop()
            wait = max(0.0, self._flushed + self.states_interval - loop.time())
            self._flush = loop.call_later(wait, self._send_states)

    def _send_states(self) -> None:
        self._flush = None
        self._flushed = asyncio.get_running_loop().time()
        pending, self._states = self._states, {}
        for watcher in self._watchers:
            if not watcher.map:
                continue
            view = CITY_VIEW if watcher.who.is_operator else watcher.who.tenant_id
            changed = pending.get(view)
            if changed:
                watcher.put(("states", sorted(changed.items())))
