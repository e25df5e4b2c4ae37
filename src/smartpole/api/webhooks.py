"""REST endpoints of webhooks: a tenant's endpoints for rule events, and their deliveries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from smartpole.api.deps import Caller, WebhooksDep
from smartpole.api.schemas import Id

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["webhooks"])


class WebhookIn(BaseModel):
    """A webhook endpoint; the secret is generated unless given."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128, examples=["city-ops"])
    url: str = Field(
        min_length=8, max_length=2000, examples=["https://ops.example/hooks/smartpole"]
    )
    secret: str | None = Field(None, min_length=16, max_length=200)


class WebhookOut(BaseModel):
    """A webhook endpoint (its secret is shown only when it is created)."""

    id: int
    tenant_id: int
    name: str
    url: str
    enabled: bool
    created: int
    secret: str | None = Field(None, description="only in the answer to its creation")


class DeliveryOut(BaseModel):
    """One delivery of an event to a webhook and how its attempts went."""

    id: int
    webhook_id: int
    event: str
    body: dict[str, Any]
    status: str = Field(description="pending, sending, delivered or failed")
    attempts: int
    last_code: int | None
    last_error: str | None
    created: int
    next_ts: int = Field(description="when the next attempt is due (pending)")
    done_ts: int | None


@router.post("/webhooks", status_code=201, summary="Create a webhook")
def create_webhook(webhooks: WebhooksDep, who: Caller, body: WebhookIn) -> WebhookOut:
    """Add a webhook of the caller's tenant (admin). Each POST to it carries
    ``X-Smartpole-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with the secret>``;
    the secret is in this answer only."""
    return WebhookOut(**webhooks.create(who, body.name, body.url, body.secret).to_dict())


@router.get("/webhooks", summary="List webhooks")
def list_webhooks(webhooks: WebhooksDep, who: Caller) -> list[WebhookOut]:
    """The caller's tenant's webhooks, without secrets."""
    return [WebhookOut(**w.to_dict()) for w in webhooks.visible(who)]


@router.delete("/webhooks/{webhook_id}", status_code=204, summary="Delete a webhook")
def delete_webhook(webhooks: WebhooksDep, who: Caller, webhook_id: Id) -> Response:
    """Delete a webhook and its deliveries (admin)."""
    webhooks.delete(who, webhook_id)
    return Response(status_code=204)


@router.get("/webhooks/{webhook_id}/deliveries", summary="List a webhook's deliveries")
def list_deliveries(
    webhooks: WebhooksDep,
    who: Caller,
    webhook_id: Id,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeliveryOut]:
    """Deliveries newest first: status, attempts made, last HTTP status or error."""
    return [DeliveryOut(**d.to_dict()) for d in webhooks.deliveries(who, webhook_id, limit)]
