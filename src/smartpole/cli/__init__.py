"""``smartpole``: the command line, a thin layer over the platform."""

from __future__ import annotations

import typer

from smartpole.cli import assets as _assets  # noqa: F401 - adds its commands to registry's groups
from smartpole.cli import (
    backup,
    broker,
    demo,
    grants,
    hub,
    lighting,
    registry,
    server,
    sim,
    users,
    workorders,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="smartpole",
    help="smartpole: the platform for a city's multi-function smart poles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: Rich's help panels load Rich's Markdown and syntax modules, which would
    # double the time ``smartpole --help`` takes (bench/cli.py).
    rich_markup_mode=None,
)
server.register(app)
demo.register(app)
registry.register(app)
grants.register(app)
broker.register(app)
hub.register(app)
lighting.register(app)
sim.register(app)
workorders.register(app)
backup.register(app)
users.register(app)


def main() -> None:
    """Entry point of the ``smartpole`` command."""
    app()
