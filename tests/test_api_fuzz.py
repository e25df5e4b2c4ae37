"""The REST API fuzzed from its own OpenAPI document (schemathesis): no input gets a 5xx, every
answer's status code, content type and body are the ones the document declares.

One real ``uvicorn`` per engine serves the app on a free port for the whole module; every API
operation is one test that sends generated requests, valid and invalid, authenticated as the
city operator's admin (the key that may reach every route). ``FUZZ_EXAMPLES`` sets the examples
per operation (``make test``: a few, on both engines; ``make fuzz``: many).
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation.case import Case

from pg import PostgresCluster
from smartpole.api import create_app
from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.model.types import Role
from smartpole.store import Database

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))
# The short run (make test) tries the same cases every time, so CI is repeatable; a longer one
# (make fuzz, FUZZ_EXAMPLES=…) searches anew each time.
REPEATABLE = "FUZZ_EXAMPLES" not in os.environ
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
START_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    """A platform served by uvicorn in a thread of its own, and the city operator's tenant id."""

    platform: Platform
    base_url: str
    city_id: int


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        """Not in a worker thread: the test runner owns the signals."""


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ],
)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The app on a real socket over a freshly migrated database of one engine."""
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    cluster: PostgresCluster | None = None
    pg_name = f"t_{uuid.uuid4().hex[:16]}"
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir}/smartpole.db"
    else:
        cluster = request.getfixturevalue("pg_cluster")
        template = request.getfixturevalue("pg_template")
        url = Settings(db=cluster.create_database(pg_name, template)).database_url
    db = Database(url)
    db.upgrade()
    platform = Platform(Settings(data_dir=data_dir, batch_age_ms=2, mqtt_port=0), db=db)
    port = _free_port()
    app = create_app(platform.api_services(), lifecycle=platform)
    config = uvicorn.Config(app, port=port, log_level="warning", lifespan="on", loop="asyncio")
    server = _Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    started = threading.Event()
    for _ in range(int(START_TIMEOUT_S / 0.05)):
        if server.started or not thread.is_alive():
            break
        started.wait(0.05)
    assert server.started, "uvicorn did not start"
    city = platform.tenants.create("city", "City", True)
    # A device of the city's own: ids 1 lead somewhere, and no fuzzed DELETE can remove the
    # tenant whose keys the tests use (a tenant that owns devices stays).
    seed = platform.tenants.create_key(city["id"], Role.ADMIN)[1]
    r = httpx.post(
        f"http://127.0.0.1:{port}/api/devices",
        json={"kind": "lamp", "name": "seed-lamp"},
        headers={"Authorization": f"Bearer {seed}"},
    )
    assert r.status_code == 201, r.text
    try:
        yield Served(platform, f"http://127.0.0.1:{port}", int(city["id"]))
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT_S)
        db.dispose()
        if cluster is not None:
            cluster.drop_database(pg_name)


@pytest.fixture
def api_key(served: Served) -> str:
    """A fresh admin key of the city operator for each operation (a fuzzed DELETE may have
    revoked the previous one)."""
    return served.platform.tenants.create_key(served.city_id, Role.ADMIN)[1]


def _document() -> dict[str, Any]:
    """The OpenAPI document, from an app around a platform that is never started (the document
    depends on the routes only; schemathesis needs it when the tests are collected)."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Database("sqlite://")
        try:
            platform = Platform(Settings(data_dir=Path(tmp)), db=db)
            return create_app(platform.api_services()).openapi()
        finally:
            db.dispose()


schema = schemathesis.openapi.from_dict(_document())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=REPEATABLE,
)
def test_every_operation_answers_as_declared(case: Case, served: Served, api_key: str) -> None:
    """Generated requests get a declared status, content type and body, never a 5xx."""
    case.call_and_validate(
        base_url=served.base_url,
        headers={"Authorization": f"Bearer {api_key}"},
        checks=CHECKS,
        timeout=30,
    )
