"""People who log in to the console: their accounts, passwords and sessions.

A user has a login name (unique across tenants), a tenant and a role, exactly like an API key
(:class:`~smartpole.registry.access.Principal` carries both). Passwords are kept only as
argon2id hashes; a password is never logged, returned or stored in clear. A login opens a
session: the browser holds a random secret in a cookie, the store holds its SHA-256 and a CSRF
token. A session ends at logout, after ``idle_timeout_s`` without a request, at the end of its
absolute ``lifetime_s``, and at once when its user is disabled, loses its password or is removed.
"""

from __future__ import annotations

import builtins
import functools
import re
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from smartpole.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from smartpole.model.clock import now_ms
from smartpole.model.types import Role
from smartpole.model.users import MIN_PASSWORD_LENGTH, User, UserSession
from smartpole.registry.access import Principal, hash_secret, new_secret
from smartpole.store.schema import tenants, user_sessions, users

__all__ = ["LOGIN_REFUSED", "Users", "check_password"]

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MAX_PASSWORD_LENGTH = 1024  # hashing is costly by design: refuse megabytes before hashing them
LOGIN_REFUSED = "wrong user name or password"  # one answer: it tells no one which names exist
TOUCH_MS = 60_000  # a session's last_seen is written at most once a minute, not every request


def _problem(field: str, msg: str) -> InvalidInput:
    return InvalidInput(msg, errors=[{"loc": ["body", field], "msg": msg}])


def check_password(password: str) -> str:
    """``password`` if it is long enough, else InvalidInput saying how long it must be."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise _problem("password", f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise _problem("password", f"a password has at most {MAX_PASSWORD_LENGTH} characters")
    return password


def _check_name(name: str) -> str:
    if not NAME.match(name):
        raise _problem(
            "name",
            "a login name is 1-64 letters, digits and . _ @ -, starting with a letter or digit",
        )
    return name


@dataclass(frozen=True, slots=True)
class Login:
    """A user's session as a request sees it: who (the principal) and the session itself."""

    principal: Principal
    session: UserSession


