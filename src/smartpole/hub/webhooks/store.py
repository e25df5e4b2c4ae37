"""Webhooks: a tenant's HTTPS endpoints that hear about its rules firing, signed and retried.

Each delivery is a row first (so it survives a restart and shows in the API), then a POST of
exactly the stored bytes with ``X-Smartpole-Signature: sha256=<hex HMAC-SHA256 of the body
with the webhook's secret>``. A non-2xx answer or a network error is retried after
``backoff * 2**(attempt-1)`` until ``attempts`` tries were made; then the delivery is
``failed``. The secret is shown once, at creation, and never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from sqlalchemy import Engine, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from smartpole.errors import Conflict, InvalidInput, NotFound
from smartpole.hub.webhooks.tables import webhook_deliveries, webhooks
from smartpole.loops import WorkLoop
from smartpole.model.clock import now_ms
from smartpole.model.types import Role
from smartpole.model.webhooks import Webhook, WebhookDelivery
from smartpole.outbound import http_client
from smartpole.registry.access import Principal, new_secret

__all__ = ["SIGNATURE_HEADER", "Webhooks", "sign"]

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Smartpole-Signature"
PENDING, SENDING, DELIVERED, FAILED = "pending", "sending", "delivered", "failed"


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_of(row: Any, *, with_secret: bool = False) -> Webhook:
    """A webhook from its table row; the secret only when asked (the answer to its creation)."""
    m = row._mapping
    return Webhook(
        id=m["id"],
        tenant_id=m["tenant_id"],
        name=m["name"],
        url=m["url"],
        enabled=bool(m["enabled"]),
        created=m["created"],
        secret=m["secret"] if with_secret else None,
    )


def delivery_of(row: Any) -> WebhookDelivery:
    """A delivery from its table row (the body parsed from the signed JSON text)."""
    m = row._mapping
    return WebhookDelivery(
        id=m["id"],
        webhook_id=m["webhook_id"],
        event=m["event"],
        body=orjson.loads(m["body"]),
        status=m["status"],
        attempts=m["attempts"],
        last_code=m["last_code"],
        last_error=m["last_error"],
        created=m["created"],
        next_ts=m["next_ts"],
        done_ts=m["done_ts"],
    )


@dataclass(frozen=True, slots=True)
class _Due:
    """A delivery claimed for sending: its exact bytes and where they go."""

    id: int
    event: str
    body: str
    attempts: int
    url: str
    secret: str


class Webhooks:
    """Webhook endpoints per tenant, their deliveries, and the task that sends them."""

    def __init__(
        self,
        engine: Engine,
        *,
        attempts: int = 5,
        backoff_ms: int = 1000,
        timeout_s: float = 10.0,
    ) -> None:
        self.engine = engine
        self.attempts = attempts
        self.backoff_ms = backoff_ms
        self.timeout_s = timeout_s
        self._loop = WorkLoop("webhook-deliveries", self._send_due)
        self._client: httpx.AsyncClient | None = None

    # -- endpoints --------------------------------------------------------------------------
    def create(self, who: Principal, name: str, url: str, secret: str | None = None) -> Webhook:
        """Add a webhook of the caller's tenant (admin); the answer carries the secret once."""
        who.require(Role.ADMIN)
        if not url.startswith(("http://", "https://")):
            raise InvalidInput("a webhook URL starts with http:// or https://", url=url)
        secret = secret or new_secret(24)
        values = {
            "tenant_id": who.tenant_id,
            "name": name,
            "url": url,
            "secret": secret,
            "enabled": True,
            "created": now_ms(),
        }
        try:
            with self.engine.begin() as conn:
                row = conn.execute(insert(webhooks).values(**values).returning(*webhooks.c))
                return webhook_of(row.one(), with_secret=True)
        except IntegrityError as err:
            raise Conflict(f"webhook {name!r} exists", name=name) from err

    def visible(self, who: Principal) -> list[Webhook]:
        """The caller's tenant's webhooks (every tenant's for the city operator)."""
        q = select(webhooks).order_by(webhooks.c.id)
        if not who.is_operator:
            q = q.where(webhooks.c.tenant_id == who.tenant_id)
        with self.engine.connect() as conn:
            return [webhook_of(r) for r in conn.execute(q)]

    def get(self, who: Principal, hook_id: int) -> Webhook:
        """A visible webhook, without its secret."""
        q = select(webhooks).where(webhooks.c.id == hook_id)
        if not who.is_operator:
            q = q.where(webhooks.c.tenant_id == who.tenant_id)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"webhook {hook_id} not found", webhook_id=hook_id)
        return webhook_of(row)

    def delete(self, who: Principal, hook_id: int) -> None:
        """Delete a visible webhook and its deliveries (admin)."""
        who.require(Role.ADMIN)
        self.get(who, hook_id)
        with self.engine.begin() as conn:
            conn.execute(delete(webhooks).where(webhooks.c.id == hook_id))

    def exists(self, tenant_id: int, name: str) -> bool:
        """Whether the tenant has a webhook of this name."""
        q = select(webhooks.c.id).where(webhooks.c.tenant_id == tenant_id, webhooks.c.name == name)
        with self.engine.connect() as conn:
            return conn.execute(q).first() is not None

    def deliveries(self, who: Principal, hook_id: int, limit: int = 100) -> list[WebhookDelivery]:
        """The webhook's deliveries, newest first, with their attempts and last outcome."""
        self.get(who, hook_id)
        q = (
            select(webhook_deliveries)
            .where(webhook_deliveries.c.webhook_id == hook_id)
            .order_by(webhook_deliveries.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [delivery_of(r) for r in conn.execute(q)]

    # -- deliveries -------------------------------------------------------------------------
    def enqueue(self, tenant_id: int, name: str, event: str, payload: dict[str, Any]) -> int | None:
        """Record a delivery to the tenant's webhook ``name``; None if it has none (enabled)."""
        q = select(webhooks.c.id).where(
            webhooks.c.tenant_id == tenant_id, webhooks.c.name == name, webhooks.c.enabled
        )
        now = now_ms()
        with self.engine.begin() as conn:
            hook_id = conn.execute(q).scalar()
            if hook_id is None:
                return None
            row = {
                "webhook_id": hook_id,
                "event": event,
                "body": orjson.dumps(payload).decode(),
                "status": PENDING,
                "attempts": 0,
                "created": now,
                "next_ts": now,
            }
            ins = insert(webhook_deliveries).values(**row).returning(webhook_deliveries.c.id)
            delivery_id = int(conn.execute(ins).scalar_one())
        self._loop.wake()
        return delivery_id

    async def start(self) -> None:
        """Start the delivery task."""
        self._client = http_client(self.timeout_s)
        self._loop.start()

    async def stop(self) -> None:
        """Stop sending (a delivery in flight finishes first) and close the client."""
        await self._loop.stop()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _send_due(self) -> float:
        """Send every due delivery; return how long to sleep until the next one is due."""
        due, next_ts = await asyncio.to_thread(self._claim_due, now_ms())
        if due:
            await asyncio.gather(*(self._send(d) for d in due))
            return 0.0
        if next_ts is None:
            return 1.0
        return max(0.0, min(1.0, (next_ts - now_ms()) / 1000))

    def _claim_due(self, now: int) -> tuple[list[_Due], int | None]:
        j = webhook_deliveries.join(webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id)
        q = (
            select(webhook_deliveries, webhooks.c.url, webhooks.c.secret)
            .select_from(j)
            .where(webhook_deliveries.c.status == PENDING, webhook_deliveries.c.next_ts <= now)
            .order_by(webhook_deliveries.c.next_ts)
            .limit(32)
        )
        claimed = []
        with self.engine.begin() as conn:
            for r in conn.execute(q).all():
                m = r._mapping
                # Claiming by a conditional update keeps two nodes from sending one delivery.
                got = conn.execute(
                    update(webhook_deliveries)
                    .where(
                        and_(
                            webhook_deliveries.c.id == m["id"],
                            webhook_deliveries.c.status == PENDING,
                        )
                    )
                    .values(status=SENDING)
                )
                if got.rowcount == 1:
                    claimed.append(
                        _Due(m["id"], m["event"], m["body"], m["attempts"], m["url"], m["secret"])
                    )
            nxt = conn.execute(
                select(webhook_deliveries.c.next_ts)
                .where(webhook_deliveries.c.status == PENDING)
                .order_by(webhook_deliveries.c.next_ts)
                .limit(1)
            ).scalar()
        return claimed, nxt

    async def _send(self, d: _Due) -> None:
        assert self._client is not None
        body = d.body.encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(d.secret, body),
            "X-Smartpole-Event": d.event,
            "X-Smartpole-Delivery": str(d.id),
        }
        code: int | None = None
        error: str | None = None
        try:
            r = await self._client.post(d.url, content=body, headers=headers)
            code = r.status_code
            if not 200 <= code < 300:
                error = f"HTTP {code}"
        except httpx.HTTPError as err:
            error = f"{type(err).__name__}: {err}"[:500]
        await asyncio.to_thread(self._record, d, code, error)

    def _record(self, d: _Due, code: int | None, error: str | None) -> None:
        attempts = d.attempts + 1
        now = now_ms()
        values: dict[str, Any] = {"attempts": attempts, "last_code": code, "last_error": error}
        if error is None:
            values.update(status=DELIVERED, done_ts=now)
        elif attempts >= self.attempts:
            values.update(status=FAILED, done_ts=now)
            log.warning("webhook delivery %s failed after %d attempts", d.id, attempts)
        else:
            values.update(status=PENDING, next_ts=now + self.backoff_ms * 2 ** (attempts - 1))
        with self.engine.begin() as conn:
            conn.execute(
                update(webhook_deliveries).where(webhook_deliveries.c.id == d.id).values(**values)
            )
        if error is not None:
            self._loop.wake()
