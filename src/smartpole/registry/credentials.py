"""Device credentials besides the access token: ThingsBoard's "MQTT Basic".

A device authenticates by client id only, by user name (and password), or by client id, user
name and password together. While it has MQTT Basic credentials its access token is replaced by
a random one nobody knows; switching back to ``access_token`` issues a new token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    ForeignKey,
    Integer,
    String,
    Table,
    UniqueConstraint,
    delete,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from smartpole.errors import Conflict, InvalidInput
from smartpole.model.clock import now_ms
from smartpole.model.types import DeviceRef, Role
from smartpole.registry.access import Principal, hash_secret
from smartpole.registry.assets import Assets
from smartpole.store.schema import devices, metadata

__all__ = ["BasicAuth", "Credentials", "device_credentials", "hash_password", "verify_password"]

# Absent parts are "" (not NULL) so that the unique constraint holds on both engines.
device_credentials = Table(
    "device_credentials",
    metadata,
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("client_id", String(128), nullable=False, server_default=""),
    Column("username", String(128), nullable=False, server_default=""),
    Column("password_hash", String(200)),  # scrypt, salted; NULL: any password is accepted
    Column("updated", BigInteger, nullable=False),
    UniqueConstraint("client_id", "username", name="uq_device_credentials_client_user"),
)

CACHE_S = 30.0  # a verified (client id, user name, password) is trusted this long, as tokens
SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    """A salted scrypt hash: ``scrypt$<salt hex>$<hash hex>``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a hash made by :func:`hash_password`."""
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), dklen=32, **SCRYPT)
    return hmac.compare_digest(got.hex(), digest)


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """The outcome of an MQTT Basic login: the device, or why not."""

    device: DeviceRef | None
    wrong_password: bool = False


class Credentials:
    """MQTT Basic credentials of devices, and switching a device between credential types."""

    def __init__(self, engine: Engine, assets: Assets) -> None:
        self.engine = engine
        self.assets = assets
        self._cache: dict[str, tuple[float, DeviceRef]] = {}
        self._lock = threading.Lock()

    # -- management -----------------------------------------------------------------------
    def describe(self, who: Principal, device_id: int) -> dict[str, Any]:
        """The type of a visible device's credentials, without any secret."""
        dev = self.assets.get_device(who, device_id)
        with self.engine.connect() as conn:
            row = conn.execute(
                select(device_credentials).where(device_credentials.c.device_id == device_id)
            ).first()
        if row is None:
            return {"device_id": device_id, "type": "access_token", "token_hint": dev.token_hint}
        return {
            "device_id": device_id,
            "type": "mqtt_basic",
            "client_id": row.client_id or None,
            "username": row.username or None,
            "password": row.password_hash is not None,
        }

    def use_access_token(self, who: Principal, device_id: int, token: str | None = None) -> str:
        """Give a device a new access token and drop its MQTT Basic credentials."""
        who.require(Role.OPERATOR)
        token = self.assets.rotate_token(who, device_id, token)
        with self.engine.begin() as conn:
            conn.execute(
                delete(device_credentials).where(device_credentials.c.device_id == device_id)
            )
        self.forget(device_id)
        return token

    def use_mqtt_basic(
        self,
        who: Principal,
        device_id: int,
        client_id: str | None,
        username: str | None,
        password: str | None,
    ) -> dict[str, Any]:
        """Set a device's MQTT Basic credentials; its access token stops working."""
        who.require(Role.OPERATOR)
        self.assets.get_device(who, device_id)
        check_basic(client_id, username, password)
        if username:
            with self.engine.connect() as conn:
                clash = conn.execute(
                    select(devices.c.id).where(
                        devices.c.token_hash == hash_secret(username), devices.c.id != device_id
                    )
                ).first()
            if clash is not None:
                raise Conflict("that user name is another device's access token")
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    delete(device_credentials).where(device_credentials.c.device_id == device_id)
                )
                conn.execute(
                    insert(device_credentials).values(
                        device_id=device_id,
                        client_id=client_id or "",
                        username=username or "",
                        password_hash=hash_password(password) if password else None,
                        updated=now_ms(),
                    )
                )
        except IntegrityError as err:
            raise Conflict(
                "another device has these MQTT Basic credentials",
                client_id=client_id,
                username=username,
            ) from err
        self.assets.rotate_token(who, device_id)  # a random token nobody is told
        self.forget(device_id)
        return self.describe(who, device_id)

    def forget(self, device_id: int) -> None:
        """Drop cached logins of a device (its credentials or owner changed)."""
        with self._lock:
            for k in [k for k, (_, ref) in self._cache.items() if ref.id == device_id]:
                del self._cache[k]

    # -- login ----------------------------------------------------------------------------
    def authenticate(self, client_id: str, username: str | None, password: str | None) -> BasicAuth:
        """Find the device of an MQTT CONNECT's client id, user name and password.

        As ThingsBoard: with a user name, the (client id, user name) pair first, then the user
        name alone; without one, the client id alone. A password is checked when one is set.
        """
        key = hashlib.sha256(f"{client_id}\0{username}\0{password}".encode()).hexdigest()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return BasicAuth(hit[1])
        if username:
            candidates = [(client_id, username), ("", username)] if client_id else [("", username)]
        else:
            candidates = [(client_id, "")] if client_id else []
        row = None
        with self.engine.connect() as conn:
            for cid, user in candidates:
                row = conn.execute(
                    select(
                        device_credentials.c.device_id, device_credentials.c.password_hash
                    ).where(
                        device_credentials.c.client_id == cid,
                        device_credentials.c.username == user,
                    )
                ).first()
                if row is not None:
                    break
        if row is None:
            return BasicAuth(None)
        if row.password_hash is not None and not verify_password(password or "", row.password_hash):
            return BasicAuth(None, wrong_password=True)
        ref = self.assets.device_ref(row.device_id)
        if ref is None:
            return BasicAuth(None)
        with self._lock:
            if len(self._cache) > 200_000:
                self._cache.clear()
            self._cache[key] = (time.monotonic() + CACHE_S, ref)
        return BasicAuth(ref)


def check_basic(client_id: str | None, username: str | None, password: str | None) -> None:
    """Raise InvalidInput unless the parts make MQTT Basic credentials ThingsBoard accepts."""
    errors: list[dict[str, Any]] = []
    if not client_id and not username:
        errors.append({"loc": ["client_id"], "msg": "a client id or a user name is needed"})
    if password and not username:
        errors.append({"loc": ["password"], "msg": "a password needs a user name"})
    for name, value in (("client_id", client_id), ("username", username)):
        if value is not None and len(value) > 128:
            errors.append({"loc": [name], "msg": "at most 128 characters"})
    if errors:
        raise InvalidInput("invalid MQTT Basic credentials", errors=errors)
