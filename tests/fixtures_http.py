"""Fixtures shared by the HTTP device API's, the hub's and the firmware tests: the app served on
a real port, and a firmware package uploaded through the API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from fixtures_api import City, app_serving
from helpers import free_port, upload
from smartpole.app import Platform


@asynccontextmanager
async def served(platform: Platform) -> AsyncIterator[int]:
    """The platform's app served by uvicorn on a free port, until the block ends."""
    port = free_port()
    config = uvicorn.Config(
        app_serving(platform.api_services()), port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def server_port(platform: Platform) -> AsyncIterator[int]:
    """The app served by uvicorn on a free port (the in-process client has no WebSocket)."""
    async with served(platform) as port:
        yield port


@pytest.fixture
async def package(client: httpx.AsyncClient, city: City) -> dict[str, Any]:
    """A firmware package (``helpers.FIRMWARE``, lamp-fw 2.0.0) the lighting department uploaded."""
    r = await upload(client, city)
    assert r.status_code == 201, r.text
    return dict(r.json())
