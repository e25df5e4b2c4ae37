"""Who is calling: tenants, API keys, roles, and what each may see."""

from __future__ import annotations

import builtins
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from smartpole.errors import Conflict, Forbidden, NotFound, Unauthenticated
from smartpole.model.clock import now_ms
from smartpole.model.types import Role
from smartpole.model.users import Actor, ActorType
from smartpole.store.buckets import time_zone
from smartpole.store.schema import api_keys, devices, tenants, users

__all__ = ["Principal", "Tenants", "hash_secret", "new_secret", "token_hint"]


def hash_secret(secret: str) -> str:
    """SHA-256 of a token or key: what the store keeps instead of the secret itself."""
    return hashlib.sha256(secret.encode()).hexdigest()


HINT_CHARS = 6  # 24 bits of the hash: tells tokens apart at a glance, helps no one guess one


def token_hint(token: str) -> str:
    """What the API shows of an access token: the first hex digits of its SHA-256.

    Never the token's own characters: those would shorten a brute-force search and leak in
    screenshots. The holder of a token can check it against the hint (``sha256sum``).
    """
    return hash_secret(token)[:HINT_CHARS]


def new_secret(nbytes: int = 15) -> str:
    """A fresh URL-safe random secret."""
    return secrets.token_urlsafe(nbytes)


@dataclass(frozen=True, slots=True)
class Principal:
    """The tenant and role behind an API call."""

    tenant_id: int
    tenant: str
    role: Role
    is_operator: bool
    key_id: int | None = None  # None: not an API key (the command line, a user, a device)
    user_id: int | None = None  # a person logged in to the console (registry.users)
    name: str = ""  # who acts, as the audit log names it: a user's login, a key's name

    @property
    def actor_type(self) -> ActorType:
        """Whether a person, an API key or the command line is acting."""
        if self.user_id is not None:
            return ActorType.USER
        return ActorType.CLI if self.key_id is None else ActorType.APIKEY

    @property
    def actor(self) -> Actor:
        """Who acts, as the audit log records it."""
        actor_id = self.user_id if self.user_id is not None else self.key_id
        return Actor(self.actor_type, actor_id, self.name, self.tenant_id)

    @property
    def signature(self) -> str:
        """How a comment or a work-order step is signed: a person's login with their tenant and
        role, else (an API key, the command line) the tenant and role."""
        if self.user_id is not None and self.name:
            return f"{self.name} ({self.tenant}, {self.role})"
        return f"{self.tenant} ({self.role})"

    def require(self, role: Role) -> None:
        """Raise Forbidden unless the caller's role includes ``role``."""
        if not self.role.at_least(role):
            raise Forbidden(f"this needs the {role} role; the caller has {self.role}", role=role)

    def require_city(self, role: Role) -> None:
        """Raise Forbidden unless the caller is the city operator with at least ``role``."""
        if not self.is_operator:
            raise Forbidden("only the city operator tenant may do this")
        self.require(role)


