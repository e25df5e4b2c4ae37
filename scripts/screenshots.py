"""Screenshots of the console for the docs: a real demo, logged in, every built page in both
languages, saved as ``docs/images/console-<page>-<lang>.png``; the lighting page as the lighting
tenant's operator (a small lighting document and an override set up first), saved as
``docs/images/lighting-en.png`` and ``lighting-zh.png``.

Runs ``smartpole demo`` (a seeded district streamed by the simulator) on free ports in a
temporary data directory, lets it stream for a while so that devices are online and values and
alarms exist, logs in as the demo's city admin and photographs each page in headless Debian
Chromium. Pages not built yet (a placeholder) are skipped. Chinese labels need Debian's
``fonts-noto-cjk`` (``make system-deps`` installs it).

    .venv/bin/python scripts/screenshots.py [--settle 25] [--only lighting]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
SMARTPOLE = Path(sys.executable).parent / "smartpole"
PAGES = {
    "map": "/",
    "pole": "/poles/1",
    "alarms": "/alarms",
    "work-orders": "/work-orders",
    "overview": "/overview",
    "rules": "/rules",
}
LANGS = {"en": "en-US", "zh-CN": "zh-CN"}
# the lighting page's pictures: every night, full at dusk, half from an hour before midnight
LIGHTING_DOCUMENT = """\
programs:
  - name: night
    steps:
      - {at: sunset, level: 100}
      - {at: "virtual_midnight-60", level: 50, fade_s: 300}
      - {at: "civil_dawn", level: 30}
      - {at: sunrise, level: 0}
groups:
  - {name: futian}
calendar:
  - name: every-night
    program: night
    group: futian
    weekdays: [mon, tue, wed, thu, fri, sat, sun]
"""
LIGHTING_SHOTS = {"en": "lighting-en.png", "zh-CN": "lighting-zh.png"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the demo did not become ready at {url}")


def photograph(page: Page, url: str, path: str, out: Path) -> bool:
    """Open one page; save it unless it is a placeholder. Whether it was saved."""
    page.goto(f"{url}{path}")
    # the page's module has mounted (or the placeholder is shown): the page holds something
    page.wait_for_function(
        "() => { const root = document.querySelector('[data-testid=page]');"
        " return root && root.children.length && !root.querySelector('.loading'); }"
    )
    if page.get_by_test_id("placeholder").count():
        return False
    if path == "/":
        page.wait_for_function(
            "() => { const c = document.querySelector('[data-testid=map-count]');"
            " return c && c.dataset.drawn === c.dataset.total; }"
        )
    page.wait_for_timeout(1500)  # live values and charts arrive
    page.screenshot(path=str(out))
    return True


def light_up(page: Page, url: str, user: dict[str, str]) -> None:
    """Log in as the lighting tenant's operator; give it a lighting document and an override."""
    login = page.request.post(
        f"{url}/api/session", data={"user": user["name"], "password": user["password"]}
    )
    assert login.ok, login.text()
    csrf = {"X-CSRF-Token": login.json()["csrf"]}
    if not page.request.get(f"{url}/api/lighting/programs").json():
        yaml = {**csrf, "Content-Type": "application/yaml"}
        r = page.request.put(f"{url}/api/lighting/document", data=LIGHTING_DOCUMENT, headers=yaml)
        assert r.ok, r.text()
    if not page.request.get(f"{url}/api/lighting/overrides?running=true").json():
        hold = {"group": "futian", "level": 80, "duration_s": 3600, "reason": "night market"}
        r = page.request.post(f"{url}/api/lighting/overrides", data=hold, headers=csrf)
        assert r.ok, r.text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settle", type=float, default=25, help="seconds of streaming first")
    parser.add_argument("--only", choices=[*PAGES, "lighting"], help="just this page")
    args = parser.parse_args()
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data:
        http_port, mqtt_port = free_port(), free_port()
        url = f"http://127.0.0.1:{http_port}"
        demo = subprocess.Popen(
            [str(SMARTPOLE), "demo", "--data-dir", data, "--http-port", str(http_port),
             "--mqtt-port", str(mqtt_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_ready(url)
            time.sleep(args.settle)
            creds = json.loads((Path(data) / "demo-credentials.json").read_text())
            admin = creds["users"]["city"]
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=chromium, headless=True, args=["--no-sandbox"]
                )
                for lang, locale in LANGS.items():
                    context = browser.new_context(
                        viewport={"width": 1440, "height": 900}, locale=locale
                    )
                    page = context.new_page()
                    login = {"user": admin["name"], "password": admin["password"]}
                    assert page.request.post(f"{url}/api/session", data=login).ok
                    page.goto(f"{url}/login")
                    page.evaluate("lang => localStorage.setItem('smartpole.lang', lang)", lang)
                    for name, path in PAGES.items():
                        if args.only and name != args.only:
                            continue
                        out = IMAGES / f"console-{name}-{lang}.png"
                        if photograph(page, url, path, out):
                            print(f"wrote {out.relative_to(ROOT)}")
                        if name == "map":  # and the air quality layer
                            page.get_by_test_id("layer-aqi").check()
                            page.wait_for_timeout(1000)
                            aqi = IMAGES / f"console-map-aqi-{lang}.png"
                            page.screenshot(path=str(aqi))
                            print(f"wrote {aqi.relative_to(ROOT)}")
                    context.close()
                    if args.only in (None, "lighting"):
                        # the page scrolls inside the shell: a tall window shows all its cards
                        context = browser.new_context(
                            viewport={"width": 1440, "height": 2500}, locale=locale
                        )
                        page = context.new_page()
                        light_up(page, url, creds["users"]["lighting"])
                        page.goto(f"{url}/login")
                        page.evaluate("l => localStorage.setItem('smartpole.lang', l)", lang)
                        out = IMAGES / LIGHTING_SHOTS[lang]
                        if photograph(page, url, "/lighting", out):
                            print(f"wrote {out.relative_to(ROOT)}")
                        context.close()
                browser.close()
        finally:
            demo.terminate()
            demo.wait(30)


if __name__ == "__main__":
    main()
