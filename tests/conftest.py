"""Shared fixtures: a private PostgreSQL cluster and a migrated database on each engine."""

from __future__ import annotations

import gc
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pg import PostgresCluster
from smartpole.config import Settings
from smartpole.store import Database, SeriesStore, open_series

# helpers.py holds the plain functions several test modules share: rewrite its asserts as in tests
pytest.register_assert_rewrite("helpers")
pytest_plugins = ["fixtures_api", "fixtures_broker", "fixtures_http", "browser"]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Leave what collection built (modules, test items) out of every later garbage collection:
    the platform fixtures collect after each test, and a full collection over the test
    process's heap cost a quarter of a second each."""
    gc.freeze()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One private PostgreSQL cluster for the whole session (started on first use)."""
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_template(pg_cluster: PostgresCluster) -> str:
    """A database migrated once per session; each test's database is a copy of it (migrating
    every test's database from scratch took most of a PostgreSQL test's time)."""
    name = "smartpole_template"
    db = Database(Settings(db=pg_cluster.create_database(name)).database_url)
    try:
        db.upgrade()
    finally:
        db.dispose()
    return name


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file migrated once per test process; each test's database is a copy of it
    (migrating from scratch cost each test a third of a second, most of a short test's time)."""
    path = tmp_path_factory.mktemp("template") / "smartpole.db"
    db = Database(f"sqlite:///{path}")
    try:
        db.upgrade()
    finally:
        db.dispose()  # the last connection closed: the write-ahead log is in the file
    return path


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A freshly migrated database: an SQLite file, or a new database in the cluster, each a
    copy of a database migrated to the head revision."""
    pg_name: str | None = None
    cluster: PostgresCluster | None = None
    if request.param == "sqlite":
        path = tmp_path / "smartpole.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)  # its private mode too
        url = f"sqlite:///{path}"
    else:
        cluster = request.getfixturevalue("pg_cluster")
        template = request.getfixturevalue("pg_template")
        pg_name = f"t_{uuid.uuid4().hex[:16]}"
        url = Settings(db=cluster.create_database(pg_name, template)).database_url
    db = Database(url)
    try:
        yield db
    finally:
        db.dispose()
        if cluster is not None and pg_name is not None:
            cluster.drop_database(pg_name)


@pytest.fixture(
    params=[pytest.param(0, id="flush-each-batch"), pytest.param(60_000, id="flush-deferred")]
)
def series(request: pytest.FixtureRequest, database: Database) -> Iterator[SeriesStore]:
    """The time-series store of ``database``: derived state written with every batch, or
    gathered in memory (as ``serve`` does) and written before the reads that need it."""
    store = open_series(database, flush_ms=request.param)
    try:
        yield store
    finally:
        store.close()  # type: ignore[attr-defined]


@pytest.fixture
def counter() -> list[int]:
    """A count that lives across the examples of one hypothesis test (fuzz tests number their
    probes with it)."""
    return [0]
