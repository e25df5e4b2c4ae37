"""OTA firmware chunk requests, as both MQTT transports read them (ThingsBoard's
``v2/fw/request/{request}/chunk/{n}``; behind a broker ``sp/v1/{device}/fw/request/...``)."""

from __future__ import annotations

from smartpole.errors import InvalidInput

__all__ = ["chunk_request"]


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError as err:
        raise InvalidInput(f"{what} {text!r} is not an integer") from err


def chunk_request(path: str, payload: bytes) -> tuple[str, int, int]:
    """``(request id, chunk index, chunk size)`` of ``{request}/chunk/{n}`` and its payload,
    the chunk size in ASCII digits (empty: the whole firmware)."""
    parts = path.split("/")
    if len(parts) != 3 or parts[1] != "chunk" or not parts[0]:
        raise InvalidInput(f"{path!r} is not {{request id}}/chunk/{{n}}")
    index = _int(parts[2], "chunk index")
    text = payload.decode("ascii", "replace").strip()
    size = _int(text, "chunk size") if text else 0
    if index < 0 or size < 0:
        raise InvalidInput("a firmware chunk's index and size may not be negative")
    return parts[0], index, size
