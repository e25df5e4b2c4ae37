"""The HTTP face of smartpole: REST API, device HTTP API, problem+json errors."""

from smartpole.api.app import create_app

__all__ = ["create_app"]
