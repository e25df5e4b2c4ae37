"""The live stream of alarm changes, fanned out to WebSocket subscribers.

Each subscriber has a bounded queue; one that falls behind loses the oldest changes (and is
told how many) instead of slowing the hub down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from smartpole.model.alarms import AlarmChange
from smartpole.registry.access import Principal

__all__ = ["AlarmStream", "Subscription"]


@dataclass(eq=False)
class Subscription:
    """One subscriber: what it may see and the changes waiting for it."""

    who: Principal
    queue: asyncio.Queue[AlarmChange] = field(default_factory=lambda: asyncio.Queue(1000))
    dropped: int = 0

    def sees(self, change: AlarmChange) -> bool:
        """Whether the subscriber's tenant sees the alarm."""
        return self.who.is_operator or self.who.tenant_id in change.tenants


class AlarmStream:
    """Alarm changes to every subscriber that may see them."""

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()

    def publish(self, change: AlarmChange) -> None:
        """Hand a change to each subscriber that sees it (an ``Alarms`` listener)."""
        for sub in self._subs:
            if not sub.sees(change):
                continue
            if sub.queue.full():
                sub.queue.get_nowait()
                sub.dropped += 1
            sub.queue.put_nowait(change)

    @contextlib.contextmanager
    def subscribe(self, who: Principal) -> Iterator[Subscription]:
        """Receive changes until the block ends."""
        sub = Subscription(who)
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)

    def __len__(self) -> int:
        return len(self._subs)
