// Vendored libraries (static/vendor/, pinned by web/package-lock.json) loaded on first use as
// classic scripts: script-src 'self' allows them, and pages that do not need them never pay.
const loaded = new Map();

function once(key, make) {
  if (!loaded.has(key)) loaded.set(key, make());
  return loaded.get(key);
}

function script(src) {
  return once(src, () => new Promise((resolve, reject) => {
    const el = document.createElement("script");
    el.src = src;
    el.onload = resolve;
    el.onerror = () => reject(new Error(`cannot load ${src}`));
    document.head.append(el);
  }));
}

function style(href) {
  return once(href, () => new Promise((resolve, reject) => {
    const el = document.createElement("link");
    el.rel = "stylesheet";
    el.href = href;
    el.onload = resolve;
    el.onerror = () => reject(new Error(`cannot load ${href}`));
    document.head.append(el);
  }));
}

/** uPlot (charts): the uPlot constructor. */
export async function uplot() {
  await Promise.all([
    script("/static/vendor/uplot/uPlot.iife.min.js"),
    style("/static/vendor/uplot/uPlot.min.css"),
  ]);
  return window.uPlot;
}

/** Leaflet (the city map): the L namespace. */
export async function leaflet() {
  await Promise.all([
    script("/static/vendor/leaflet/leaflet.js"),
    style("/static/vendor/leaflet/leaflet.css"),
  ]);
  return window.L;
}

/** MapLibre GL and its Leaflet binding (a base map from a MapLibre style): the L namespace,
 * with L.maplibreGL. The CSP build: its worker is a file of this host, not a blob. */
export async function maplibre() {
  const L = await leaflet();
  await Promise.all([
    script("/static/vendor/maplibre-gl/maplibre-gl-csp.js"),
    style("/static/vendor/maplibre-gl/maplibre-gl.css"),
  ]);
  window.maplibregl.setWorkerUrl("/static/vendor/maplibre-gl/maplibre-gl-csp-worker.js");
  await script("/static/vendor/maplibre-gl-leaflet/leaflet-maplibre-gl.js");
  return L;
}
