"""Online backup and restore of the embedded store, and the lock that keeps them apart.

A backup is one copy through SQLite's online backup API (``sqlite3.Connection.backup``) in a
single step, which reads the whole database in one read transaction: a consistent snapshot of
every committed batch, while the server keeps writing (WAL: readers never block the writer).
Latest values and rollups not yet flushed are covered by the ``derived_pending`` marks that are
in the snapshot too; a restore recomputes them.

A running server holds a shared lock on ``smartpole.lock`` in the data directory (several
servers may, as before); a restore needs it exclusively, so it refuses while any server runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from smartpole.errors import Conflict, InvalidInput
from smartpole.store.files import FILE_MODE, private_dir, private_file

__all__ = [
    "DB_FILE",
    "LOCK_FILE",
    "BackupInfo",
    "adopt_pending",
    "backup",
    "inspect",
    "restore",
    "server_lock",
]

DB_FILE = "smartpole.db"
LOCK_FILE = "smartpole.lock"
SIDE_FILES = ("-wal", "-shm", "-journal")


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What a backup file holds."""

    path: Path
    revision: str | None
    readings: int
    bytes: int


def _open_lock(data_dir: Path) -> int:
    private_dir(data_dir)
    return os.open(data_dir / LOCK_FILE, os.O_CREAT | os.O_RDWR, FILE_MODE)


@contextlib.contextmanager
def server_lock(data_dir: Path, *, exclusive: bool = False) -> Iterator[None]:
    """Hold the data directory's lock: shared for a server, exclusive for a restore.

    Raises Conflict when it cannot be had at once (a server runs, or a restore does).
    """
    fd = _open_lock(data_dir)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError as err:
            what = "a smartpole server is running on" if exclusive else "a restore is replacing"
            raise Conflict(f"{what} {data_dir}; stop it first", data_dir=str(data_dir)) from err
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _readings(conn: sqlite3.Connection) -> int:
    with contextlib.suppress(sqlite3.DatabaseError):
        return int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])
    return 0


def _revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError:
        return None
    return None if row is None else str(row[0])


def backup(db_path: Path, dest: Path) -> BackupInfo:
    """Copy the database at ``db_path`` to ``dest`` (created 0600; must not exist), online."""
    if not db_path.exists():
        raise InvalidInput(f"no embedded store at {db_path}")
    if dest.exists():
        raise Conflict(f"{dest} exists; choose a new file name", path=str(dest))
    private_file(dest)
    try:
        src = sqlite3.connect(db_path, timeout=30)  # read only in effect; WAL needs the -shm
        out = sqlite3.connect(dest)
        try:
            src.execute("PRAGMA busy_timeout=30000")
            # one step (pages=-1): one read transaction, so a consistent snapshot even while
            # the server commits; stepping would restart at every commit of another connection
            src.backup(out, pages=-1)
            out.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            return BackupInfo(dest, _revision(out), _readings(out), dest.stat().st_size)
        finally:
            src.close()
            out.close()
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def inspect(path: Path) -> BackupInfo:
    """Check that ``path`` is an intact smartpole database; raise InvalidInput if not."""
    if not path.is_file():
        raise InvalidInput(f"no backup file at {path}")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            ok = conn.execute("PRAGMA quick_check").fetchone()[0]
            revision = _revision(conn)
            readings = _readings(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError as err:
        raise InvalidInput(f"{path} is not an SQLite database: {err}") from err
    if ok != "ok":
        raise InvalidInput(f"{path} is damaged: {ok}")
    if revision is None:
        raise InvalidInput(f"{path} is not a smartpole database (no schema revision)")
    return BackupInfo(path, revision, readings, path.stat().st_size)


def restore(source: Path, data_dir: Path) -> Path | None:
    """Make ``source`` the data directory's database; call under the exclusive lock.

    The database it replaces, with its -wal and -shm, is moved to ``replaced-<time>/`` (its
    path is returned; None when there was none): a stale WAL beside the new file would be
    replayed into it.
    """
    db = data_dir / DB_FILE
    staged = data_dir / f"{DB_FILE}.restoring"
    staged.unlink(missing_ok=True)
    private_file(staged)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    out = sqlite3.connect(staged)
    try:
        src.backup(out, pages=-1)
    finally:
        src.close()
        out.close()
    aside: Path | None = None
    if db.exists() and db.stat().st_size == 0:
        db.unlink()  # created by opening an empty data directory: nothing to keep
    if db.exists():
        aside = private_dir(data_dir / time.strftime("replaced-%Y%m%dT%H%M%S"))
        db.replace(aside / DB_FILE)
    for suffix in SIDE_FILES:
        side = data_dir / (DB_FILE + suffix)
        if side.exists():
            if aside is not None:
                side.replace(aside / side.name)
            else:
                side.unlink()
    staged.replace(db)
    return aside


def adopt_pending(db_path: Path, node: str) -> int:
    """Give this node the restored database's marks of unflushed derived state (they carry the
    name of the node that took the backup), so that its recovery recomputes them."""
    conn = sqlite3.connect(db_path)
    try:
        with conn:
            return conn.execute("UPDATE derived_pending SET node = ?", (node,)).rowcount
    finally:
        conn.close()
