"""Broker accounts: what an external MQTT broker needs to know about devices.

In scale-out mode devices connect to an external broker (Mosquitto, EMQX) with their **name** as
user name and their access token as password, and publish under ``sp/v1/{name}/...``. The name
is the account because it is unique, chosen by the operator before a device exists (so it can be
flashed at the factory with its token), readable in broker logs and ACLs, and already what
gateways call their sub-devices. Renaming a device therefore changes its broker account.

Each account's password is the device's token, checked by the broker against the token's
Mosquitto hash (``broker_hashes.py``). A device whose token predates broker mode has no broker
hash: it is listed as skipped until its token is rotated. EMQX asks smartpole instead
(``api/broker.py``) and needs no broker hash.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Engine, select

from smartpole.model.types import DeviceKind, DeviceRef, Scope
from smartpole.registry.assets import Assets
from smartpole.registry.broker_hashes import broker_credentials
from smartpole.store.schema import commands, devices

__all__ = [
    "LAST_GATEWAY",
    "USERNAME_RE",
    "Account",
    "BrokerAccounts",
    "Skipped",
]

# A name usable as a broker user name and as one topic level: no '/', '+', '#', ':' (the
# password file's separator), no leading '$', no spaces.
USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
# server attribute of a sub-device: the id of the gateway that last reported it (ThingsBoard's name)
LAST_GATEWAY = "lastConnectedGateway"


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
