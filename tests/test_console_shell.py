"""The console is served by smartpole itself: its pages, its static files with caching headers,
a strict Content-Security-Policy, nothing in the OpenAPI schema, every asset in the package."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from browser import serve
from smartpole.api import create_app
from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.web import STATIC

PAGES = ["/", "/poles/17", "/alarms", "/work-orders", "/overview", "/rules", "/lighting"]
TILES = "https://tiles.example.org/{z}/{x}/{y}.png"


@contextmanager
def console(data_dir: Path, **settings: object) -> Iterator[httpx.Client]:
    """An HTTP client of the app of a fresh platform, served by uvicorn on a free port."""
    platform = Platform(Settings(data_dir=data_dir, mqtt_port=0, **settings))  # type: ignore[arg-type]
    platform.db.upgrade()
    with serve(create_app(platform.api_services())) as url, httpx.Client(base_url=url) as c:
        yield c


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with console(tmp_path_factory.mktemp("console")) as c:
        yield c


@pytest.mark.parametrize("path", PAGES)
def test_every_page_address_answers_with_the_shell(client: httpx.Client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/js/main.js">' in r.text


def test_the_login_page_is_served(client: httpx.Client) -> None:
    r = client.get("/login")
    assert r.status_code == 200
    assert 'src="/static/js/login.js"' in r.text
    assert 'data-testid="login-form"' in r.text


@pytest.mark.parametrize("path", ["/login", "/", "/poles/1"])
def test_pages_carry_a_strict_content_security_policy(client: httpx.Client, path: str) -> None:
    policy = client.get(path).headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert directives["frame-ancestors"] == "'none'"


def test_pages_load_no_inline_script_and_nothing_off_the_host(client: httpx.Client) -> None:
    for path in ("/", "/login"):
        html = client.get(path).text
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None, "inline script"
        assert "http://" not in html
        assert "https://" not in html
        for asset in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert asset.startswith("/static/"), asset
            assert client.get(asset).status_code == 200, asset


def test_the_console_scripts_address_only_this_host() -> None:
    own = [p for p in STATIC.rglob("*.js") if "vendor" not in p.parts]
    assert own, "no console scripts in the package"
    for script in own:
        assert re.search(r"https?://", script.read_text(encoding="utf-8")) is None, script


def test_static_files_are_revalidated_with_an_etag(client: httpx.Client) -> None:
    r = client.get("/static/js/main.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["cache-control"] == "no-cache"
    again = client.get("/static/js/main.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


def test_vendored_libraries_are_cached_and_ship_their_licence(client: httpx.Client) -> None:
    r = client.get("/static/vendor/uplot/uPlot.iife.min.js")
    assert r.status_code == 200
    assert "max-age=" in r.headers["cache-control"]
    for library in (p for p in (STATIC / "vendor").iterdir() if p.is_dir()):
        assert list(library.glob("LICENSE*")), f"{library.name} ships no licence"
        assert (library / "VERSION").read_text().strip(), f"{library.name} has no VERSION"


def test_a_missing_static_file_is_not_found(client: httpx.Client) -> None:
    assert client.get("/static/js/nothing.js").status_code == 404
    assert client.get("/static/../__init__.py").status_code == 404


def test_console_pages_are_not_in_the_api_schema(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/", "/login", "/poles/{pole_id}", "/alarms", "/rules"} & set(paths)
    assert not [p for p in paths if p.startswith("/static")]


def test_a_configured_tile_server_is_allowed_and_handed_to_the_map(
    tmp_path: Path,
) -> None:
    with console(tmp_path, map_tiles=TILES) as c:
        r = c.get("/")
    directives = dict(
        d.strip().split(" ", 1) for d in r.headers["content-security-policy"].split(";")
    )
    assert "https://tiles.example.org" in directives["img-src"]
    assert "https://tiles.example.org" not in directives["script-src"]
    assert 'content="https://tiles.example.org/{z}/{x}/{y}.png"' in r.text


def registered_labels(script: str) -> dict[str, set[str]]:
    """The keys each language registers with ``i18n.add({en: {...}, "zh-CN": {...}})``."""
    out: dict[str, set[str]] = {}
    for block in re.findall(r"add\(\{(.*?)\n\}\);", script, flags=re.S):
        for lang, body in re.findall(r'^  "?([\w-]+)"?: \{(.*?)^  \},?$', block, flags=re.S | re.M):
            out.setdefault(lang, set()).update(re.findall(r'^\s+"([^"]+)":', body, flags=re.M))
    return out


@pytest.mark.parametrize(
    "script",
    [
        p
        for p in sorted(STATIC.rglob("*.js"))
        if "vendor" not in p.parts and "add({" in p.read_text()
    ],
    ids=lambda p: p.name,
)
def test_every_label_is_in_chinese_and_english(script: Path) -> None:
    labels = registered_labels(script.read_text(encoding="utf-8"))
    assert labels.get("en"), f"{script.name} registers no English labels"
    assert labels["en"] == labels.get("zh-CN"), (
        f"only English: {sorted(labels['en'] - labels.get('zh-CN', set()))}, "
        f"only Chinese: {sorted(labels.get('zh-CN', set()) - labels['en'])}"
    )
