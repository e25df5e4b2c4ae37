"""Webhooks as values: a tenant's endpoint, and one delivery of an event to it.

The store and the sending task are the hub's (:mod:`smartpole.hub.webhooks.store`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Webhook", "WebhookDelivery"]


@dataclass(frozen=True, slots=True)
class Webhook:
    """A tenant's HTTPS endpoint for rule events; ``secret`` is known only when it is created
    (it is never read back)."""

    id: int
    tenant_id: int
    name: str
    url: str
    enabled: bool
    created: int
    secret: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The webhook as JSON-ready values."""
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "name": self.name,
            "url": self.url,
            "enabled": self.enabled,
            "created": self.created,
            "secret": self.secret,
        }


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One event for a webhook: the signed body, its status (pending, sending, delivered,
    failed), the attempts made and how the last one went."""

    id: int
    webhook_id: int
    event: str
    body: dict[str, Any]
    status: str
    attempts: int
    last_code: int | None
    last_error: str | None
    created: int
    next_ts: int
    done_ts: int | None

    def to_dict(self) -> dict[str, Any]:
        """The delivery as JSON-ready values."""
        return {
            "id": self.id,
            "webhook_id": self.webhook_id,
            "event": self.event,
            "body": self.body,
            "status": self.status,
            "attempts": self.attempts,
            "last_code": self.last_code,
            "last_error": self.last_error,
            "created": self.created,
            "next_ts": self.next_ts,
            "done_ts": self.done_ts,
        }
