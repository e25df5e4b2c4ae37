"""Which map library draws 100,000 poles: measured in headless Debian Chromium (SwiftShader).

Three ways of drawing the same columnar body of ``GET /api/map/poles`` (synthetic poles of a
city, every request answered by Playwright, nothing on the network):

- ``maplibre``: MapLibre GL JS, a GeoJSON source with ``cluster: true`` and a
  ``clusterProperties`` max for the worst state (no count labels: those need glyph files);
- ``supercluster``: Leaflet and supercluster, the clusters of the view drawn on one canvas;
- ``grid``: Leaflet and the console's own layer (``static/js/map/layer.js``), a screen grid
  binned from typed arrays each frame, on one canvas.

For each: the library's bytes, time to first render with every pole accounted for, and frame
times while panning and zooming by script. The console ships the winner; ``docs/console.md``
has the numbers. Needs ``web/node_modules`` (``cd web && npm ci``) for MapLibre.

    python -m bench.map_libraries             # 100,000 poles
    python -m bench.map_libraries --poles 10000
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Route, sync_playwright

from bench.mapview import launch, pan_and_zoom
from smartpole.web import STATIC

ROOT = Path(__file__).resolve().parent.parent
MODULES = ROOT / "web" / "node_modules"
ORIGIN = "http://127.0.0.1:9"  # never connected: the route answers every request
KINDS = ["lamp", "camera", "small_cell", "air", "weather", "noise", "display", "speaker",
         "sos", "charger", "wifi", "tilt", "flood", "manhole", "gateway", "meter"]  # fmt: skip
LIBRARIES = {
    "maplibre": [MODULES / "maplibre-gl/dist/maplibre-gl.js",
                 MODULES / "maplibre-gl/dist/maplibre-gl.css"],
    "supercluster": [MODULES / "leaflet/dist/leaflet.js", MODULES / "leaflet/dist/leaflet.css",
                     MODULES / "supercluster/dist/supercluster.min.js"],
    "grid": [MODULES / "leaflet/dist/leaflet.js", MODULES / "leaflet/dist/leaflet.css",
             STATIC / "js/map/layer.js", STATIC / "js/map/poles.js",
             STATIC / "js/map/colours.js"],
}  # fmt: skip


def city(n: int, seed: int = 14) -> dict[str, Any]:
    """``n`` poles along the roads of a 40 km square around Shenzhen, columnar as the API."""
    rng = random.Random(seed)
    roads_per_district, districts = 40, 10
    ids, codes, lons, lats, dists, roads, kinds, states = [], [], [], [], [], [], [], []
    for i in range(n):
        d = i % districts
        r = (i // districts) % roads_per_district
        along = rng.random()
        horizontal = r % 2 == 0
        base_lon = 113.85 + 0.4 * (d % 5) / 5
        base_lat = 22.45 + 0.3 * (d // 5) / 2
        offset = (r // 2) / roads_per_district * 0.15
        lon = base_lon + (along * 0.08 if horizontal else offset * 0.5)
        lat = base_lat + (offset if horizontal else along * 0.15)
        ids.append(i + 1)
        codes.append(f"D{d:02d}-R{r:02d}-{i:06d}")
        lons.append(round(lon * 1e6))
        lats.append(round(lat * 1e6))
        dists.append(d)
        roads.append(d * roads_per_district + r)
        kinds.append(1 | (1 << rng.randrange(1, 16)))
        states.append(rng.choices(range(6), weights=(90, 5, 2, 1.5, 1, 0.5))[0])
    return {
        "version": 1,
        "kinds": KINDS,
        "districts": [f"District {d}" for d in range(districts)],
        "roads": [f"Road {k}" for k in range(districts * roads_per_district)],
        "owners": ["city"],
        "owner_sets": [[0]],
        "poles": {"id": ids, "code": codes, "lon": lons, "lat": lats, "district": dists,
                  "road": roads, "kinds": kinds, "owners": [0] * n, "state": states},
    }  # fmt: skip


HEAD = """<!doctype html><html><head><meta charset="utf-8"><style>
html,body,#map{margin:0;height:100%;width:100%}#map{background:#eef1f4}
canvas.pole-canvas{position:absolute;left:0;top:0;z-index:450;pointer-events:none}
</style>"""
COMMON = """
const body = await (await fetch('/data.json')).json();
const p = body.poles, N = p.id.length;
let s = 90, w = 180, n = -90, e = -180;
for (let i = 0; i < N; i++) {
  const lo = p.lon[i] / 1e6, la = p.lat[i] / 1e6;
  s = Math.min(s, la); n = Math.max(n, la); w = Math.min(w, lo); e = Math.max(e, lo);
}
const ready = (count) => {
  if (count === N && !window.__ready) window.__ready = performance.now();
};
"""
PAGES = {
    "maplibre": HEAD
    + """<link rel="stylesheet" href="/lib/maplibre-gl.css">
