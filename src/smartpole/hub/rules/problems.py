"""The problems found in a rule body, each with its location, collected so that every one is
reported at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Loc", "Lookup", "Problems"]

Loc = list[Any]  # where in the body: ["condition", "all", 1, "op"]
Lookup = Callable[[str], int | None]  # a name (tenant, pole) to its id, None when unknown


class Problems:
    """Every problem found so far (``errors``: ``{"loc": [...], "msg": ...}``)."""

    def __init__(self) -> None:
        self.errors: list[dict[str, Any]] = []

    def err(self, loc: Loc, msg: str) -> None:
        """Note a problem at ``loc``."""
        self.errors.append({"loc": loc, "msg": msg})

    def strs(self, value: Any, loc: Loc) -> list[str]:
        """A list of strings (None: empty), or a problem."""
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.err(loc, "must be a list of strings")
            return []
        return value

    def ids(self, value: Any, loc: Loc, lookup: Lookup, what: str) -> list[int]:
        """The ids of a list of names; a problem for each name ``lookup`` does not know."""
        out = []
        for i, name in enumerate(self.strs(value, loc)):
            found = lookup(name)
            if found is None:
                self.err([*loc, i], f"no {what} {name!r}")
            else:
                out.append(found)
        return out
