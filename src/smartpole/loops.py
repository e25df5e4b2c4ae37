"""A background round of work, run again as soon as it is woken or after the pause the round
asked for: what the webhook deliveries and the NGSI-LD notifications share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

__all__ = ["WorkLoop"]

log = logging.getLogger(__name__)


class WorkLoop:
    """Runs ``work`` (which returns how many seconds may pass before the next round) until
    stopped; :meth:`wake` starts the next round at once, from this loop or (``threadsafe``)
    from a worker thread. A failed round is logged and tried again after a second; stopping
    lets the round in flight finish."""

    def __init__(self, name: str, work: Callable[[], Awaitable[float]]) -> None:
        self.name = name
        self.work = work
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start the rounds (in the running event loop)."""
        self._loop = asyncio.get_running_loop()
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop after the round in flight."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    def wake(self, *, threadsafe: bool = False) -> None:
        """Run the next round now (``threadsafe``: called from another thread)."""
        loop = self._loop
        if not threadsafe:
            self._wake.set()
        elif loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                wait_s = await self.work()
            except Exception:
                log.exception("%s failed", self.name)
                wait_s = 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait_s)
