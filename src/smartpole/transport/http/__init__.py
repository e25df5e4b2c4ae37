"""ThingsBoard-compatible HTTP device API."""

from smartpole.transport.http.device import router

__all__ = ["router"]
