"""Fixtures for broker mode: a real Mosquitto per test and a platform consuming from it.

A module whose tests run in broker mode makes ``broker_platform`` its ``platform`` (so that
``client`` and ``city`` of ``fixtures_api`` use it too)::

    @pytest.fixture
    def platform(broker_platform: Platform) -> Platform:
        return broker_platform
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures_api import City, make_device, make_pole
from helpers import SERVICE, eventually, node_settings, sync_files
from mosquitto import Mosquitto
from smartpole.app import Platform
from smartpole.registry.assets import Assets
from smartpole.registry.broker import BrokerAccounts
from smartpole.store import Database
from smartpole.transport.broker.mosquitto import generate


@pytest.fixture
def broker(tmp_path: Path, database: Database) -> Iterator[Mosquitto]:
    """Mosquitto with the files of the (still empty) registry: the service user only."""
    root = tmp_path / "mosquitto"
    root.mkdir()
    files = generate(BrokerAccounts(Assets(database.engine)), SERVICE)
    (root / "passwd").write_text(files.passwd)
    (root / "acl").write_text(files.acl)
    m = Mosquitto(root, root / "passwd", root / "acl").start()
    try:
        yield m
    finally:
        m.stop()


@pytest.fixture
async def broker_platform(
    database: Database, tmp_path: Path, broker: Mosquitto
) -> AsyncIterator[Platform]:
    """A platform in broker mode (no built-in MQTT endpoint), connected to ``broker``."""
    p = Platform(node_settings(tmp_path, broker, "test-node"), db=database)
    await p.start()
    try:
        assert p.broker is not None
        consumer = p.broker

        async def up() -> bool:
            return consumer.ready  # connected, and the retained statuses read

        await eventually(up)
        yield p
    finally:
        await p.stop()


@pytest.fixture
async def broker_lamp(
    client: httpx.AsyncClient, city: City, platform: Platform, broker: Mosquitto
) -> dict[str, Any]:
    """A lamp of the lighting department, with its broker account in Mosquitto's files."""
    pole = await make_pole(client, city, "FT-SN-0001")
    body = await make_device(client, city, "lighting", "lamp", pole, name="lamp-1")
    await make_device(client, city, "lighting", "lamp", pole, name="lamp-2", port=2)
    sync_files(platform, broker)
    return body
