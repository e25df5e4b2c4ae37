"""Broker hashes: each device token's Mosquitto hash, stored beside its SHA-256.

Tokens are kept as SHA-256 only, which no broker understands, so when a token is issued or
rotated (``assets.py``, in the same transaction) its Mosquitto hash (PBKDF2-SHA512, the ``$7$``
format of Mosquitto 2.x) is stored as well, for the broker accounts of ``broker.py``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    ForeignKey,
    Integer,
    String,
    Table,
    delete,
    insert,
)

from smartpole.model.clock import now_ms
from smartpole.store.schema import metadata

__all__ = ["broker_credentials", "broker_hash", "save_broker_hashes", "verify_broker_hash"]

broker_credentials = Table(
    "broker_credentials",
    metadata,
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("hash", String(200), nullable=False),  # $7$<iterations>$<salt b64>$<sha512 b64>
    Column("updated", BigInteger, nullable=False),
)

ITERATIONS = 101  # mosquitto_passwd's default; the broker pays it on every CONNECT
SALT_BYTES = 12  # as mosquitto_passwd


def broker_hash(secret: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """The Mosquitto 2.x password-file hash of a secret: ``$7$<iter>$<salt>$<digest>``."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_broker_hash(secret: str, hashed: str) -> bool:
    """Whether ``secret`` matches a ``$7$`` hash (as Mosquitto checks it)."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        digest = base64.b64decode(parts[4], validate=True)
    except (binascii.Error, ValueError):
        return False
    mine = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, int(parts[2]))
    return hmac.compare_digest(mine, digest)


def save_broker_hashes(conn: Connection, tokens: Mapping[int, str]) -> None:
    """Store the broker hash of each device's new token, in the caller's transaction."""
    ids = list(tokens)
    for i in range(0, len(ids), 500):  # SQLite limits the parameters of one statement
        chunk = ids[i : i + 500]
        conn.execute(delete(broker_credentials).where(broker_credentials.c.device_id.in_(chunk)))
    if not ids:
        return
    updated = now_ms()
    conn.execute(
        insert(broker_credentials),
        [{"device_id": d, "hash": broker_hash(t), "updated": updated} for d, t in tokens.items()],
    )
