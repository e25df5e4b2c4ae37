"""Commands to devices that speak HTTP: ThingsBoard's long poll ``GET /api/v1/{token}/rpc``.

A device that polls is reachable while its request is open; a command sent meanwhile answers
that request. This is a command channel like an MQTT endpoint's (``send``, ``is_connected``),
held in this node's memory: behind a load balancer a command reaches an HTTP device from the
node its poll is open on, and a persistent command waits for the device's next poll on any node.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["ATTRIBUTES", "MAX_POLL_MS", "RPC", "Poll", "Polls"]

MAX_POLL_MS = 60_000  # a longer poll is cut to this (proxies close idle requests anyway)


RPC = "rpc"  # a poll for the next command
ATTRIBUTES = "attributes"  # a poll for the next shared-attribute update

Poll = asyncio.Future[dict[str, Any]]


class Polls:
    """The open polls, by what they wait for and device: a command completes the device's oldest
    command poll, a shared-attribute update every attribute poll."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, int], list[Poll]] = {}

    def is_connected(self, device_id: int) -> bool:
        """Whether the device has a poll of either kind open here."""
        return any(
            not f.done()
            for kind in (RPC, ATTRIBUTES)
            for f in self._open.get((kind, device_id), [])
        )

    def waiting(self, device_id: int, kind: str = RPC) -> int:
        """How many polls of this kind the device has open here."""
        return sum(not f.done() for f in self._open.get((kind, device_id), []))

    async def send(self, device_id: int, request_id: int, method: str, params: Any) -> bool:
        """Answer the device's oldest open command poll; False when it has none."""
        for future in self._open.get((RPC, device_id), ()):
            if not future.done():
                future.set_result({"id": request_id, "method": method, "params": params})
                return True
        return False

    def push_attributes(self, device_id: int, values: dict[str, Any]) -> bool:
        """Answer the device's open attribute polls with the update; False when it has none."""
        answered = False
        for future in self._open.get((ATTRIBUTES, device_id), ()):
            if not future.done():
                future.set_result(values)
                answered = True
        return answered

    def open(self, device_id: int, kind: str = RPC) -> Poll:
        """A new poll of the device; ``close`` it when the request ends."""
        future: Poll = asyncio.get_running_loop().create_future()
        self._open.setdefault((kind, device_id), []).append(future)
        return future

    def stop(self) -> None:
        """End every open poll (the node is shutting down): each answers "poll again"."""
        for polls in self._open.values():
            for future in polls:
                future.cancel()

    def close(self, device_id: int, future: Poll, kind: str = RPC) -> None:
        """Forget a poll (answered, timed out, or its client went away)."""
        polls = self._open.get((kind, device_id))
        if polls is None:
            return
        if future in polls:
            polls.remove(future)
        if not polls:
            del self._open[(kind, device_id)]
