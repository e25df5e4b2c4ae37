"""smartpole: an open platform for a city's multi-function smart poles."""

__version__ = "0.1.0"
__all__ = ["__version__"]
