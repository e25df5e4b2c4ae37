"""Outbound HTTP: the one client setup the webhook deliveries, the NGSI-LD notifications and
the context fetches share."""

from __future__ import annotations

import functools
import ssl

import httpx

__all__ = ["http_client", "tls_context"]


@functools.cache
def tls_context() -> ssl.SSLContext:
    """How an HTTPS server is verified: httpx's default (certifi's authorities, or
    ``SSL_CERT_FILE``/``SSL_CERT_DIR``), read once per process. Reading the authorities costs a
    tenth of a second of CPU, which every client paid again at each start."""
    return httpx.create_ssl_context()


def http_client(timeout_s: float) -> httpx.AsyncClient:
    """A client for calls to other parties' servers: verified TLS, ``timeout_s`` for each
    step, redirects not followed (a redirect could lead a call to a host its
    endpoint check refused)."""
    return httpx.AsyncClient(timeout=timeout_s, verify=tls_context())
