"""Commands to devices that speak HTTP: ThingsBoard's long poll ``GET /api/v1/{token}/rpc``.

A device that polls is reachable while its request is open; a command sent meanwhile answers
that request. This is a command channel like an MQTT endpoint's (``send``, ``is_connected``),
held in this node's memory: behind a load balancer a command reaches an HTTP device from the
node its poll is open on, and a persistent command waits for the device's next poll on any node.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["MAX_POLL_MS", "Polls"]

MAX_POLL_MS = 60_000  # a longer poll is cut to this (proxies close idle requests anyway)


class Polls:
    """The open polls, by device; a command completes the oldest one."""

    def __init__(self) -> None:
        self._open: dict[int, list[asyncio.Future[dict[str, Any]]]] = {}

    def is_connected(self, device_id: int) -> bool:
        """Whether the device has a poll open here."""
        return any(not f.done() for f in self._open.get(device_id, ()))

    async def send(self, device_id: int, request_id: int, method: str, params: Any) -> bool:
        """Answer the device's oldest open poll with the command; False when it has none."""
        for future in self._open.get(device_id, ()):
            if not future.done():
                future.set_result({"id": request_id, "method": method, "params": params})
                return True
        return False

    def open(self, device_id: int) -> asyncio.Future[dict[str, Any]]:
        """A new poll of the device; ``close`` it when the request ends."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._open.setdefault(device_id, []).append(future)
        return future

    def stop(self) -> None:
        """End every open poll (the node is shutting down): each answers "poll again"."""
        for polls in self._open.values():
            for future in polls:
                future.cancel()

    def close(self, device_id: int, future: asyncio.Future[dict[str, Any]]) -> None:
        """Forget a poll (answered, timed out, or its client went away)."""
        polls = self._open.get(device_id)
        if polls is None:
            return
        if future in polls:
            polls.remove(future)
        if not polls:
            del self._open[device_id]