class Users:
    """User accounts and their sessions."""

    def __init__(
        self,
        engine: Engine,
        *,
        idle_timeout_s: int = 7200,
        lifetime_s: int = 43_200,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.engine = engine
        self.idle_ms = idle_timeout_s * 1000
        self.lifetime_ms = lifetime_s * 1000
        self.hasher = hasher or PasswordHasher()  # argon2id, RFC 9106's low-memory profile

    @functools.cached_property
    def _decoy(self) -> str:
        """A hash checked for unknown names, so that they take as long as known ones."""
        return self.hasher.hash(new_secret())

    # -- accounts ---------------------------------------------------------------------------

    def _query(self) -> Any:
        return select(
            users.c.id,
            users.c.name,
            users.c.tenant_id,
            tenants.c.name.label("tenant"),
            users.c.role,
            users.c.disabled,
            users.c.created,
            users.c.updated,
            users.c.last_login,
        ).join(tenants, tenants.c.id == users.c.tenant_id)

    @staticmethod
    def _user(row: Any) -> User:
        return User(
            id=row.id,
            name=row.name,
            tenant_id=row.tenant_id,
            tenant=row.tenant,
            role=Role(row.role),
            disabled=bool(row.disabled),
            created=row.created,
            updated=row.updated,
            last_login=row.last_login,
        )

    def create(self, tenant_id: int, name: str, role: Role, password: str) -> User:
        """Add a user to a tenant; Conflict when the login name is taken."""
        _check_name(name)
        digest = self.hasher.hash(check_password(password))
        now = now_ms()
        try:
            with self.engine.begin() as conn:
                uid = conn.execute(
                    insert(users).values(
                        tenant_id=tenant_id,
                        name=name,
                        role=str(role),
                        password_hash=digest,
                        disabled=False,
                        created=now,
                        updated=now,
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
        except IntegrityError as err:
            raise Conflict(f"user {name!r} exists", name=name) from err
        return self.get(uid)

    def get(self, user_id: int) -> User:
        """One user by id."""
        with self.engine.connect() as conn:
            row = conn.execute(self._query().where(users.c.id == user_id)).first()
        if row is None:
            raise NotFound(f"user {user_id} not found", user_id=user_id)
        return self._user(row)

    def by_name(self, name: str) -> User:
        """One user by login name."""
        with self.engine.connect() as conn:
            row = conn.execute(self._query().where(users.c.name == name)).first()
        if row is None:
            raise NotFound(f"user {name!r} not found", name=name)
        return self._user(row)

    def list(self, tenant_id: int | None = None) -> builtins.list[User]:
        """A tenant's users, or everyone's (None), by id."""
        q = self._query().order_by(users.c.id)
        if tenant_id is not None:
            q = q.where(users.c.tenant_id == tenant_id)
        with self.engine.connect() as conn:
            return [self._user(r) for r in conn.execute(q)]

    def update(
        self, user_id: int, *, role: Role | None = None, disabled: bool | None = None
    ) -> User:
        """Change a user's role or disable/enable it; disabling ends its sessions at once."""
        values: dict[str, Any] = {"updated": now_ms()}
        if role is not None:
            values["role"] = str(role)
        if disabled is not None:
            values["disabled"] = disabled
        with self.engine.begin() as conn:
            if not conn.execute(update(users).where(users.c.id == user_id).values(values)).rowcount:
                raise NotFound(f"user {user_id} not found", user_id=user_id)
            if disabled:
                conn.execute(delete(user_sessions).where(user_sessions.c.user_id == user_id))
        return self.get(user_id)

    def set_password(self, user_id: int, password: str, *, keep: str | None = None) -> None:
        """Give a user a new password; every session of the user ends but ``keep`` (the
        session of a user changing its own password)."""
        digest = self.hasher.hash(check_password(password))
        with self.engine.begin() as conn:
            n = conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(password_hash=digest, updated=now_ms())
            ).rowcount
            if not n:
                raise NotFound(f"user {user_id} not found", user_id=user_id)
            ended = delete(user_sessions).where(user_sessions.c.user_id == user_id)
            if keep is not None:
                ended = ended.where(user_sessions.c.id != keep)
            conn.execute(ended)

    def check(self, user_id: int, password: str) -> bool:
        """Whether ``password`` is the user's current one (blocking: argon2 takes a while)."""
        with self.engine.connect() as conn:
            digest = conn.execute(
                select(users.c.password_hash).where(users.c.id == user_id)
            ).scalar()
        return digest is not None and self._verify(digest, password)

    def _verify(self, digest: str, password: str) -> bool:
        try:
            return self.hasher.verify(digest, password[:MAX_PASSWORD_LENGTH])
        except (VerificationError, InvalidHashError):
            return False

    # -- logins and sessions ----------------------------------------------------------------

    def verify(self, name: str, password: str) -> User:
        """The enabled user with this login name and password, else Unauthenticated with one
        message whatever was wrong (blocking: argon2 takes a while, unknown names as long)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(users.c.id, users.c.password_hash, users.c.disabled).where(
                    users.c.name == name
                )
            ).first()
        if row is None:
            self._verify(self._decoy, password)
            raise Unauthenticated(LOGIN_REFUSED)
        if not self._verify(row.password_hash, password) or row.disabled:
            raise Unauthenticated(LOGIN_REFUSED)
        if self.hasher.check_needs_rehash(row.password_hash):  # parameters were raised since
            with self.engine.begin() as conn:
                conn.execute(
                    update(users)
                    .where(users.c.id == row.id)
                    .values(password_hash=self.hasher.hash(password))
                )
        return self.get(row.id)

    def open_session(self, user: User, address: str) -> tuple[Login, str]:
        """Start a session for a verified user; returns it and the cookie's secret (only its
        hash is stored). Sessions past their end are purged on the way."""
        secret = new_secret(32)
        now = now_ms()
        session = UserSession(
            id=hash_secret(secret),
            user_id=user.id,
            csrf=new_secret(24),
            created=now,
            expires=now + self.lifetime_ms,
            last_seen=now,
            address=address[:64],
        )
        with self.engine.begin() as conn:
            conn.execute(
                delete(user_sessions).where(
                    or_(
                        user_sessions.c.expires <= now,
                        user_sessions.c.last_seen <= now - self.idle_ms,
                    )
                )
            )
            conn.execute(
                insert(user_sessions).values(
                    id=session.id,
                    user_id=session.user_id,
                    csrf=session.csrf,
                    created=session.created,
                    expires=session.expires,
                    last_seen=session.last_seen,
                    address=session.address,
                )
            )
            conn.execute(update(users).where(users.c.id == user.id).values(last_login=now))
        return self.session(secret), secret

    def session(self, secret: str) -> Login:
        """The live session behind a cookie's secret, or Unauthenticated (unknown, ended,
        idle too long, past its lifetime, or its user disabled)."""
        now = now_ms()
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    user_sessions,
                    users.c.name,
                    users.c.tenant_id,
                    users.c.role,
                    users.c.disabled,
                    tenants.c.name.label("tenant"),
                    tenants.c.is_operator,
                )
                .join(users, users.c.id == user_sessions.c.user_id)
                .join(tenants, tenants.c.id == users.c.tenant_id)
                .where(user_sessions.c.id == hash_secret(secret))
            ).first()
        if row is None or row.disabled or row.expires <= now or row.last_seen <= now - self.idle_ms:
            raise Unauthenticated("no session, or it has ended: log in again")
        session = UserSession(
            id=row.id,
            user_id=row.user_id,
            csrf=row.csrf,
            created=row.created,
            expires=row.expires,
            last_seen=row.last_seen,
            address=row.address,
        )
        if now - row.last_seen >= TOUCH_MS:
            with self.engine.begin() as conn:
                conn.execute(
                    update(user_sessions).where(user_sessions.c.id == row.id).values(last_seen=now)
                )
        principal = Principal(
            row.tenant_id,
            row.tenant,
            Role(row.role),
            bool(row.is_operator),
            user_id=row.user_id,
            name=row.name,
        )
        return Login(principal, session)

    def close_session(self, session_id: str) -> None:
        """End a session (logout)."""
        with self.engine.begin() as conn:
            conn.execute(delete(user_sessions).where(user_sessions.c.id == session_id))