<script src="/lib/maplibre-gl.js"></script></head><body><div id="map"></div>
<script type="module">"""
    + COMMON
    + """
const features = new Array(N);
for (let i = 0; i < N; i++) features[i] = {type: 'Feature', id: p.id[i],
  geometry: {type: 'Point', coordinates: [p.lon[i] / 1e6, p.lat[i] / 1e6]},
  properties: {s: p.state[i]}};
const map = new maplibregl.Map({container: 'map', fadeDuration: 0, bounds: [[w, s], [e, n]],
  fitBoundsOptions: {padding: 24},
  style: {version: 8, sources: {}, layers: [{id: 'bg', type: 'background',
    paint: {'background-color': '#eef1f4'}}]}});
const colour = ['step', ['get', 'worst'], '#2e9e5b', 1, '#8a94a0', 2, '#e0b000', 3, '#f08c00',
  4, '#e0561b', 5, '#c81e1e'];
map.on('load', () => {
  map.addSource('poles', {type: 'geojson', data: {type: 'FeatureCollection', features},
    cluster: true, clusterRadius: 50, clusterMaxZoom: 16,
    clusterProperties: {worst: ['max', ['get', 's']]}});
  map.addLayer({id: 'clusters', type: 'circle', source: 'poles', filter: ['has', 'point_count'],
    paint: {'circle-color': colour, 'circle-radius': 14, 'circle-stroke-width': 2,
      'circle-stroke-color': '#fff'}});
  map.addLayer({id: 'points', type: 'circle', source: 'poles',
    filter: ['!', ['has', 'point_count']],
    paint: {'circle-color': ['step', ['get', 's'], '#2e9e5b', 1, '#8a94a0', 2, '#e0b000', 3,
      '#f08c00', 4, '#e0561b', 5, '#c81e1e'], 'circle-radius': 5}});
  const count = () => {
    const seen = new Map();
    for (const f of map.queryRenderedFeatures({layers: ['clusters', 'points']})) {
      const c = f.properties.cluster_id;
      const key = c !== undefined ? 'c' + c : 'p' + f.id;
      seen.set(key, f.properties.point_count || 1);
    }
    let total = 0; for (const v of seen.values()) total += v;
    ready(total);
  };
  map.on('idle', count);
});
</script></body></html>""",
    "supercluster": HEAD
    + """<link rel="stylesheet" href="/lib/leaflet.css">
<script src="/lib/leaflet.js"></script><script src="/lib/supercluster.min.js"></script>
</head><body><div id="map"></div><script type="module">"""
    + COMMON
    + """
const COLOURS = ['#2e9e5b', '#8a94a0', '#e0b000', '#f08c00', '#e0561b', '#c81e1e'];
const features = new Array(N);
for (let i = 0; i < N; i++) features[i] = {type: 'Feature',
  geometry: {type: 'Point', coordinates: [p.lon[i] / 1e6, p.lat[i] / 1e6]},
  properties: {s: p.state[i]}};
const index = new Supercluster({radius: 64, maxZoom: 16, map: (q) => ({worst: q.s}),
  reduce: (a, b) => { a.worst = Math.max(a.worst, b.worst); }}).load(features);
