"""Registry look-ups that many sessions ask at once, answered together.

After a restart every gateway reconnects within seconds and names its sub-devices; asked one by
one, their look-ups queue for the thread pool and take the store's time one query each.
:class:`BatchedLookup` runs one look-up at a time in a thread and gives it everything asked
while the previous one ran: idle, an ask goes at once (no added latency); under a storm, one
query answers hundreds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["BatchedLookup"]

Ask = TypeVar("Ask")
Answer = TypeVar("Answer")


class BatchedLookup(Generic[Ask, Answer]):
    """Calls of ``look_up`` (blocking: it runs in a thread), given the asks gathered meanwhile
    and returning one answer per ask, in order. An exception fails every ask of its batch."""

    def __init__(self, look_up: Callable[[Sequence[Ask]], Sequence[Answer]]) -> None:
        self._look_up = look_up
        self._waiting: list[tuple[Ask, asyncio.Future[Answer]]] = []
        self._running: asyncio.Task[None] | None = None

    async def __call__(self, ask: Ask) -> Answer:
        """The answer to ``ask``, looked up with the others asked meanwhile."""
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting.append((ask, future))
        if self._running is None:
            self._running = asyncio.create_task(self._drain(), name="batched-lookup")
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[Ask, asyncio.Future[Answer]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    answers = await asyncio.to_thread(self._look_up, [ask for ask, _ in batch])
                except Exception as err:  # every ask of the batch gets it, to handle as its own
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(err)
                    continue
                for (_, future), answer in zip(batch, answers, strict=True):
                    if not future.done():  # its asker may have given up (cancelled)
                        future.set_result(answer)
        finally:  # cancelled (the loop ends): no asker waits for ever
            for _, future in [*batch, *self._waiting]:
                future.cancel()
            self._waiting = []
            self._running = None
