"""Consents between tenants that share a pole: gateway bindings and mount grants.

A pole carries devices of several tenants, and one gateway powers and reports them. Two rules
keep the tenants apart there, and this module holds the consents that open them:

- **Gateway binding.** A pole gateway speaks (telemetry, attributes, claims, command replies)
  only for devices on its own pole that its own tenant owns, or that their owner has bound to
  it. (A city operator's gateway speaks for every device on its pole: the city operator may
  already read, change and re-key every device.) The rule itself is
  :meth:`smartpole.registry.assets.Assets.gateway_devices`; the bindings are here.
- **Mount grant.** A tenant mounts a device only on a pole it holds already (one of its devices
  is on it), on a pole no other tenant holds (bare, or the city operator's own), or on a pole
  whose holder granted it the right; any other pole answers as one that does not exist. The
  rule is :func:`may_mount`.

Every binding and grant records who gave it and who revoked it (tenant and API key) and when;
revoked ones are kept, so both sides can see the history.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    and_,
    exists,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import ColumnElement

from smartpole.errors import Conflict, InvalidInput, NotFound
from smartpole.model.clock import now_ms
from smartpole.model.grants import Binding, MountGrant, Stamp
from smartpole.model.types import DeviceKind, Role
from smartpole.registry.access import Principal
from smartpole.store.schema import devices, metadata, poles, tenants

__all__ = ["Grants", "gateway_bindings", "may_mount", "mount_grants"]


def _audit_columns() -> list[Column[Any]]:
    # the tenant's name is kept as well as its id: the record outlives a deleted tenant
    return [
        Column("granted_by", Integer, nullable=False),
        Column("granted_by_name", String(64), nullable=False),
        Column("granted_key", Integer),
        Column("granted", BigInteger, nullable=False),
        Column("revoked_by", Integer),
        Column("revoked_by_name", String(64)),
        Column("revoked_key", Integer),
        Column("revoked", BigInteger),
    ]


gateway_bindings = Table(
    "gateway_bindings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("gateway_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    *_audit_columns(),
    # one binding in force per gateway and device; revoked ones stay as history
    Index(
        "uq_gateway_bindings_active",
        "device_id",
        "gateway_id",
        unique=True,
        sqlite_where=text("revoked IS NULL"),
        postgresql_where=text("revoked IS NULL"),
    ),
    Index("ix_gateway_bindings_gateway", "gateway_id"),
)

mount_grants = Table(
    "mount_grants",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pole_id", Integer, ForeignKey("poles.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    *_audit_columns(),
    Index(
        "uq_mount_grants_active",
        "pole_id",
        "tenant_id",
        unique=True,
        sqlite_where=text("revoked IS NULL"),
        postgresql_where=text("revoked IS NULL"),
    ),
    Index("ix_mount_grants_tenant", "tenant_id"),
)


def holds_pole(tenant_id: int, pole_id: Any) -> ColumnElement[bool]:
    """SQL: the tenant has a device on the pole (which is what lets it see the pole)."""
    return exists().where(and_(devices.c.pole_id == pole_id, devices.c.owner_id == tenant_id))


def may_mount(conn: Connection, who: Principal, pole_id: int) -> bool:
    """Whether ``who`` may mount a device on the pole (which exists): the city operator
    anywhere; another tenant on a pole it holds, on a pole no other tenant holds (bare, or
    with the city operator's devices only: the city puts poles up for tenants to mount on),
    or with a mount grant."""
    if who.is_operator:
        return True
    city = select(tenants.c.id).where(tenants.c.is_operator.is_(True))
    bare = ~exists().where(
        devices.c.pole_id == pole_id,
        devices.c.owner_id != who.tenant_id,
        devices.c.owner_id.not_in(city),
    )
    granted = exists().where(
        mount_grants.c.pole_id == pole_id,
        mount_grants.c.tenant_id == who.tenant_id,
        mount_grants.c.revoked.is_(None),
    )
    q = select(or_(bare, holds_pole(who.tenant_id, pole_id), granted))
    return bool(conn.execute(q).scalar())


def _stamp(row: Any, prefix: str) -> Stamp | None:
    at = row._mapping[prefix]
    if at is None:
        return None
    m = row._mapping
    return Stamp(m[f"{prefix}_by"], m[f"{prefix}_by_name"], m[f"{prefix}_key"], at)


def _granting(who: Principal) -> dict[str, Any]:
    return {
        "granted_by": who.tenant_id,
        "granted_by_name": who.tenant,
        "granted_key": who.key_id,
        "granted": now_ms(),
    }


def _revoking(who: Principal) -> dict[str, Any]:
    return {
        "revoked_by": who.tenant_id,
        "revoked_by_name": who.tenant,
        "revoked_key": who.key_id,
        "revoked": now_ms(),
    }


class Grants:
    """Gateway bindings and mount grants: give, list, revoke (REST and CLI)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- gateway bindings -----------------------------------------------------------------
    def _bindings(self) -> Any:
        gw, dev = devices.alias("gw"), devices.alias("dev")
        gw_owner, dev_owner = tenants.alias("gw_owner"), tenants.alias("dev_owner")
        q = (
            select(
                gateway_bindings,
                gw.c.name.label("gateway"),
                gw_owner.c.name.label("gateway_owner"),
                gw_owner.c.id.label("gateway_owner_id"),
                dev.c.name.label("device"),
                dev_owner.c.name.label("device_owner"),
                dev_owner.c.id.label("device_owner_id"),
            )
            .join(gw, gw.c.id == gateway_bindings.c.gateway_id)
            .join(gw_owner, gw_owner.c.id == gw.c.owner_id)
            .join(dev, dev.c.id == gateway_bindings.c.device_id)
            .join(dev_owner, dev_owner.c.id == dev.c.owner_id)
        )
        return q, gw_owner, dev_owner

    @staticmethod
    def _binding(row: Any) -> Binding:
        granted = _stamp(row, "granted")
        assert granted is not None
        return Binding(
            id=row.id,
            gateway_id=row.gateway_id,
            gateway=row.gateway,
            gateway_owner=row.gateway_owner,
            device_id=row.device_id,
            device=row.device,
            device_owner=row.device_owner,
            granted=granted,
            revoked=_stamp(row, "revoked"),
        )

    def bind(self, who: Principal, device_id: int, gateway: str) -> Binding:
        """Let the gateway named ``gateway`` speak for the caller's device ``device_id``.

        The device must be the caller's (any for the city operator), the gateway a gateway on
        the device's pole; either missing answers NotFound, as a device the caller cannot see.
        """
        who.require(Role.ADMIN)
        with self.engine.begin() as conn:
            dev = conn.execute(
                select(devices.c.owner_id, devices.c.pole_id).where(devices.c.id == device_id)
            ).first()
            if dev is None or (not who.is_operator and dev.owner_id != who.tenant_id):
                raise NotFound(f"device {device_id} not found", device_id=device_id)
            gw_id = conn.execute(
                select(devices.c.id).where(
                    devices.c.name == gateway,
                    devices.c.kind == str(DeviceKind.GATEWAY),
                    devices.c.pole_id == dev.pole_id,
                )
            ).scalar()
            if dev.pole_id is None or gw_id is None:
                raise NotFound(
                    f"no gateway {gateway!r} on the pole of device {device_id}", gateway=gateway
                )
            if gw_id == device_id:
                raise InvalidInput("a gateway is not bound to itself", gateway=gateway)
            try:
                bid = conn.execute(
                    insert(gateway_bindings).values(
                        gateway_id=gw_id, device_id=device_id, **_granting(who)
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
            except IntegrityError as err:
                raise Conflict(
                    f"device {device_id} is bound to gateway {gateway!r} already",
                    device_id=device_id,
                    gateway=gateway,
                ) from err
        return self.binding(who, bid)

    def _visible_binding(self, who: Principal, q: Any, gw_owner: Any, dev_owner: Any) -> Any:
        if who.is_operator:
            return q
        return q.where(or_(gw_owner.c.id == who.tenant_id, dev_owner.c.id == who.tenant_id))

    def binding(self, who: Principal, binding_id: int) -> Binding:
        """One binding the caller is a side of (either owner; any for the city operator)."""
        q, gw_owner, dev_owner = self._bindings()
        q = self._visible_binding(
            who, q.where(gateway_bindings.c.id == binding_id), gw_owner, dev_owner
        )
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"binding {binding_id} not found", binding_id=binding_id)
        return self._binding(row)

    def bindings(
        self,
        who: Principal,
        *,
        device_id: int | None = None,
        gateway_id: int | None = None,
        active: bool | None = None,
    ) -> list[Binding]:
        """The bindings the caller is a side of: given (its devices) and received (its
        gateways); every one for the city operator."""
        q, gw_owner, dev_owner = self._bindings()
        q = self._visible_binding(who, q, gw_owner, dev_owner)
        if device_id is not None:
            q = q.where(gateway_bindings.c.device_id == device_id)
        if gateway_id is not None:
            q = q.where(gateway_bindings.c.gateway_id == gateway_id)
        if active is not None:
            revoked = gateway_bindings.c.revoked
            q = q.where(revoked.is_(None) if active else revoked.is_not(None))
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(gateway_bindings.c.id))
            return [self._binding(r) for r in rows]

    def unbind(self, who: Principal, binding_id: int) -> Binding:
        """Revoke a binding (either side may); the gateway stops speaking for the device."""
        who.require(Role.ADMIN)
        found = self.binding(who, binding_id)
        if not found.active:
            raise Conflict(f"binding {binding_id} was revoked already", binding_id=binding_id)
        with self.engine.begin() as conn:
            conn.execute(
                update(gateway_bindings)
                .where(gateway_bindings.c.id == binding_id, gateway_bindings.c.revoked.is_(None))
                .values(**_revoking(who))
            )
        return self.binding(who, binding_id)

    # -- mount grants ---------------------------------------------------------------------
    def _grants(self) -> Any:
        return (
            select(mount_grants, poles.c.code.label("pole"), tenants.c.name.label("tenant"))
            .join(poles, poles.c.id == mount_grants.c.pole_id)
            .join(tenants, tenants.c.id == mount_grants.c.tenant_id)
        )

    @staticmethod
    def _grant(row: Any) -> MountGrant:
        granted = _stamp(row, "granted")
        assert granted is not None
        return MountGrant(
            id=row.id,
            pole_id=row.pole_id,
            pole=row.pole,
            tenant_id=row.tenant_id,
            tenant=row.tenant,
            granted=granted,
            revoked=_stamp(row, "revoked"),
        )

    @staticmethod
    def _visible_grant(who: Principal, q: Any) -> Any:
        if who.is_operator:
            return q
        return q.where(
            or_(
                mount_grants.c.tenant_id == who.tenant_id,
                mount_grants.c.granted_by == who.tenant_id,
            )
        )

    def grant_mount(self, who: Principal, pole: int | str, tenant: str) -> MountGrant:
        """Let ``tenant`` mount its devices on a pole the caller holds (by id or code).

        A pole the caller does not hold answers NotFound, as one that does not exist.
        """
        who.require(Role.ADMIN)
        col = poles.c.id if isinstance(pole, int) else poles.c.code
        with self.engine.begin() as conn:
            pid = conn.execute(select(poles.c.id).where(col == pole)).scalar()
            if pid is None or not (
                who.is_operator or conn.execute(select(holds_pole(who.tenant_id, pid))).scalar()
            ):
                raise NotFound(f"pole {pole} not found", pole=pole)
            tid = conn.execute(select(tenants.c.id).where(tenants.c.name == tenant)).scalar()
            if tid is None:
                raise InvalidInput(f"tenant {tenant!r} not found", tenant=tenant)
            if tid == who.tenant_id:
                raise InvalidInput("a tenant needs no grant to mount on its own pole")
            try:
                gid = conn.execute(
                    insert(mount_grants).values(pole_id=pid, tenant_id=tid, **_granting(who))
                ).inserted_primary_key[0]  # type: ignore[index]
            except IntegrityError as err:
                raise Conflict(
                    f"tenant {tenant!r} may mount on pole {pole} already", pole=pole, tenant=tenant
                ) from err
        return self.mount_grant(who, gid)

    def mount_grant(self, who: Principal, grant_id: int) -> MountGrant:
        """One mount grant the caller gave or received (any for the city operator)."""
        q = self._visible_grant(who, self._grants().where(mount_grants.c.id == grant_id))
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"mount grant {grant_id} not found", grant_id=grant_id)
        return self._grant(row)

    def mount_grants(
        self, who: Principal, *, pole_id: int | None = None, active: bool | None = None
    ) -> list[MountGrant]:
        """The mount grants the caller gave or received; every one for the city operator."""
        q = self._visible_grant(who, self._grants())
        if pole_id is not None:
            q = q.where(mount_grants.c.pole_id == pole_id)
        if active is not None:
            revoked = mount_grants.c.revoked
            q = q.where(revoked.is_(None) if active else revoked.is_not(None))
        with self.engine.connect() as conn:
            return [self._grant(r) for r in conn.execute(q.order_by(mount_grants.c.id))]

    def revoke_mount(self, who: Principal, grant_id: int) -> MountGrant:
        """Revoke a mount grant (either side may). Devices mounted under it stay: a grant
        lets a tenant mount, and the pole's holder asks the city operator to take one down."""
        who.require(Role.ADMIN)
        found = self.mount_grant(who, grant_id)
        if not found.active:
            raise Conflict(f"mount grant {grant_id} was revoked already", grant_id=grant_id)
        with self.engine.begin() as conn:
            conn.execute(
                update(mount_grants)
                .where(mount_grants.c.id == grant_id, mount_grants.c.revoked.is_(None))
                .values(**_revoking(who))
            )
        return self.mount_grant(who, grant_id)