const map = L.map('map', {zoomAnimation: false, fadeAnimation: false});
const canvas = document.createElement('canvas'); canvas.className = 'pole-canvas';
map.getContainer().append(canvas);
let pending = false;
function draw() {
  pending = false;
  const size = map.getSize(); canvas.width = size.x; canvas.height = size.y;
  const ctx = canvas.getContext('2d');
  const b = map.getBounds();
  const clusters = index.getClusters([b.getWest(), b.getSouth(), b.getEast(), b.getNorth()],
    map.getZoom());
  let total = 0;
  ctx.font = '600 11px sans-serif'; ctx.textAlign = 'center'; ctx.textBaseline = 'middle';
  for (const c of clusters) {
    const [lon, lat] = c.geometry.coordinates;
    const pt = map.latLngToContainerPoint([lat, lon]);
    const k = c.properties.point_count || 1; total += k;
    ctx.beginPath(); ctx.arc(pt.x, pt.y, k > 1 ? 14 : 5, 0, 2 * Math.PI);
    ctx.fillStyle = COLOURS[k > 1 ? c.properties.worst : c.properties.s]; ctx.fill();
    if (k > 1) { ctx.fillStyle = '#fff'; ctx.fillText(String(k), pt.x, pt.y); }
  }
  ready(total);
}
map.on('move zoom resize viewreset', () => {
  if (!pending) { pending = true; requestAnimationFrame(draw); }
});
map.fitBounds([[s, w], [n, e]], {padding: [24, 24]});
</script></body></html>""",
    "grid": HEAD
    + """<link rel="stylesheet" href="/lib/leaflet.css">
<script src="/lib/leaflet.js"></script></head><body><div id="map"></div>
<script type="module">"""
    + COMMON
    + """
const {Poles} = await import('/lib/poles.js');
const {PoleLayer} = await import('/lib/layer.js');
const poles = new Poles(body);
const map = L.map('map', {zoomAnimation: false, fadeAnimation: false});
new PoleLayer(map, poles, {onDraw: ready});
map.fitBounds([[s, w], [n, e]], {padding: [24, 24]});
</script></body></html>""",
}


def answerer(html: str, body: bytes, files: list[Path]) -> Callable[[Route], None]:
    """Answer the page, its data and its library files; refuse anything else."""
    served = {f"/lib/{f.name}": f for f in files}

    def answer(route: Route) -> None:
        path = route.request.url.removeprefix(ORIGIN)
        if path == "/":
            route.fulfill(body=html, content_type="text/html")
        elif path == "/data.json":
            route.fulfill(body=body, content_type="application/json")
        elif path in served:
            kind = "text/css" if path.endswith(".css") else "text/javascript"
            route.fulfill(path=str(served[path]), content_type=kind)
        else:
            route.abort()

    return answer


def run(poles: int, only: list[str]) -> None:
    body = json.dumps(city(poles), separators=(",", ":")).encode()
    print(f"{poles:,} poles: map data {len(body) / 1e6:.2f} MB, "
          f"{len(gzip.compress(body)) / 1e6:.2f} MB gzipped")  # fmt: skip
    with sync_playwright() as pw:
        browser = launch(pw)
        for name, files in LIBRARIES.items():
            if only and name not in only:
                continue
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            page = context.new_page()
            page.route("**/*", answerer(PAGES[name], body, files))
            page.goto(ORIGIN + "/")
            page.wait_for_function("() => window.__ready", timeout=120_000, polling=50)
            first = page.evaluate("() => window.__ready")
            frames = pan_and_zoom(page, "#map")
            size = sum(len(gzip.compress(f.read_bytes())) for f in files)
            print(f"{name:>13}: library {size / 1e3:.0f} kB gzipped, first render with every "
                  f"pole {first / 1e3:.2f} s, frames {frames.line()}")  # fmt: skip
            context.close()
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poles", type=int, default=100_000)
    parser.add_argument("--only", nargs="*", choices=list(LIBRARIES), default=[])
    args = parser.parse_args()
    run(args.poles, args.only)


if __name__ == "__main__":
    main()
