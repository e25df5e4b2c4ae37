"""An HTTP receiver of notifications for tests: a real server on a free port, that can go down
(its socket closed: connections refused) and come back on the same port."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import uvicorn

from helpers import free_port


class Receiver:
    """Records each POST's JSON body and headers; ``down()`` closes the port, ``up()`` opens it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.arrived = asyncio.Event()

    @property
    def url(self) -> str:
        """Where notifications go."""
        return f"http://127.0.0.1:{self.port}/notify"

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(orjson.loads(body))
        self.headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
        self.arrived.set()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def up(self) -> None:
        """Listen (again) on the port."""
        config = uvicorn.Config(
            self._app, port=self.port, log_level="warning", lifespan="off", interface="asgi3"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
            await asyncio.sleep(0.01)

    async def down(self) -> None:
        """Close the port: the next notification is refused."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = None
            self._task = None

    def entities(self) -> list[dict[str, Any]]:
        """Every entity received, in the order received."""
        return [e for body in self.bodies for e in body["data"]]

    async def wait_for(self, count: int) -> list[dict[str, Any]]:
        """Wait (at most 20 s) until at least ``count`` entities have arrived; return them."""
        async with asyncio.timeout(20):
            while len(self.entities()) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.entities()
