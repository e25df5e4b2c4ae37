"""What the map benchmarks share: headless Debian Chromium, a scripted pan-and-zoom with real
mouse input, and the frame times recorded in the page meanwhile.

Chromium gets WebGL only through SwiftShader (``--use-angle=swiftshader``), as on a control
room's PC without a usable GPU and on CI.
"""

from __future__ import annotations

import os
import shutil
import statistics
from dataclasses import dataclass

from playwright.sync_api import Browser, Page, Playwright

__all__ = ["FrameTimes", "launch", "pan_and_zoom"]

FLAGS = [
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# frame intervals recorded by requestAnimationFrame between start and stop
RECORDER = """() => {
  window.__frames = [];
  let last = performance.now();
  window.__recording = true;
  const tick = (now) => {
    window.__frames.push(now - last);
    last = now;
    if (window.__recording) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""


def launch(pw: Playwright) -> Browser:
    """Debian's Chromium (``CHROMIUM`` overrides), headless, WebGL through SwiftShader."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return pw.chromium.launch(executable_path=path, headless=True, args=FLAGS)


@dataclass(frozen=True)
class FrameTimes:
    """Intervals between frames (ms) while the map was panned and zoomed."""

    frames: list[float]

    def line(self) -> str:
        """``p50 / p95 / max`` in ms, and how many frames."""
        ordered = sorted(self.frames)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        return (
            f"p50 {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms, "
            f"max {ordered[-1]:.1f} ms ({len(ordered)} frames)"
        )

    def p95(self) -> float:
        """The 95th percentile frame interval (ms)."""
        ordered = sorted(self.frames)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def pan_and_zoom(page: Page, selector: str) -> FrameTimes:
    """Drag the map around and zoom in and out with the wheel (real mouse events), recording
    the interval between frames throughout."""
    box = page.locator(selector).bounding_box()
    assert box is not None, f"no {selector} on the page"
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.evaluate(RECORDER)
    for dx, dy in ((260, 0), (0, 180), (-260, 0), (0, -180)):
        page.mouse.move(cx, cy)
        page.mouse.down()
        for step in range(1, 21):
            page.mouse.move(cx + dx * step / 20, cy + dy * step / 20)
        page.mouse.up()
    for delta in (-300, -300, -300, 300, 300, 300):
        page.mouse.move(cx, cy)
        page.mouse.wheel(0, delta)
        page.wait_for_timeout(250)
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(cx + 15 * step, cy + 8 * step)
        page.mouse.up()
    page.wait_for_timeout(300)
    frames = page.evaluate("() => { window.__recording = false; return window.__frames; }")
    return FrameTimes([float(f) for f in frames[1:]])
