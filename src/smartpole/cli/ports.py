"""The listening options ``serve`` and ``demo`` share, and the check that their ports are free.

The check runs before anything is printed: a port another program holds ends the command with
one line that names the port, what smartpole would serve on it, and the option and environment
variable that pick another, instead of a traceback after the banner.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from smartpole.config import Settings

__all__ = [
    "Host",
    "HttpPort",
    "Listener",
    "MqttPort",
    "PortTaken",
    "check_ports",
    "ensure_free",
    "listeners",
]

Host = Annotated[str | None, typer.Option("--host", help="Listen address (default 127.0.0.1).")]
HttpPort = Annotated[int | None, typer.Option("--http-port", help="HTTP port (default 8080).")]
MqttPort = Annotated[
    int | None,
    typer.Option("--mqtt-port", help="MQTT port (default 1883; 0 picks a free one; -1 off)."),
]


@dataclass(frozen=True, slots=True)
class Listener:
    """A port smartpole listens on: what it serves there and how an operator picks another."""

    what: str  # "HTTP", "MQTT"
    host: str
    port: int
    option: str  # the command line option
    env: str  # the environment variable

    def __str__(self) -> str:
        return f"{self.what} port {self.port} on {self.host}"


class PortTaken(Exception):
    """A listener's port cannot be bound; ``str()`` is the one line to show the operator."""

    def __init__(self, listener: Listener, err: OSError) -> None:
        self.listener = listener
        self.errno = err.errno
        if err.errno == errno.EADDRINUSE:
            problem = f"{listener} is taken (by another program, or a smartpole already running)"
        elif err.errno == errno.EACCES:
            problem = f"{listener} needs privileges this user lacks"
        else:
            problem = f"cannot listen on {listener}: {err.strerror or err}"
        pick = f"pick another with {listener.option} PORT or {listener.env}=PORT"
        super().__init__(f"{problem}; {pick}")


def listeners(settings: Settings) -> list[Listener]:
    """The ports a platform with these settings would bind (0 picks a free one: not listed)."""
    s = settings
    out = []
    if s.http_port > 0:
        out.append(Listener("HTTP", s.host, s.http_port, "--http-port", "SMARTPOLE_HTTP_PORT"))
    if s.mqtt_port > 0:
        out.append(Listener("MQTT", s.host, s.mqtt_port, "--mqtt-port", "SMARTPOLE_MQTT_PORT"))
    return out


def check_ports(settings: Settings) -> None:
    """Raise :class:`PortTaken` for the first port that cannot be bound now."""
    for listener in listeners(settings):
        _try_bind(listener)


def _try_bind(listener: Listener) -> None:
    try:
        infos = socket.getaddrinfo(
            listener.host or None, listener.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as err:
        raise PortTaken(listener, OSError(errno.EADDRNOTAVAIL, str(err))) from err
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        # As the servers bind: SO_REUSEADDR, so a port in TIME_WAIT counts as free.
        if os.name != "nt":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as err:
            raise PortTaken(listener, err) from err


def ensure_free(settings: Settings) -> None:
    """Check the ports; a taken one ends the command with its one-line message, exit status 1."""
    try:
        check_ports(settings)
    except PortTaken as err:
        from rich.markup import escape

        from smartpole.cli.common import console

        console.print(f"[red]error:[/red] {escape(str(err))}", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from err