class Tenants:
    """Tenants and their API keys.

    A tenant's time zone (where its days start) is its own if set, else ``default_timezone``
    (the hub's setting): the rows returned always carry the one in force.
    """

    def __init__(self, engine: Engine, default_timezone: str = "Asia/Shanghai") -> None:
        self.engine = engine
        self.default_timezone = default_timezone

    def create(
        self, name: str, title: str = "", is_operator: bool = False, timezone: str | None = None
    ) -> dict[str, Any]:
        """Add a tenant; its name is unique; ``timezone`` an IANA name (None: the default)."""
        if timezone is not None:
            time_zone(timezone)
        try:
            with self.engine.begin() as conn:
                tid = conn.execute(
                    insert(tenants).values(
                        name=name,
                        title=title,
                        is_operator=is_operator,
                        created=now_ms(),
                        timezone=timezone,
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
        except IntegrityError as err:
            raise Conflict(f"tenant {name!r} exists", name=name) from err
        return self.get(tid)

    def get(self, tenant_id: int) -> dict[str, Any]:
        """One tenant by id."""
        with self.engine.connect() as conn:
            row = conn.execute(select(tenants).where(tenants.c.id == tenant_id)).first()
        if row is None:
            raise NotFound(f"tenant {tenant_id} not found", tenant_id=tenant_id)
        return self._out(row._mapping)

    def _out(self, row: Any) -> dict[str, Any]:
        out = dict(row)
        out["timezone"] = out.get("timezone") or self.default_timezone
        return out

    def zone(self, tenant_id: int) -> ZoneInfo:
        """The time zone in force for a tenant (where its days start)."""
        with self.engine.connect() as conn:
            name = conn.execute(
                select(tenants.c.timezone).where(tenants.c.id == tenant_id)
            ).scalar()
        return time_zone(name or self.default_timezone)

    def by_name(self, name: str) -> dict[str, Any]:
        """One tenant by its unique name."""
        with self.engine.connect() as conn:
            row = conn.execute(select(tenants).where(tenants.c.name == name)).first()
        if row is None:
            raise NotFound(f"tenant {name!r} not found", name=name)
        return self._out(row._mapping)

    def list(self, who: Principal) -> builtins.list[dict[str, Any]]:
        """Every tenant for the city operator; one's own tenant otherwise."""
        q = select(tenants).order_by(tenants.c.id)
        if not who.is_operator:
            q = q.where(tenants.c.id == who.tenant_id)
        with self.engine.connect() as conn:
            return [self._out(r._mapping) for r in conn.execute(q)]

    def update(self, tenant_id: int, **values: Any) -> dict[str, Any]:
        """Change a tenant's title, name or time zone."""
        self.get(tenant_id)
        if values.get("timezone") is not None:
            time_zone(values["timezone"])
        if not values:
            return self.get(tenant_id)
        try:
            with self.engine.begin() as conn:
                conn.execute(update(tenants).where(tenants.c.id == tenant_id).values(**values))
        except IntegrityError as err:
            raise Conflict("tenant name taken", **values) from err
        return self.get(tenant_id)

    def delete(self, tenant_id: int) -> None:
        """Remove a tenant that owns no devices (its API keys and users go with it)."""
        with self.engine.begin() as conn:
            owned = conn.execute(
                select(func.count()).select_from(devices).where(devices.c.owner_id == tenant_id)
            ).scalar_one()
            if owned:
                raise Conflict(f"tenant {tenant_id} still owns {owned} devices", owned=owned)
            conn.execute(api_keys.delete().where(api_keys.c.tenant_id == tenant_id))
            conn.execute(users.delete().where(users.c.tenant_id == tenant_id))
            if not conn.execute(tenants.delete().where(tenants.c.id == tenant_id)).rowcount:
                raise NotFound(f"tenant {tenant_id} not found", tenant_id=tenant_id)

    def create_key(self, tenant_id: int, role: Role, name: str = "") -> tuple[dict[str, Any], str]:
        """Issue an API key; the secret is returned once and only its hash is kept."""
        self.get(tenant_id)
        prefix = new_secret(6)[:8]
        secret = f"sp_{prefix}_{new_secret(24)}"
        with self.engine.begin() as conn:
            kid = conn.execute(
                insert(api_keys).values(
                    tenant_id=tenant_id,
                    role=str(role),
                    name=name,
                    prefix=prefix,
                    secret_hash=hash_secret(secret),
                    created=now_ms(),
                )
            ).inserted_primary_key[0]  # type: ignore[index]
        return self._key(kid), secret

    def _key(self, key_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    api_keys.c.id,
                    api_keys.c.tenant_id,
                    api_keys.c.role,
                    api_keys.c.name,
                    api_keys.c.prefix,
                    api_keys.c.created,
                    api_keys.c.revoked,
                ).where(api_keys.c.id == key_id)
            ).first()
        if row is None:
            raise NotFound(f"API key {key_id} not found", key_id=key_id)
        return dict(row._mapping)

    def get_key(self, key_id: int) -> dict[str, Any]:
        """One API key by id, without its secret (its ``prefix`` tells it apart)."""
        return self._key(key_id)

    def list_keys(self, tenant_id: int) -> builtins.list[dict[str, Any]]:
        """A tenant's API keys, without secrets."""
        with self.engine.connect() as conn:
            ids = conn.execute(
                select(api_keys.c.id).where(api_keys.c.tenant_id == tenant_id).order_by("id")
            ).scalars()
            return [self._key(i) for i in ids]

    def revoke_key(self, tenant_id: int, key_id: int) -> None:
        """Stop a key from working."""
        with self.engine.begin() as conn:
            n = conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.tenant_id == tenant_id)
                .values(revoked=now_ms())
            ).rowcount
        if not n:
            raise NotFound(f"API key {key_id} not found", key_id=key_id)

    def authenticate(self, secret: str) -> Principal:
        """The principal behind an API key, or Unauthenticated."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    api_keys.c.id.label("key_id"),
                    api_keys.c.role,
                    api_keys.c.name.label("key_name"),
                    api_keys.c.prefix,
                    tenants.c.id,
                    tenants.c.name,
                    tenants.c.is_operator,
                )
                .join(tenants, tenants.c.id == api_keys.c.tenant_id)
                .where(api_keys.c.secret_hash == hash_secret(secret), api_keys.c.revoked.is_(None))
            ).first()
        if row is None:
            raise Unauthenticated("unknown or revoked API key")
        return Principal(
            row.id,
            row.name,
            Role(row.role),
            bool(row.is_operator),
            row.key_id,
            name=row.key_name or f"key {row.prefix}",
        )
