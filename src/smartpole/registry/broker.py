"""Broker accounts: what an external MQTT broker needs to know about devices.

In scale-out mode devices connect to an external broker (Mosquitto, EMQX) with their **name** as
user name and their access token as password, and publish under ``sp/v1/{name}/...``. The name
is the account because it is unique, chosen by the operator before a device exists (so it can be
flashed at the factory with its token), readable in broker logs and ACLs, and already what
gateways call their sub-devices. Renaming a device therefore changes its broker account.

Tokens are kept as SHA-256 only, which no broker understands, so when a token is issued or
rotated its Mosquitto hash (PBKDF2-SHA512, the ``$7$`` format of Mosquitto 2.x) is stored as
well. A device whose token predates this has no broker hash: it is listed as skipped until its
token is rotated. EMQX asks smartpole instead (``api/broker.py``) and needs no broker hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Integer,
    String,
    Table,
    delete,
    insert,
    select,
)

from smartpole.model.types import DeviceKind, Scope
from smartpole.store.database import now_ms
from smartpole.store.schema import commands, devices, metadata

if TYPE_CHECKING:  # assets.py imports this module to store broker hashes
    from smartpole.registry.assets import Assets, DeviceRef

__all__ = [
    "LAST_GATEWAY",
    "USERNAME_RE",
    "Account",
    "BrokerAccounts",
    "Skipped",
    "broker_credentials",
    "broker_hash",
    "save_broker_hashes",
    "verify_broker_hash",
]

broker_credentials = Table(
    "broker_credentials",
    metadata,
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("hash", String(200), nullable=False),  # $7$<iterations>$<salt b64>$<sha512 b64>
    Column("updated", BigInteger, nullable=False),
)

# A name usable as a broker user name and as one topic level: no '/', '+', '#', ':' (the
# password file's separator), no leading '$', no spaces.
USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
# server attribute of a sub-device: the id of the gateway that last reported it (ThingsBoard's name)
LAST_GATEWAY = "lastConnectedGateway"
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


@dataclass(frozen=True, slots=True)
class Account:
    """A device's broker account: its name and the hash of its token."""

    name: str
    hash: str
    gateway: bool = False  # a gateway also has the gateway API's topics


@dataclass(frozen=True, slots=True)
class Skipped:
    """A device that gets no broker account, and why."""

    device_id: int
    name: str
    reason: str


class BrokerAccounts:
    """Device accounts for the broker, and the device look-ups the broker consumer needs."""

    def __init__(self, assets: Assets) -> None:
        self.assets = assets
        self.engine: Engine = assets.engine

    def accounts(self, reserved: Collection[str] = ()) -> tuple[list[Account], list[Skipped]]:
        """Every device's account, by name; and the devices that cannot have one.

        ``reserved`` are user names taken by services (smartpole's own broker user).
        """
        q = (
            select(devices.c.id, devices.c.name, devices.c.kind, broker_credentials.c.hash)
            .outerjoin(broker_credentials, broker_credentials.c.device_id == devices.c.id)
            .order_by(devices.c.name)
        )
        out: list[Account] = []
        skipped: list[Skipped] = []
        with self.engine.connect() as conn:
            for row in conn.execute(q):
                if not USERNAME_RE.match(row.name):
                    reason = "its name is not a valid broker user name (A-Z a-z 0-9 _ . -)"
                elif row.name in reserved:
                    reason = "its name is the user name of a service"
                elif row.hash is None:
                    reason = "no broker hash: its token predates broker mode; rotate the token"
                else:
                    out.append(Account(row.name, row.hash, row.kind == DeviceKind.GATEWAY))
                    continue
                skipped.append(Skipped(row.id, row.name, reason))
        return out, skipped

    def authenticate(self, username: str, password: str) -> DeviceRef | None:
        """The device whose name is ``username`` and whose access token is ``password``."""
        if not USERNAME_RE.match(username) or not password:
            return None
        device = self.assets.device_by_token(password)
        return device if device is not None and device.name == username else None

    def device_by_name(self, name: str) -> DeviceRef | None:
        """The device of a broker user name (its topic level), or None."""
        return self.assets.device_by_name(name) if USERNAME_RE.match(name) else None

    def device_by_id(self, device_id: int) -> DeviceRef | None:
        """A device by id, or None."""
        return self.assets.device_ref(device_id)

    def waiting_commands(self) -> list[int]:
        """Devices that have persistent commands queued (waiting for them to be online)."""
        q = (
            select(commands.c.device_id)
            .where(commands.c.status == "queued", commands.c.persistent.is_(True))
            .distinct()
        )
        with self.engine.connect() as conn:
            return list(conn.execute(q).scalars())

    def gateway_of(self, device_id: int) -> DeviceRef | None:
        """The gateway that last reported the device (its server attribute
        ``lastConnectedGateway``, as ThingsBoard keeps it), or None."""
        attrs = self.assets.get_attributes(device_id, [Scope.SERVER], [LAST_GATEWAY])
        gateway_id = attrs.get("server", {}).get(LAST_GATEWAY, {}).get("value")
        if not isinstance(gateway_id, int) or isinstance(gateway_id, bool):
            return None
        ref = self.assets.device_ref(gateway_id)
        return ref if ref is not None and ref.kind is DeviceKind.GATEWAY else None

    def seen_since(self, since: int) -> dict[int, int]:
        """Last-seen time (ms) of every device heard from since ``since``, whichever node."""
        q = select(devices.c.id, devices.c.last_seen).where(devices.c.last_seen >= since)
        with self.engine.connect() as conn:
            return {row.id: row.last_seen for row in conn.execute(q)}
