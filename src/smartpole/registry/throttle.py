"""Slowing down password guessing: failed logins per user name and per address.

After ``max_failures`` failed logins in a row for one user name (or from one address), each a
minute or less after the one before, further attempts for that name (from that address) are
refused until a delay has passed: 1 s after the fifth failure, doubling with each further one up
to ``max_delay_s``. A success ends its own name's and its own address's run only: an attacker's
address stays slowed when the real user logs in from elsewhere. The counts live in this node's
memory (several nodes each count their own attempts).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LoginThrottle"]

WINDOW_S = 60.0  # a failure more than this after the previous block's end starts a new run
MAX_TRACKED = 100_000  # names and addresses remembered at most (stale ones go first)


@dataclass(slots=True)
class _Run:
    failures: int
    until: float  # no attempt before this (monotonic seconds)


class LoginThrottle:
    """Counts failed logins by user name and by address and says how long to wait."""

    def __init__(
        self,
        max_failures: int = 5,
        max_delay_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.max_delay_s = max_delay_s
        self.clock = clock
        self._runs: dict[tuple[str, str], _Run] = {}

    @staticmethod
    def _keys(name: str, address: str) -> tuple[tuple[str, str], tuple[str, str]]:
        return ("name", name.casefold()), ("address", address)

    def retry_after(self, name: str, address: str) -> float:
        """Seconds before a login for ``name`` from ``address`` may be tried (0: now)."""
        now = self.clock()
        wait = 0.0
        for key in self._keys(name, address):
            run = self._runs.get(key)
            if run is not None:
                wait = max(wait, run.until - now)
        return wait

    def failed(self, name: str, address: str) -> None:
        """Count a failed login."""
        now = self.clock()
        if len(self._runs) >= MAX_TRACKED:
            self._forget(now)
        for key in self._keys(name, address):
            run = self._runs.get(key)
            if run is None or now - run.until > WINDOW_S:
                run = self._runs[key] = _Run(0, now)
            run.failures += 1
            over = run.failures - self.max_failures
            run.until = now + min(self.max_delay_s, 2.0**over) if over >= 0 else now

    def succeeded(self, name: str, address: str) -> None:
        """A login succeeded: its name and address start afresh (no other address does)."""
        for key in self._keys(name, address):
            self._runs.pop(key, None)

    def _forget(self, now: float) -> None:
        for key in [k for k, run in self._runs.items() if now - run.until > WINDOW_S]:
            del self._runs[key]
