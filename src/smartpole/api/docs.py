"""The API's own documentation, Swagger UI at ``/docs`` and ReDoc at ``/redoc``, served offline.

FastAPI's default pages load their scripts from a CDN and stay blank without internet, which a
city's control room often is. The scripts come from the ``fastapi-offline`` wheel (pinned
builds of swagger-ui-dist and ReDoc) and are served here under ``/docs-assets/``; the pages
fetch nothing off the host: no Google fonts, no Swagger validator badge, no Redocly logo (the
ReDoc build loads it from its CDN unconditionally: the copy served here points it nowhere), and
a Content-Security-Policy keeps images, fonts and requests on this host.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS", "install"]

ASSETS = "/docs-assets"
_STATIC = Path(fastapi_offline.__file__).parent / "static"
_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
# what the pages may load: only this host (and inline data); scripts are the page's own
_CSP = "default-src 'self' 'unsafe-inline' data: blob:; img-src 'self' data:; font-src 'self' data:"


@cache
def _redoc_js() -> bytes:
    """ReDoc's bundle, its one hard-coded CDN address (the sidebar logo) made a blank image."""
    return (_STATIC / "redoc.standalone.js").read_bytes().replace(_REDOC_LOGO, b"data:,")


def _offline(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = _CSP
    return page


def install(app: FastAPI) -> None:
    """Serve ``/docs``, ``/redoc`` and their assets on an app built with ``docs_url=None``
    and ``redoc_url=None``."""
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title} {app.version}"

    @app.get(f"{ASSETS}/redoc.standalone.js", include_in_schema=False)
    def redoc_js() -> Response:
        return Response(_redoc_js(), media_type="text/javascript")

    app.mount(ASSETS, StaticFiles(directory=_STATIC), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
            # the validator badge would send the API description to validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None},
        )
        return _offline(page)

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
        return _offline(page)
