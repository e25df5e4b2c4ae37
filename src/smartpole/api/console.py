"""The operations console's pages, served by smartpole itself at ``/``.

The shell (``index.html``) answers every page address of the console (``/``, ``/poles/{id}``,
``/alarms``, ...) and its ES modules pick the page from the address (History API). The files come
from the ``smartpole.web`` package, so nothing is fetched off the host: a Content-Security-Policy
keeps scripts, styles, images and connections on this host (plus the configured map tile host,
if any), and allows no inline script. These routes are not part of the REST API's OpenAPI schema.
"""

from __future__ import annotations

import html
import os
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from smartpole.config import Settings
from smartpole.web import STATIC

__all__ = ["PAGES", "content_security_policy", "install"]

# the console's page addresses; each is answered with the same shell
PAGES = ("/", "/alarms", "/work-orders", "/overview", "/rules", "/lighting")
TILES_PLACEHOLDER = "{{map_tiles}}"
# pinned by web/package-lock.json; a new version comes with a new copy, so a day is safe
VENDOR_CACHE = "public, max-age=86400"
# the console's own files change with smartpole: revalidate (ETag) on every use
OWN_CACHE = "no-cache"


def content_security_policy(map_tiles: str | None) -> str:
    """This host only, no inline script or style element; a tile server's origin (an XYZ
    template's or a MapLibre style's) may add images and connections, never scripts."""
    extra = ""
    if map_tiles:
        parts = urlsplit(map_tiles)
        extra = f" {parts.scheme}://{parts.netloc}"
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' data: blob:{extra}",
            f"connect-src 'self'{extra}",
            "worker-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class ConsoleFiles(StaticFiles):
    """The console's static files with caching headers (ETag and Last-Modified come from
    StaticFiles, so a revalidation is a 304 without a body)."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        vendored = "/vendor/" in Path(full_path).as_posix()
        response.headers["Cache-Control"] = VENDOR_CACHE if vendored else OWN_CACHE
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


@cache
def _page(name: str, map_tiles: str) -> str:
    text = (STATIC / name).read_text(encoding="utf-8")
    return text.replace(TILES_PLACEHOLDER, html.escape(map_tiles, quote=True))


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the console: ``/login``, the shell for every page address, ``/static/...``."""
    policy = content_security_policy(settings.map_tiles)
    tiles = settings.map_tiles or ""

    def page(name: str) -> HTMLResponse:
        return HTMLResponse(
            _page(name, tiles),
            headers={
                "Content-Security-Policy": policy,
                "Cache-Control": OWN_CACHE,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin",
            },
        )

    app.mount("/static", ConsoleFiles(directory=STATIC), name="console-static")

    @app.get("/login", include_in_schema=False)
    def login() -> HTMLResponse:
        return page("login.html")

    def shell() -> HTMLResponse:
        return page("index.html")

    for path in PAGES:
        app.add_api_route(path, shell, methods=["GET"], include_in_schema=False)

    @app.get("/poles/{pole_id}", include_in_schema=False)
    def pole_page(pole_id: str) -> HTMLResponse:
        # any id: the page asks the API, which answers 404 for a pole the caller may not see
        return page("index.html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> RedirectResponse:
        return RedirectResponse("/static/img/pole.svg", status_code=308)
