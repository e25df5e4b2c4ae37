"""The city map's base map from the city's own tile server, in a real browser: an XYZ raster
template drawn by Leaflet, or a MapLibre style drawn by MapLibre GL (WebGL through SwiftShader),
both allowed by the pages' Content-Security-Policy and nothing fetched from anywhere else.

The tile server is a real HTTP server on a free port of this machine: solid-colour PNG tiles
(one colour for the XYZ tiles, another for the style's raster source) and a style document.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from browser import OfflinePage, find_chromium, serve
from smartpole.api import create_app
from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.model.types import Role

USER, PASSWORD = "li.wei", "tiles-from-the-city-2026"
XYZ_COLOUR = (214, 120, 36)  # the colours the two tile sets are painted in
STYLE_COLOUR = (40, 150, 90)
# Chromium's WebGL without a GPU: SwiftShader
GL_FLAGS = [
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
    "--disable-background-networking",
    "--no-first-run",
]


def solid_png(rgb: tuple[int, int, int], size: int = 256) -> bytes:
    """A one-colour RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * size  # filter 0, then the pixels
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


@dataclass
class TileServer:
    """The city's tile server: what it was asked for."""

    url: str
    requests: list[str] = field(default_factory=list)

    def style(self) -> dict[str, object]:
        return {
            "version": 8,
            "name": "city",
            "sources": {
                "city": {
                    "type": "raster",
                    "tiles": [f"{self.url}/gl-tiles/{{z}}/{{x}}/{{y}}.png"],
                    "tileSize": 256,
                    "attribution": "City GIS",
                }
            },
            "layers": [{"id": "city", "type": "raster", "source": "city"}],
        }


@pytest.fixture(scope="module")
def tiles() -> Iterator[TileServer]:
    xyz, gl = solid_png(XYZ_COLOUR), solid_png(STYLE_COLOUR)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.requests.append(self.path)
            if self.path == "/style.json":
                body, kind = json.dumps(server.style()).encode(), "application/json"
            elif self.path.startswith(("/tiles/", "/gl-tiles/")):
                body, kind = (xyz if self.path.startswith("/tiles/") else gl), "image/png"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server = TileServer(f"http://127.0.0.1:{http.server_address[1]}")
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        http.shutdown()
        http.server_close()


@pytest.fixture(scope="module")
def gl_browser() -> Iterator[Browser]:
    """Headless Debian Chromium with WebGL (SwiftShader), as a control room's PC without a GPU."""
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=find_chromium(), headless=True, args=GL_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@contextmanager
def console(data_dir: Path, map_tiles: str) -> Iterator[str]:
    """The console served with ``map_tiles``, one lighting pole seeded; its URL."""
    platform = Platform(Settings(data_dir=data_dir, mqtt_port=0, map_tiles=map_tiles))
    platform.db.upgrade()
    city = platform.tenants.create("city", "City", True)
    key = platform.tenants.create_key(city["id"], Role.ADMIN)[1]
    platform.users.create(city["id"], USER, Role.OPERATOR, PASSWORD)
    with serve(create_app(platform.api_services(), lifecycle=platform)) as url:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http:
            body = {"code": "FT-SN-001", "lat": 22.54, "lon": 114.05, "district": "Futian"}
            r = http.post("/api/poles", json=body)
            assert r.status_code == 201, r.text
        yield url


def pixel(page: Page, x: float, y: float) -> tuple[int, int, int]:
    """The colour at (x, y) of what the page shows (a screenshot read back through a canvas)."""
    shot = base64.b64encode(page.screenshot()).decode()
    rgba = page.evaluate(
        """async ([shot, x, y]) => {
            const img = new Image();
            img.src = `data:image/png;base64,${shot}`;
            await img.decode();
            const c = document.createElement("canvas");
            c.width = img.width; c.height = img.height;
            const g = c.getContext("2d");
            g.drawImage(img, 0, 0);
            return Array.from(g.getImageData(Math.round(x), Math.round(y), 1, 1).data);
        }""",
        [shot, x, y],
    )
    return (rgba[0], rgba[1], rgba[2])


@pytest.mark.parametrize(
    ("kind", "path", "colour"),
    [("xyz", "/tiles/{z}/{x}/{y}.png", XYZ_COLOUR), ("style", "/style.json", STYLE_COLOUR)],
)
def test_the_city_tile_server_draws_the_base_map(
    gl_browser: Browser,
    tiles: TileServer,
    tmp_path: Path,
    kind: str,
    path: str,
    colour: tuple[int, int, int],
) -> None:
    tiles.requests.clear()
    with console(tmp_path, tiles.url + path) as url:
        context = gl_browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        offline = OfflinePage(page)
        context.route("**/*", offline.route)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        r = page.request.post(f"{url}/api/session", data={"user": USER, "password": PASSWORD})
        assert r.status == 200, r.text()
        page.goto(f"{url}/")
        count = page.get_by_test_id("map-count")
        expect(count).to_have_attribute("data-drawn", "1", timeout=20_000)
        box = page.get_by_test_id("map")
        expect(box).to_have_attribute("data-base", kind)
        area = box.bounding_box()
        assert area is not None
        # a quarter in from the lower left: no pole, no control, only the base map
        at = (area["x"] + area["width"] * 0.25, area["y"] + area["height"] * 0.75)
        seen = None
        for _ in range(40):  # tiles arrive, then fade in
            seen = pixel(page, *at)
            if all(abs(a - b) <= 6 for a, b in zip(seen, colour, strict=True)):
                break
            page.wait_for_timeout(250)
        assert seen is not None
        assert all(abs(a - b) <= 6 for a, b in zip(seen, colour, strict=True)), seen
        asked = [p for p in tiles.requests if p != "/style.json"]
        prefix = "/tiles/" if kind == "xyz" else "/gl-tiles/"
        assert asked
        assert all(p.startswith(prefix) for p in asked), asked
        assert ("/style.json" in tiles.requests) == (kind == "style")
        if kind == "style":
            expect(box.locator(".leaflet-gl-layer")).to_have_count(1)
        expect(page.locator(".leaflet-control-attribution")).to_be_visible()
        assert offline.off_host == []
        assert errors == []
        context.close()
