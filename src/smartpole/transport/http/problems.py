"""problem+json answers (RFC 9457), shared by the REST API (:mod:`smartpole.api.problems`) and
the HTTP device API, which answers in the same form without depending on the REST API."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

__all__ = ["PROBLEM_MEDIA_TYPE", "PROBLEM_TYPE", "problem"]

PROBLEM_TYPE = "https://smartpole.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem(
    status: int, title: str, detail: str, /, *, retry_after: int = 1, **extra: Any
) -> Response:
    """A problem+json response; ``extra`` adds members (an error's fields may be named like a
    standard member, ``title`` say: the standard member wins). A 503 tells when to retry:
    ``Retry-After``, in seconds."""
    body = {
        **extra,  # first: an error's own field never hides a standard member (say, ``type``)
        "type": PROBLEM_TYPE + title.lower().replace(" ", "-"),
        "title": title,
        "status": status,
        "detail": detail,
    }
    headers = {"Retry-After": str(retry_after)} if status in (429, 503) else None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return Response(
        orjson.dumps(body, default=str),
        status,
        headers=headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )
