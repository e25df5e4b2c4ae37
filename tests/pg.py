"""A private, throw-away PostgreSQL cluster for the tests (Debian's package binaries).

The cluster lives in a temporary directory, listens on a free TCP port on 127.0.0.1 only and
is tuned for speed (no fsync). When the tests run as root (CI), ``initdb`` and ``postgres``
refuse to run, so every server command goes through ``runuser -u postgres``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

__all__ = ["PostgresCluster", "find_bindir"]

SERVER_USER = "postgres"  # the OS account that runs the server when we are root
SUPERUSER = "postgres"  # the database superuser initdb creates


def _version(bindir: str) -> tuple[int, ...]:
    name = Path(bindir).parent.name
    return tuple(int(p) for p in name.split(".") if p.isdigit()) or (0,)


def find_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb`` and ``pg_ctl``."""
    candidates = [
        d
        for d in glob.glob("/usr/lib/postgresql/*/bin")
        if os.access(os.path.join(d, "initdb"), os.X_OK)
        and os.access(os.path.join(d, "pg_ctl"), os.X_OK)
    ]
    if not candidates:
        raise RuntimeError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; "
            "run `make test`, which installs postgresql, instead of calling pytest directly."
        )
    return Path(max(candidates, key=_version))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    """A cluster: :meth:`start` it, :meth:`create_database` in it, then :meth:`stop` it."""

    def __init__(self, durable: bool = False) -> None:
        self.bindir = find_bindir()
        self.durable = durable  # fsync on, as in production (benchmarks); off for tests
        self.as_root = os.geteuid() == 0
        self.root: Path | None = None
        self.port = 0
        self.running = False

    # -- paths ----------------------------------------------------------------------------
    @property
    def datadir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def sockdir(self) -> Path:
        assert self.root is not None
        return self.root / "sock"

    @property
    def logfile(self) -> Path:
        assert self.root is not None
        return self.root / "postgres.log"

    def url(self, dbname: str = "postgres") -> str:
        """libpq URL of a database in the cluster, as the superuser."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    # -- commands -------------------------------------------------------------------------
    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / tool), *args]
        if self.as_root:
            cmd = ["runuser", "-u", SERVER_USER, "--", *cmd]
        assert self.root is not None
        # cwd: the server user must be able to enter the working directory.
        return subprocess.run(
            cmd, cwd=self.root, capture_output=True, text=True, check=False, timeout=120
        )

    def _check(self, what: str, proc: subprocess.CompletedProcess[str]) -> None:
        if proc.returncode != 0:
            log = ""
            if self.logfile.exists():
                log = self.logfile.read_text(errors="replace")[-4000:]
            raise RuntimeError(
                f"{what} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n{log}"
            )

    def start(self, port: int | None = None) -> PostgresCluster:
        """Create the cluster in a fresh temporary directory and start the server (on ``port``
        when given: a new server at an old one's address, as after a failover)."""
        self.root = Path(tempfile.mkdtemp(prefix="smartpole-pg-", dir="/tmp"))
        self.root.chmod(0o755)
        self.sockdir.mkdir()
        if self.as_root:
            try:
                pw = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise RuntimeError(
                    f"running as root but there is no {SERVER_USER!r} user to run PostgreSQL; "
                    "run `make test`, which installs postgresql."
                ) from None
            for path in (self.root, self.sockdir):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        proc = self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        self._check("initdb", proc)
        last: RuntimeError | None = None
        for _ in range(1 if port else 5):  # a free port can be taken before we bind: retry
            self.port = port or _free_port()
            proc = self._pg_ctl_start()
            if proc.returncode == 0:
                self.running = True
                return self
            try:
                self._check("pg_ctl start", proc)
            except RuntimeError as exc:
                last = exc
        assert last is not None
        raise last

    def _pg_ctl_start(self) -> subprocess.CompletedProcess[str]:
        opts = f"-p {self.port} -k {self.sockdir} -c listen_addresses=127.0.0.1"
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        return self._run(
            "pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile), "-o", opts, "-w", "start"
        )

    def halt(self) -> None:
        """Stop the server as an operator's restart does (``-m fast``), keeping its data."""
        proc = self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")
        self._check("pg_ctl stop", proc)
        self.running = False

    def resume(self) -> None:
        """Start the halted server again, same data, same port."""
        self._check("pg_ctl start", self._pg_ctl_start())
        self.running = True

    def execute(self, query: str, *params: object) -> list[tuple[object, ...]]:
        """Run one statement as the superuser (``pg_terminate_backend``, settings)."""
        with self._admin() as conn:
            cur = conn.execute(query, params or None)
            return cur.fetchall() if cur.description else []

    def failover(self) -> PostgresCluster:
        """Halt this server and start a copy of its data on the same port: a standby promoted
        at the old server's address. Returns the new cluster (stop both when done)."""
        self.halt()
        new = PostgresCluster(self.durable)
        new.root = Path(tempfile.mkdtemp(prefix="smartpole-pg-", dir="/tmp"))
        new.root.chmod(0o755)
        # cp -a keeps the owner (the postgres account when we are root) and the modes
        subprocess.run(["cp", "-a", str(self.datadir), str(new.datadir)], check=True)
        subprocess.run(["cp", "-a", str(self.sockdir), str(new.sockdir)], check=True)
        if self.as_root:
            pw = pwd.getpwnam(SERVER_USER)
            os.chown(new.root, pw.pw_uid, pw.pw_gid)
        new.port = self.port
        new.resume()
        return new

    def stop(self) -> None:
        """Stop the server at once and remove the cluster's directory."""
        try:
            if self.running:
                proc = self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
                self.running = False
                self._check("pg_ctl stop", proc)
        finally:
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = None

    # -- databases ------------------------------------------------------------------------
    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url(), autocommit=True)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create an empty database (or a copy of ``template``); return its URL."""
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with self._admin() as conn:
            conn.execute(query)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, closing any connection still open to it."""
        with self._admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
