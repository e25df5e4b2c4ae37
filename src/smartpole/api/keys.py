"""Telemetry and attribute keys in the REST API: a comma-separated ``keys=`` list and a
repeatable ``key=`` for keys that hold a comma, checked by the one rule of ``model.types``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from smartpole.errors import InvalidInput
from smartpole.model.types import MAX_KEY_LENGTH, key_errors, split_keys

__all__ = ["KeyList", "OneKey", "asked_keys", "checked_key"]

KeyList = Annotated[
    str | None,
    Query(
        description="comma-separated keys, each stripped of surrounding spaces",
        examples=["power,dim", "room temp,温度"],
    ),
]
OneKey = Annotated[
    list[str] | None,
    Query(
        description=f"one key exactly as it is (1-{MAX_KEY_LENGTH} characters, commas allowed); "
        "repeat it for more, alone or with keys=",
        examples=[["a,b"]],
    ),
]


def _refuse(errors: list[dict[str, object]]) -> InvalidInput:
    word = "key" if len(errors) == 1 else "keys"
    return InvalidInput(f"{len(errors)} invalid {word}: {errors[0]['msg']}", errors=errors[:50])


def asked_keys(keys: str | None, key: list[str] | None, *, required: bool = False) -> list[str]:
    """The keys a request names in ``keys=a,b`` and ``key=a`` (each once, in order); an empty
    list for all keys, unless ``required``. Raises InvalidInput locating each refused key."""
    asked = list(dict.fromkeys([*split_keys(keys or ""), *(key or ())]))
    if not asked and required:
        raise InvalidInput(
            "name the keys: keys=a,b or key=a (repeatable)",
            errors=[{"loc": ["query", "keys"], "msg": "no key given"}],
        )
    errors = key_errors(asked, "query")
    if errors:
        raise _refuse(errors)
    return asked


def checked_key(key: str, where: str = "path") -> str:
    """``key`` (a path parameter), or InvalidInput naming what is wrong with it."""
    errors = key_errors([key], where)
    if errors:
        raise _refuse(errors)
    return key
