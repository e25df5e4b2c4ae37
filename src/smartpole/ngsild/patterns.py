"""Regular expressions a caller gives (``idPattern``, ``q``'s ``=~`` and ``!~=``), compiled
with RE2: matching takes time linear in the text, whatever the pattern, so a pattern such as
``(a+)+b`` cannot hold a worker (open-data readers may be anonymous). RE2 has no
back-references and no look-arounds; a pattern that uses them is ``BadRequestData``."""

from __future__ import annotations

from typing import Protocol

import re2

from smartpole.ngsild.errors import NgsiLdError

__all__ = ["MAX_PATTERN", "Pattern", "caller_pattern"]

MAX_PATTERN = 1024

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a caller's bad pattern is its error, not a line on stderr
_OPTIONS.max_mem = 1 << 20  # a pattern whose program needs more is refused


class Pattern(Protocol):
    """A compiled pattern: what smartpole calls of one."""

    pattern: str

    def search(self, text: str) -> object | None: ...

    def fullmatch(self, text: str) -> object | None: ...


def caller_pattern(text: str, what: str) -> Pattern:
    """``text`` compiled (BadRequestData, naming ``what``, when it cannot be)."""
    if len(text) > MAX_PATTERN:
        raise NgsiLdError.bad_data(f"{what}: a pattern is at most {MAX_PATTERN} characters")
    try:
        compiled: Pattern = re2.compile(text, _OPTIONS)
    except re2.error as err:
        reason = err.args[0].decode() if err.args and isinstance(err.args[0], bytes) else err
        raise NgsiLdError.bad_data(
            f"{what}: {text!r} is not a pattern smartpole takes: {reason}"
        ) from None
    return compiled
