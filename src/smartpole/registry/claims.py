"""Claiming: a device opens a window with a secret key; a tenant that knows it becomes its owner.

As ThingsBoard's claiming, with a tenant where ThingsBoard has a customer. The claim is kept in
the database (hashed), survives a restart and can be used once. The device stays on its pole.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    ForeignKey,
    Integer,
    String,
    Table,
    delete,
    select,
    update,
)

from smartpole.errors import ClaimExpired, Forbidden, InvalidInput, NotFound
from smartpole.model.clock import now_ms
from smartpole.model.types import DeviceRef, Role, Scope
from smartpole.registry.access import Principal, hash_secret
from smartpole.registry.assets import Assets
from smartpole.store.database import put_rows
from smartpole.store.schema import attributes, devices, metadata

__all__ = ["CLAIMING_ALLOWED", "Claims", "device_claims"]

log = logging.getLogger(__name__)

device_claims = Table(
    "device_claims",
    metadata,
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("secret_hash", String(64), nullable=False),
    Column("expires", BigInteger, nullable=False),
    Column("created", BigInteger, nullable=False),
)

CLAIMING_ALLOWED = "claimingAllowed"  # server attribute, as ThingsBoard names it
DEFAULT_DURATION_MS = 86_400_000  # ThingsBoard's default claim window: a day
MAX_DURATION_MS = 30 * 86_400_000
NO_CLAIM = "no device awaits a claim with that name and secret key"


class Claims:
    """Claims registered by devices, and claiming them."""

    def __init__(self, engine: Engine, assets: Assets, allowed_by_default: bool = True) -> None:
        self.engine = engine
        self.assets = assets
        self.allowed_by_default = allowed_by_default

    def register(self, device: DeviceRef, data: Any) -> int:
        """Open a device's claim window from its ``{"secretKey", "durationMs"}``; returns expiry.

        Raises Forbidden when claiming needs the server attribute ``claimingAllowed`` and the
        device does not have it.
        """
        if not isinstance(data, dict):
            raise InvalidInput('a claim needs {"secretKey": "...", "durationMs": ms}')
        secret = data.get("secretKey", "")
        duration = data.get("durationMs") or DEFAULT_DURATION_MS
        if not isinstance(secret, str) or len(secret) > 256:
            raise InvalidInput("secretKey must be a string of at most 256 characters")
        if isinstance(duration, bool) or not isinstance(duration, int) or duration < 0:
            raise InvalidInput("durationMs must be a positive integer (milliseconds)")
        if not self.allowed_by_default:
            attrs = self.assets.get_attributes(device.id, [Scope.SERVER], [CLAIMING_ALLOWED])
            if attrs.get("server", {}).get(CLAIMING_ALLOWED, {}).get("value") is not True:
                raise Forbidden(
                    f"device {device.id} may not be claimed (server attribute {CLAIMING_ALLOWED})"
                )
        now = now_ms()
        expires = now + min(duration, MAX_DURATION_MS)
        with self.engine.begin() as conn:
            row = {"secret_hash": hash_secret(secret), "expires": expires, "created": now}
            put_rows(conn, device_claims, ["device_id"], [{"device_id": device.id, **row}])
        log.info("device %s (%s) may be claimed until %d", device.id, device.name, expires)
        return expires

    def claim(self, who: Principal, name: str, secret: str) -> int:
        """Make the caller's tenant the owner of the device ``name``; returns its id.

        An unknown name, a device with no claim and a wrong secret are one and the same
        NotFound; an expired claim (with the right secret) is ClaimExpired.
        """
        who.require(Role.OPERATOR)
        ref = self.assets.device_by_name(name)
        row = None
        if ref is not None:
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(device_claims).where(device_claims.c.device_id == ref.id)
                ).first()
        given = hash_secret(secret)
        if ref is None or row is None or not hmac.compare_digest(given, row.secret_hash):
            log.warning("claim of %r by tenant %s refused: %s", name, who.tenant_id, NO_CLAIM)
            raise NotFound(NO_CLAIM)
        if row.expires <= now_ms():
            with self.engine.begin() as conn:
                conn.execute(delete(device_claims).where(device_claims.c.device_id == ref.id))
            raise ClaimExpired(f"the claim window of device {name!r} has closed", name=name)
        with self.engine.begin() as conn:
            taken = conn.execute(
                delete(device_claims).where(
                    device_claims.c.device_id == ref.id, device_claims.c.secret_hash == given
                )
            ).rowcount
            if not taken:  # claimed by someone else a moment ago
                raise NotFound(NO_CLAIM)
            conn.execute(
                update(devices).where(devices.c.id == ref.id).values(owner_id=who.tenant_id)
            )
            conn.execute(
                delete(attributes).where(
                    attributes.c.device_id == ref.id,
                    attributes.c.scope == str(Scope.SERVER),
                    attributes.c.key == CLAIMING_ALLOWED,
                )
            )
        self.assets._forget(ref.id)
        log.info("tenant %s claimed device %s (%s)", who.tenant_id, ref.id, name)
        return ref.id
