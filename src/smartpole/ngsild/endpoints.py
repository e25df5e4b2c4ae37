"""Where NGSI-LD notifications may go: an absolute http(s) URL and, unless private endpoints
are allowed (``ngsi_ld_private_endpoints``), not a loopback, private or link-local address."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from smartpole.ngsild.errors import NgsiLdError

__all__ = ["check_endpoint"]


def check_endpoint(uri: Any, *, allow_private: bool) -> str:
    """A notification endpoint: an absolute http(s) URL; with ``allow_private`` off, not a
    loopback, private or link-local address (by its literal IP or what its host resolves to)."""
    if not isinstance(uri, str):
        raise NgsiLdError.bad_data("notification.endpoint.uri must be a URL")
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError:
        raise NgsiLdError.bad_data(f"notification.endpoint.uri {uri!r} is not a URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise NgsiLdError.bad_data(f"notification.endpoint.uri {uri!r} is not an http(s) URL")
    if not allow_private:
        try:
            infos = socket.getaddrinfo(host, None)
        except OSError:
            infos = []
        addresses = {str(info[4][0]) for info in infos}
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            if not ip.is_global:
                raise NgsiLdError.bad_data(
                    f"notification.endpoint.uri {uri!r} is a private address ({ip}), and this "
                    "node does not notify those (ngsi_ld_private_endpoints)"
                )
    return uri
