"""A rule as it is kept: its body as written, whose it is, and when it changed.

The compiled form the engine runs (scope, condition tree, actions) is the hub's
(:mod:`smartpole.hub.rules.model`); this is what the store, the API and the command line pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["StoredRule"]


@dataclass(frozen=True, slots=True)
class StoredRule:
    """One rule of a tenant, unique by name; ``body`` is the JSON document as written."""

    id: int
    tenant_id: int
    name: str
    enabled: bool
    created: int
    updated: int
    body: dict[str, Any]

    @property
    def description(self) -> Any:
        """The body's free-text description, if it has one."""
        return self.body.get("description")

    def to_dict(self) -> dict[str, Any]:
        """The rule as JSON-ready values (API, command line)."""
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "name": self.name,
            "enabled": self.enabled,
            "created": self.created,
            "updated": self.updated,
            "body": self.body,
        }
