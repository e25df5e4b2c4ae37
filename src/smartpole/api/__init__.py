"""The HTTP face of smartpole: REST API, device HTTP API, problem+json errors."""

from smartpole.api.app import bind, create_app
from smartpole.api.services import Services

__all__ = ["Services", "bind", "create_app"]
