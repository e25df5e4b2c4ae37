"""The platform's clock: every timestamp smartpole stores or compares is milliseconds since the
Unix epoch, read here."""

from __future__ import annotations

import time

__all__ = ["now_ms"]


def now_ms() -> int:
    """Wall-clock time in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000
