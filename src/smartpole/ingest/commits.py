"""The commit of one message, as its acknowledgement waits for it.

The pipeline resolves one future per commit, shared by every message of one turn of the loop
(:meth:`smartpole.ingest.pipeline.Pipeline.enqueue`); a message with quarantined values needs
its own answer (how many, and why the first), without a future of its own for every message.
"""

from __future__ import annotations

import asyncio
from typing import Any

from smartpole.model.writes import Quarantine

__all__ = ["noting_quarantine"]


def noting_quarantine(committed: asyncio.Future[Any], note: Quarantine) -> asyncio.Future[Any]:
    """A future that resolves like ``committed`` (a commit shared by every message of one
    turn of the loop) but to a :class:`Quarantine` of this message's own quarantined values,
    for its acknowledgement. Only messages with quarantined values pay for it."""
    noted: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def settle(done: asyncio.Future[Any]) -> None:
        if noted.done():
            return
        if done.cancelled():
            noted.cancel()
        elif (err := done.exception()) is not None:
            noted.set_exception(err)
        else:
            noted.set_result(note)

    committed.add_done_callback(settle)
    noted.add_done_callback(_retrieve)
    return noted


def _retrieve(fut: asyncio.Future[Any]) -> None:
    # a connection that closed before acknowledging leaves the failure unread: not an error
    if not fut.cancelled():
        fut.exception()
