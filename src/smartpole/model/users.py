"""People who log in to the console, their sessions, and the audit log of what callers change."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from smartpole.model.types import Role

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "Actor",
    "ActorType",
    "AuditEntry",
    "User",
    "UserSession",
]

MIN_PASSWORD_LENGTH = 10  # NIST SP 800-63B asks for 8 at least; a city's console asks for more


class ActorType(enum.StrEnum):
    """Who made a change: a person logged in, an API key, or the command line on the host."""

    USER = "user"
    APIKEY = "apikey"
    CLI = "cli"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who an audit entry names: its kind, the user's or key's id, a readable name (a login,
    a key's name, the OS user at the command line) and the tenant it acted for."""

    type: ActorType
    id: int | None
    name: str
    tenant_id: int | None


@dataclass(frozen=True, slots=True)
class User:
    """A person with a login name, a tenant and a role; never carries the password's hash."""

    id: int
    name: str
    tenant_id: int
    tenant: str
    role: Role
    disabled: bool
    created: int
    updated: int
    last_login: int | None

    def to_dict(self) -> dict[str, Any]:
        """The user as the REST API shows it."""
        return {
            "id": self.id,
            "name": self.name,
            "tenant_id": self.tenant_id,
            "tenant": self.tenant,
            "role": str(self.role),
            "disabled": self.disabled,
            "created": self.created,
            "updated": self.updated,
            "last_login": self.last_login,
        }


@dataclass(frozen=True, slots=True)
class UserSession:
    """A login: the user it belongs to, its CSRF token, and when it ends (milliseconds).

    The cookie's secret is not here: only its SHA-256 is stored, as the session's id.
    """

    id: str
    user_id: int
    csrf: str
    created: int
    expires: int
    last_seen: int
    address: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change a caller made (or a login it tried); never a secret or a password."""

    id: int
    ts: int
    tenant_id: int | None
    actor_type: ActorType
    actor_id: int | None
    actor_name: str
    action: str
    target_type: str | None
    target_id: str | None
    address: str
    status: int
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The entry as the REST API and the CSV export show it."""
        return {
            "id": self.id,
            "ts": self.ts,
            "tenant_id": self.tenant_id,
            "actor_type": str(self.actor_type),
            "actor_id": self.actor_id,
            "actor_name": self.actor_name,
            "action": self.action,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "address": self.address,
            "status": self.status,
            "detail": self.detail,
        }
