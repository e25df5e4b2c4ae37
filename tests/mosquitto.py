"""A private Mosquitto broker for the tests (Debian's ``/usr/sbin/mosquitto``).

It listens on a free port of 127.0.0.1, refuses anonymous clients and uses the password and
ACL files it is given (those ``smartpole broker mosquitto`` writes). When the tests run as root
(CI) Mosquitto would switch to the ``mosquitto`` user before reading those files from the
private temporary directory, so it is told to stay root.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["Mosquitto", "find_mosquitto", "free_port"]


def find_mosquitto() -> str:
    """The broker's binary; run ``make test`` (scripts/system-deps.sh) when it is missing."""
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None
    )
    if found is None:
        raise RuntimeError("mosquitto not found; `make test` installs it (scripts/system-deps.sh)")
    return found


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on (now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """One broker process: :meth:`start`, :meth:`reload` (SIGHUP), :meth:`stop`."""

    def __init__(self, root: Path, passwd: Path, acl: Path, port: int | None = None) -> None:
        self.root = root
        self.passwd = passwd
        self.acl = acl
        self.port = port or 0
        self.conf = root / "mosquitto.conf"
        self.log = root / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        """Start on ``port`` (a free one the first time) and wait until it accepts connections."""
        for _ in range(5):  # the free port can be taken between probing and binding: retry
            port = self.port or free_port()
            lines = [
                f"listener {port} 127.0.0.1",
                "allow_anonymous false",
                f"password_file {self.passwd}",
                f"acl_file {self.acl}",
                "persistence false",
                "max_queued_messages 100000",
                f"log_dest file {self.log}",
                "log_type all",
            ]
            if os.geteuid() == 0:
                lines.append("user root")
            self.conf.write_text("\n".join(lines) + "\n")
            self.proc = subprocess.Popen(
                [find_mosquitto(), "-c", str(self.conf)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait(port):
                self.port = port
                return self
            self.stop()
        raise RuntimeError(f"mosquitto did not start:\n{self.tail()}")

    def _wait(self, port: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    @property
    def url(self) -> str:
        """The broker URL smartpole is given (``--broker``)."""
        return f"mqtt://127.0.0.1:{self.port}"

    def reload(self) -> None:
        """Make the broker re-read its password and ACL files."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)

    def stop(self) -> None:
        """Stop the broker (its sessions go with it: ``persistence false``)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def tail(self, lines: int = 40) -> str:
        """The end of the broker's log, for failure messages."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
