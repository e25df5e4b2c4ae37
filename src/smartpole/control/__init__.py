"""Control: commands to devices (server-side RPC) and their lifecycle."""

from __future__ import annotations

from smartpole.control.commands import CommandChannel, Control

__all__ = ["CommandChannel", "Control"]
