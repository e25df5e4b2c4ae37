"""Secrets and files: what a viewer, a local user or a database copy learns of the secrets."""

from __future__ import annotations

import hashlib
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from fixtures_api import City, make_device
from pg import PostgresCluster
from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.model.types import Role
from smartpole.registry.access import hash_secret
from smartpole.registry.provisioning import provision_profiles
from smartpole.store import Database
from smartpole.store.files import write_private
from smartpole.store.schema import devices, tenants


def mode(path: Path) -> int:
    """The permission bits of a path."""
    return stat.S_IMODE(path.stat().st_mode)


# -- token hints ------------------------------------------------------------------------------
async def test_token_hint_holds_no_token_characters(client: httpx.AsyncClient, city: City) -> None:
    dev = await make_device(client, city, "lighting", "lamp")
    token = dev["token"]
    shown = await client.get(f"/api/devices/{dev['id']}", headers=city.auth("lighting"))
    hint = shown.json()["token_hint"]
    assert hint == hashlib.sha256(token.encode()).hexdigest()[:6]
    assert not token.startswith(hint[:2])  # not the old hint, the token's first characters


async def test_rotated_token_gets_a_hash_hint(client: httpx.AsyncClient, city: City) -> None:
    dev = await make_device(client, city, "lighting", "lamp")
    chosen = "chosen-token-" + uuid.uuid4().hex
    r = await client.post(
        f"/api/devices/{dev['id']}/credentials",
        json={"token": chosen},
        headers=city.auth("lighting", Role.OPERATOR),
    )
    assert r.status_code == 200, r.text
    shown = await client.get(f"/api/devices/{dev['id']}", headers=city.auth("lighting"))
    assert shown.json()["token_hint"] == hash_secret(chosen)[:6]
    assert "chos" not in shown.json()["token_hint"]


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database at revision 0010, the one before token hints were hashed."""
    cluster: PostgresCluster | None = None
    name = f"t_{uuid.uuid4().hex[:16]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/smartpole.db"
    else:
        cluster = request.getfixturevalue("pg_cluster")
        url = Settings(db=cluster.create_database(name)).database_url
    db = Database(url)
    try:
        db.upgrade("0010")
        yield db
    finally:
        db.dispose()
        if cluster is not None:
            cluster.drop_database(name)


def test_migration_replaces_stored_secret_characters(old_database: Database) -> None:
    tokens = {f"lamp-{i}": uuid.uuid4().hex for i in range(3)}
    with old_database.engine.begin() as conn:
        tid = conn.execute(
            insert(tenants).values(name="lighting", title="", is_operator=False, created=0)
        ).inserted_primary_key[0]  # type: ignore[index]
        rows: list[dict[str, Any]] = [
            {
                "name": name,
                "kind": "lamp",
                "model": "",
                "owner_id": tid,
                "token_hash": hash_secret(token),
                "token_hint": token[:4],  # what 0001..0010 stored
                "created": 0,
            }
            for name, token in tokens.items()
        ]
        conn.execute(insert(devices), rows)
        conn.execute(
            insert(provision_profiles).values(
                tenant_id=tid,
                name="lamps",
                kind="lamp",
                key="profile-key",
                secret_hash=hash_secret("profile-secret"),
                secret_hint="prof",  # the secret's first 4 characters, as before
                create_new=True,
                pre_registered=False,
                created=0,
            )
        )
    old_database.upgrade()
    with old_database.engine.connect() as conn:
        hints = dict(conn.execute(select(devices.c.name, devices.c.token_hint)).all())
        profile_hint = conn.execute(select(provision_profiles.c.secret_hint)).scalar_one()
    assert hints == {name: hash_secret(token)[:6] for name, token in tokens.items()}
    assert profile_hint == hash_secret("profile-secret")[:6]


# -- files ------------------------------------------------------------------------------------
async def test_data_directory_and_database_are_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "nested" / "data"
    platform = Platform(Settings(data_dir=data_dir, mqtt_port=-1))
    platform.upgrade()
    await platform.start()
    try:
        platform.tenants.create("city", "City", True)  # a write: the WAL and its index exist
        db = data_dir / "smartpole.db"
        assert mode(data_dir) == 0o700
        for path in (db, db.with_name("smartpole.db-wal"), db.with_name("smartpole.db-shm")):
            assert path.exists(), path
            assert mode(path) == 0o600, path
    finally:
        await platform.stop()


def test_existing_wide_database_is_narrowed(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    db_file = tmp_path / "smartpole.db"
    db_file.touch(mode=0o644)
    db_file.chmod(0o644)
    Platform(Settings(data_dir=tmp_path, mqtt_port=-1)).db.dispose()
    assert mode(tmp_path) == 0o700
    assert mode(db_file) == 0o600


def test_private_file_is_never_readable_by_others(tmp_path: Path) -> None:
    target = tmp_path / "creds" / "demo-credentials.json"
    write_private(target, b'{"keys": {}}')
    write_private(target, b'{"keys": {"a": 1}}')  # replaced, still private
    assert target.read_bytes() == b'{"keys": {"a": 1}}'
    assert mode(target) == 0o600
    assert mode(target.parent) == 0o700
