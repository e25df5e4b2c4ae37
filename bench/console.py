"""The console's city map at city size, in headless Debian Chromium, and its live updates.

Seeds N poles (``bench.map.seed``: poles through the registry's import, devices and 1 % of the
poles with an alarm straight into their tables) on the embedded store, serves the app with
uvicorn, logs a city operator in and opens the map. Prints:

- bytes of the map's data on the wire (``/api/map/poles``, gzip), and the console's own files;
- time to first render with every pole accounted for (navigation start to the frame whose
  clusters add up to every pole);
- frame times (p50/p95/max) while a script drags and wheel-zooms the map;
- live lag: 200 WebSocket clients (plain Python, as 200 open map pages of the lighting
  department) ask for ``{"op": "map"}``; alarms raised on poles of one district must reach
  every client as a ``states`` message; the lag from the raise to each arrival.

Targets on this machine (issue #14): <= 3 s to first render, <= 5 MB of map data, p95 frame
<= 50 ms, live lag < 1 s.

    python -m bench.console            # 100,000 poles
    python -m bench.console --short    # CI: 10,000 poles (< 60 s)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import orjson
import uvicorn
import websockets
from playwright.sync_api import Response, sync_playwright

from bench.fleet import free_port
from bench.map import seed
from bench.mapview import launch, pan_and_zoom
from smartpole.api import create_app
from smartpole.app import Platform
from smartpole.config import Settings
from smartpole.model.types import Role

USER, PASSWORD = "ops.bench", "bench-console-2026"
CLIENTS = 200
RAISES = 20
# the frame whose clusters add up to every pole: performance.now() since navigation start
COMPLETE = """() => {
  const c = document.querySelector('[data-testid=map-count]');
  return c && c.dataset.total !== undefined && c.dataset.drawn === c.dataset.total
    && performance.now();
}"""


def browser_run(url: str) -> None:
    """Open the map logged in; print bytes, first render and frame times."""
    with sync_playwright() as pw:
        browser = launch(pw)
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
        page = context.new_page()
        r = page.request.post(f"{url}/api/session", data={"user": USER, "password": PASSWORD})
        assert r.status == 200, r.text()
        sizes: dict[str, int] = {}

        def on_response(response: Response) -> None:
            path = response.url.removeprefix(url).split("?")[0]
            if path.startswith(("/api/map/", "/static/", "/api/catalog")) or path == "/":
                sizes[path] = response.request.sizes()["responseBodySize"]

        page.on("response", on_response)
        page.goto(f"{url}/")
        first = page.wait_for_function(COMPLETE, timeout=120_000, polling="raf").json_value()
        total = page.get_by_test_id("map-count").get_attribute("data-total")
        frames = pan_and_zoom(page, "[data-testid=map]")
        page.wait_for_timeout(200)
        data = sum(v for k, v in sizes.items() if k.startswith("/api/"))
        files = sum(v for k, v in sizes.items() if not k.startswith("/api/"))
        poles = sizes.get("/api/map/poles", 0)
        print(f"map data on the wire: {data / 1e6:.2f} MB (/api/map/poles {poles / 1e6:.2f} MB"
              f" gzipped); console files {files / 1e3:.0f} kB")  # fmt: skip
        print(f"first render with all {total} poles accounted for: {first / 1e3:.2f} s")
        print(f"frames while panning and zooming: {frames.line()}")
        context.close()
        browser.close()


async def live_lag(
    port: int, key: str, platform: Platform, lighting: int, poles: list[int]
) -> None:
    """200 clients watch the map; alarms raised on ``poles`` reach each as a states message."""
    arrived: dict[int, list[float]] = {pole: [] for pole in poles}
    everyone = asyncio.Event()
    url = f"ws://127.0.0.1:{port}/api/live?key={key}"
    sockets = [await websockets.connect(url, max_size=None) for _ in range(CLIENTS)]

    async def reader(ws: websockets.ClientConnection) -> None:
        async for raw in ws:
            message = orjson.loads(raw)
            if message["type"] == "states":
                now = time.perf_counter()
                for pole, _state in message["poles"]:
                    if pole in arrived:
                        arrived[pole].append(now)
                if all(len(v) >= CLIENTS for v in arrived.values()):
                    everyone.set()

    for ws in sockets:
        await ws.send(orjson.dumps({"op": "map"}).decode())
    readers = [asyncio.create_task(reader(ws)) for ws in sockets]
    await asyncio.sleep(1.0)  # every client subscribed
    sent: dict[int, float] = {}
    for pole in poles:
        sent[pole] = time.perf_counter()
        await platform.hub.alarms.raise_alarm(
            tenant_id=lighting,
            originator_type="pole",
            originator_id=pole,
            type="pole_tilt",
            severity="critical",
            pole_id=pole,
        )
        await asyncio.sleep(0.1)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(everyone.wait(), 10)
    lags = sorted((t - sent[p]) * 1000 for p, times in arrived.items() for t in times)
    got = len(lags)
    for ws in sockets:
        await ws.close()
    for task in readers:
        task.cancel()
    if not lags:
        print("live lag: no states message arrived")
        return
    p95 = lags[min(len(lags) - 1, int(len(lags) * 0.95))]
    print(f"live lag, {CLIENTS} clients x {len(poles)} alarms: {got}/{CLIENTS * len(poles)} "
          f"arrived, p50 {statistics.median(lags):.0f} ms, p95 {p95:.0f} ms, "
          f"max {lags[-1]:.0f} ms")  # fmt: skip


async def run(n_poles: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        platform = Platform(Settings(data_dir=Path(tmp), mqtt_port=-1))
        platform.db.upgrade()
        t = time.perf_counter()
        ids = seed(platform, n_poles)
        print(f"seeded {n_poles:,} poles in {time.perf_counter() - t:.1f} s")
        platform.users.create(ids["city"], USER, Role.ADMIN, PASSWORD)
        key = platform.tenants.create_key(ids["lighting"], Role.VIEWER)[1]
        port = free_port()
        app = create_app(platform.api_services(), lifecycle=platform)
        server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
        serving = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 (uvicorn offers a flag, not an event)
            await asyncio.sleep(0.05)
        try:
            await asyncio.to_thread(browser_run, f"http://127.0.0.1:{port}")
            # the demo district: every 20th pole is in district D00 (bench.map's layout);
            # skip the poles seeded with an alarm (every 100th from 1)
            district = [p for p in range(1, n_poles + 1, 20) if p % 100 != 1][:RAISES]
            await live_lag(port, key, platform, ids["lighting"], district)
        finally:
            server.should_exit = True
            await serving


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the quick CI run: 10,000 poles")
    parser.add_argument("--poles", type=int, default=None)
    args = parser.parse_args()
    asyncio.run(run(args.poles or (10_000 if args.short else 100_000)))


if __name__ == "__main__":
    main()
