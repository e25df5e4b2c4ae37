"""Webhooks: a tenant's endpoints, signed deliveries with retries (``store``) and their tables
(``tables``)."""
