"""The operations console: static files only (HTML, CSS, ES modules, vendored libraries).

Nothing here runs on the server: ``api.console`` serves these files at ``/`` and ``/static/``.
They ship inside the wheel, so the console works on a machine without internet.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["STATIC"]

# a package installed from a wheel or a checkout is a directory on disk, which StaticFiles needs
STATIC = Path(str(files(__name__) / "static"))
