"""Where rule bodies are kept: per tenant, unique by name, each a :class:`StoredRule`.

The body format and its checks are in :mod:`smartpole.hub.rules.parser`; the compiled rules
in :mod:`smartpole.hub.rules.model`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from smartpole.errors import Conflict, NotFound
from smartpole.hub.rules.model import Rule
from smartpole.hub.rules.tables import rules
from smartpole.model.clock import now_ms
from smartpole.model.rules import StoredRule
from smartpole.model.types import Role
from smartpole.registry.access import Principal

__all__ = ["RuleStore", "stored_rule"]


def stored_rule(row: Any) -> StoredRule:
    """A rule from its table row (the body parsed from its JSON text)."""
    m = row._mapping
    return StoredRule(
        id=m["id"],
        tenant_id=m["tenant_id"],
        name=m["name"],
        enabled=m["enabled"],
        created=m["created"],
        updated=m["updated"],
        body=orjson.loads(m["body"]),
    )


class RuleStore:
    """Rules kept as their bodies (names, not ids), per tenant, unique by name."""

    def __init__(self, engine: Engine, check: Callable[[int, bool, dict[str, Any]], Rule]) -> None:
        self.engine = engine
        self.check = check  # compiles a body for a tenant, raising InvalidInput

    def _visible(self, who: Principal) -> Any:
        return True if who.is_operator else rules.c.tenant_id == who.tenant_id

    def put(self, who: Principal, body: dict[str, Any]) -> tuple[StoredRule, bool]:
        """Create the rule, or replace the caller's rule of that name; return it and whether
        it was created."""
        who.require(Role.OPERATOR)
        rule = self.check(who.tenant_id, who.is_operator, body)
        now = now_ms()
        text = orjson.dumps(body).decode()
        with self.engine.begin() as conn:
            q = select(rules.c.id).where(
                rules.c.tenant_id == who.tenant_id, rules.c.name == rule.name
            )
            existing = conn.execute(q).scalar()
            values = {"enabled": rule.enabled, "body": text, "updated": now}
            if existing is not None:
                conn.execute(update(rules).where(rules.c.id == existing).values(**values))
                rule_id, created = existing, False
            else:
                try:
                    ins = insert(rules).values(
                        tenant_id=who.tenant_id, name=rule.name, created=now, **values
                    )
                    rule_id = conn.execute(ins.returning(rules.c.id)).scalar_one()
                except IntegrityError as err:
                    raise Conflict(f"rule {rule.name!r} was created meanwhile") from err
                created = True
        return self.get(who, rule_id), created

    def get(self, who: Principal, rule_id: int) -> StoredRule:
        """A visible rule; NotFound otherwise."""
        q = select(rules).where(rules.c.id == rule_id, self._visible(who))
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"rule {rule_id} not found", rule_id=rule_id)
        return stored_rule(row)

    def by_name(self, who: Principal, name: str) -> StoredRule:
        """The caller's rule of this name; NotFound otherwise."""
        q = select(rules).where(rules.c.name == name, rules.c.tenant_id == who.tenant_id)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"rule {name!r} not found", name=name)
        return stored_rule(row)

    def visible(self, who: Principal) -> list[StoredRule]:
        """The rules the caller sees (every tenant's for the city operator), by id."""
        q = select(rules).where(self._visible(who)).order_by(rules.c.id)
        with self.engine.connect() as conn:
            return [stored_rule(r) for r in conn.execute(q)]

    def delete(self, who: Principal, rule_id: int) -> None:
        """Delete a visible rule (operator role)."""
        who.require(Role.OPERATOR)
        self.get(who, rule_id)
        with self.engine.begin() as conn:
            conn.execute(delete(rules).where(rules.c.id == rule_id))

    def all(self) -> list[StoredRule]:
        """Every rule of every tenant (the engine's view)."""
        with self.engine.connect() as conn:
            return [stored_rule(r) for r in conn.execute(select(rules).order_by(rules.c.id))]

    def version(self) -> tuple[int, int, int]:
        """(count, max id, max updated): changes when any rule is added, changed or deleted."""
        q = select(func.count(), func.max(rules.c.id), func.max(rules.c.updated))
        with self.engine.connect() as conn:
            n, top, updated = conn.execute(q).one()
        return int(n), int(top or 0), int(updated or 0)
