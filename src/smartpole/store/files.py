"""Files the store and the CLI keep under the data directory, readable by their owner only.

The data directory holds the embedded database (every reading, the hashes of every token and
key), backups and the demo's credentials: none of it is for other local users. Directories are
made 0700 and files 0600 regardless of the umask; ones an older version left wider are narrowed
when smartpole opens them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "private_dir", "private_file", "write_private"]

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


def _narrow(path: Path, mode: int) -> None:
    """Take group and other rights away from an existing path we own."""
    with contextlib.suppress(OSError):  # not ours, or read-only: leave it to the operator
        st = path.stat()
        if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077:
            path.chmod(mode)
            log.info("narrowed %s to mode %o (it was readable by others)", path, mode)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as a directory only its owner may enter."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=DIR_MODE, exist_ok=True)
        path.chmod(DIR_MODE)  # mkdir's mode is filtered by the umask
    else:
        _narrow(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty, or keep it, as a file only its owner may read and write."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE)
    os.close(fd)
    _narrow(path, FILE_MODE)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path``'s content atomically; the file is 0600 from its first byte."""
    private_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    tmp.replace(path)
