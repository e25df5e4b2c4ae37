// The city map: every pole the caller may see (GET /api/map/poles), coloured by state and
// clustered on one canvas (map/layer.js), live state changes from the WebSocket, filters,
// search by code, layers (air quality, noise, lamp level) and a card that leads to the pole.
import * as i18n from "../i18n.js";
import { BaseLayer } from "../map/base.js";
import { AQI_BANDS, LAMP_BANDS, NOISE_BANDS, STATE_COLOURS } from "../map/colours.js";
import { PoleLayer } from "../map/layer.js";
import { Poles, STATES } from "../map/poles.js";
import { leaflet, maplibre } from "../vendor.js";

const LAYERS = [null, "aqi", "noise", "lamp"];
const LEGENDS = { aqi: AQI_BANDS, noise: NOISE_BANDS, lamp: LAMP_BANDS };
const SEARCH_ZOOM = 18;
const MAX_ZOOM = 19;

i18n.add({
  en: {
    "map.search": "Pole code",
    "map.go": "Go",
    "map.not-found": "No pole {code}",
    "map.district": "District",
    "map.road": "Road",
    "map.kind": "Device kind",
    "map.owner": "Owner",
    "map.any": "All",
    "map.layer": "Colour by",
    "map.layer.state": "State",
    "map.layer.aqi": "Air quality (AQI)",
    "map.layer.noise": "Noise",
    "map.layer.lamp": "Lamp level",
    "map.count": "{shown} of {total} poles",
    "map.open": "Open pole page",
    "map.close": "Close",
    "map.kinds": "Devices",
    "map.owners": "Owners",
    "map.empty": "No poles to show.",
    "state.ok": "All well",
    "state.offline": "Offline",
    "state.warning": "Warning",
    "state.minor": "Minor alarm",
    "state.major": "Major alarm",
    "state.critical": "Critical alarm",
    "aqi.1": "0–50 Excellent",
    "aqi.2": "51–100 Good",
    "aqi.3": "101–150 Lightly polluted",
    "aqi.4": "151–200 Moderately polluted",
    "aqi.5": "201–300 Heavily polluted",
    "aqi.6": "> 300 Severely polluted",
    "noise.1": "≤ 55 dB(A)",
    "noise.2": "55–65 dB(A)",
    "noise.3": "65–70 dB(A)",
    "noise.4": "> 70 dB(A)",
    "lamp.0": "Off",
    "lamp.1": "1–30 %",
    "lamp.2": "31–70 %",
    "lamp.3": "71–100 %",
    "map.no-value": "No value",
  },
  "zh-CN": {
    "map.search": "灯杆编号",
    "map.go": "定位",
    "map.not-found": "没有灯杆 {code}",
    "map.district": "区域",
    "map.road": "道路",
    "map.kind": "设备类型",
    "map.owner": "所属单位",
    "map.any": "全部",
    "map.layer": "着色",
    "map.layer.state": "状态",
    "map.layer.aqi": "空气质量 (AQI)",
    "map.layer.noise": "噪声",
    "map.layer.lamp": "照明亮度",
    "map.count": "显示 {shown} / 共 {total} 根灯杆",
    "map.open": "打开灯杆页面",
    "map.close": "关闭",
    "map.kinds": "设备",
    "map.owners": "所属单位",
    "map.empty": "没有可显示的灯杆。",
    "state.ok": "正常",
    "state.offline": "离线",
    "state.warning": "预警",
    "state.minor": "次要告警",
    "state.major": "重要告警",
    "state.critical": "严重告警",
    "aqi.1": "0–50 优",
    "aqi.2": "51–100 良",
    "aqi.3": "101–150 轻度污染",
    "aqi.4": "151–200 中度污染",
    "aqi.5": "201–300 重度污染",
    "aqi.6": "> 300 严重污染",
    "noise.1": "≤ 55 dB(A)",
    "noise.2": "55–65 dB(A)",
    "noise.3": "65–70 dB(A)",
    "noise.4": "> 70 dB(A)",
    "lamp.0": "关闭",
    "lamp.1": "1–30 %",
    "lamp.2": "31–70 %",
    "lamp.3": "71–100 %",
    "map.no-value": "无数据",
  },
});

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function select(testid, label, names, labelOf) {
  const options = [el("option", { value: "" }, label.any)];
  names.forEach((name, k) => options.push(el("option", { value: String(k) }, labelOf(name))));
  const input = el("select", { "data-testid": testid }, ...options);
  return { field: el("label", {}, el("span", {}, label.text), input), input };
}

/** Kind labels in the chosen language from GET /api/catalog ({kinds: [{kind, label}]} or a map). */
function kindLabels(catalog) {
  const out = {};
  const kinds = catalog?.kinds ?? [];
  if (Array.isArray(kinds)) {
    for (const k of kinds) out[k.kind ?? k.name] = k.label ?? k.kind ?? k.name;
  } else {
    for (const [name, spec] of Object.entries(kinds)) out[name] = spec?.label ?? name;
  }
  return out;
}

function legendRows(t, layer) {
  const rows = layer
    ? [...LEGENDS[layer].map(([, colour, key]) => [colour, t(key)]), ["#c4cad0", t("map.no-value")]]
    : STATES.map((state, k) => [STATE_COLOURS[k], t(`state.${state}`)]);
  return rows.map(([colour, text]) =>
    el("li", {}, el("span", { class: `swatch`, "data-colour": colour }), text),
  );
}

export async function mount(root, ctx) {
  const { api, t, live, fmt } = ctx;
  const tiles = document.querySelector("meta[name=smartpole-map-tiles]")?.content || "";
  // the base map: an XYZ raster template ({z}/{x}/{y}), a MapLibre style URL, or none (offline)
  let source = !tiles ? "offline" : /\{z\}/.test(tiles) ? "xyz" : "style";
  const drawOutlines = () => api.get("/api/map/outlines").catch(() => null);
  // the base map is drawn when it arrives: the poles do not wait for it
  let outlines = source === "offline" ? drawOutlines() : Promise.resolve(null);
  const [L, body, catalog] = await Promise.all([
    source === "style" ? maplibre() : leaflet(),
    api.get("/api/map/poles"),
    api.get(`/api/catalog?lang=${encodeURIComponent(ctx.lang)}`).catch(() => null),
  ]);
  const poles = new Poles(body);
  const kinds = kindLabels(catalog);
  const filters = { district: null, road: null, kind: null, owner: null };

  const count = el("p", { class: "map-count", "data-testid": "map-count" });
  const search = el("input", {
    type: "search",
    placeholder: t("map.search"),
    "aria-label": t("map.search"),
    "data-testid": "map-search",
  });
  const searchError = el("p", { class: "error", "data-testid": "map-search-error", hidden: "" });
  const searchForm = el(
    "form",
    { class: "map-search", role: "search" },
    search,
    el("button", { type: "submit", "data-testid": "map-search-go" }, t("map.go")),
  );
  const any = (text) => ({ text, any: t("map.any") });
  const district = select("filter-district", any(t("map.district")), poles.districts, (n) => n);
  const road = select("filter-road", any(t("map.road")), poles.roads, (n) => n);
  const kind = select("filter-kind", any(t("map.kind")), poles.kinds, (n) => kinds[n] ?? n);
  const owner = select("filter-owner", any(t("map.owner")), poles.owners, (n) => n);
  const layerInputs = LAYERS.map((layer) =>
    el(
      "label",
      { class: "radio" },
      el("input", {
        type: "radio",
        name: "layer",
        value: layer ?? "",
        "data-testid": `layer-${layer ?? "state"}`,
        ...(layer === null ? { checked: "" } : {}),
      }),
      t(`map.layer.${layer ?? "state"}`),
    ),
  );
  const legend = el("ul", { class: "legend", "data-testid": "map-legend" });
  const panel = el(
    "aside",
    { class: "map-panel" },
    searchForm,
    searchError,
    district.field,
    road.field,
    kind.field,
    owner.field,
    el("fieldset", { class: "layers" }, el("legend", {}, t("map.layer")), ...layerInputs),
    legend,
    count,
  );
  const mapBox = el("div", { class: "map", "data-testid": "map" });
  const card = el("div", { class: "pole-card", "data-testid": "pole-card", hidden: "" });
  root.replaceChildren(el("div", { class: "map-page" }, panel, mapBox, card));

  const map = L.map(mapBox, {
    zoomAnimation: false,
    fadeAnimation: false,
    markerZoomAnimation: false,
    maxZoom: MAX_ZOOM,
    attributionControl: Boolean(tiles),
    worldCopyJump: false,
  });
  if (source === "xyz") {
    L.tileLayer(tiles, { maxZoom: MAX_ZOOM, attribution: new URL(tiles.replace(/[{}]/g, "")).host }).addTo(map);
  } else if (source === "style") {
    try {
      L.maplibreGL({ style: tiles }).addTo(map);
    } catch (err) {
      // no WebGL in this browser: the offline base map rather than none
      console.warn("the MapLibre base map cannot be drawn here:", err.message);
      source = "offline";
      outlines = drawOutlines();
    }
  }
  mapBox.dataset.base = source;

  function showLegend() {
    legend.replaceChildren(...legendRows(t, layerState.layer));
    for (const swatch of legend.querySelectorAll(".swatch")) swatch.style.background = swatch.dataset.colour;
  }

  function showCount(drawn) {
    count.textContent = t("map.count", { shown: fmt.number(poles.shownCount), total: fmt.number(poles.n) });
    count.dataset.total = String(poles.n);
    count.dataset.shown = String(poles.shownCount);
    count.dataset.drawn = String(drawn);
  }

  const layerState = { layer: null };
  const canvas = new PoleLayer(map, poles, { onDraw: showCount });
  const bounds = poles.bounds();
  if (bounds) map.fitBounds(bounds, { padding: [24, 24], maxZoom: SEARCH_ZOOM });
  else map.setView([30, 110], 4);
  let base = null;
  let mounted = true;
  outlines.then((shapes) => {
    if (mounted && shapes) base = new BaseLayer(map, shapes);
  });
  showLegend();
  showCount(0);

  // for whoever reads the page (tests, benchmarks): shown poles by state code, "ok,offline,..."
  function showStates() {
    count.dataset.states = poles.stateCounts().join(",");
  }
  showStates();

  function refilter() {
    poles.filter(filters);
    showStates();
    card.hidden = true;
    canvas.schedule();
  }
  for (const [name, box] of Object.entries({ district, road, kind, owner })) {
    box.input.addEventListener("change", () => {
      filters[name] = box.input.value === "" ? null : Number(box.input.value);
      refilter();
    });
  }

  async function setLayer(layer) {
    layerState.layer = layer;
    if (layer) {
      const values = await api.get(`/api/map/layers/${layer}`);
      if (layerState.layer !== layer) return;
      poles.setValues(values);
    }
    canvas.setLayer(layer);
    showLegend();
  }
  for (const label of layerInputs) {
    const input = label.querySelector("input");
    input.addEventListener("change", () => setLayer(input.value || null).catch(console.error));
  }

  function openCard(i, point) {
    const id = poles.id[i];
    const state = STATES[poles.state[i]] ?? "ok";
    const dot = el("span", { class: "swatch" });
    dot.style.background = STATE_COLOURS[poles.state[i]];
    const kindNames = poles.kindsOf(i).map((k) => kinds[k] ?? k);
    card.replaceChildren(
      el("button", { type: "button", class: "close", "aria-label": t("map.close"), onclick: () => (card.hidden = true) }, "×"),
      el("h2", { "data-testid": "pole-card-code" }, poles.code[i]),
      el("p", { "data-testid": "pole-card-state", "data-state": state }, dot, t(`state.${state}`)),
      el("p", {}, `${poles.districts[poles.district[i]] ?? ""} · ${poles.roads[poles.road[i]] ?? ""}`),
      el("p", {}, `${t("map.kinds")}: ${kindNames.join(", ") || "–"}`),
      el("p", {}, `${t("map.owners")}: ${poles.ownersOf(i).join(", ") || "–"}`),
      el("a", { href: `/poles/${id}`, class: "button", "data-testid": "pole-card-open" }, t("map.open")),
    );
    card.dataset.pole = String(id);
    const size = map.getSize();
    card.style.left = `${Math.min(point.x + 12, size.x - 260) + panel.offsetWidth}px`;
    card.style.top = `${Math.min(point.y + 12, size.y - 200)}px`;
    card.hidden = false;
  }

  map.on("click", (event) => {
    const item = canvas.hit(event.containerPoint);
    if (!item) {
      card.hidden = true;
      return;
    }
    if (item.count === 1) {
      openCard(item.pole, event.containerPoint);
      return;
    }
    const target = map.containerPointToLatLng([item.x, item.y]);
    map.setView(target, Math.min(map.getZoom() + 2, MAX_ZOOM));
  });
  map.on("movestart", () => (card.hidden = true));

  searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const i = poles.find(search.value);
    if (i < 0 || !poles.shown[i]) {
      searchError.textContent = t("map.not-found", { code: search.value });
      searchError.hidden = false;
      return;
    }
    searchError.hidden = true;
    map.setView([poles.lat[i], poles.lon[i]], SEARCH_ZOOM);
    const size = map.getSize();
    requestAnimationFrame(() => openCard(i, { x: size.x / 2, y: size.y / 2 }));
  });

  const offStates = live.on("states", (message) => {
    if (poles.applyStates(message.poles)) {
      showStates();
      canvas.schedule();
    }
  });
  live.send({ op: "map" });
  mapBox.dataset.ready = "1";

  return () => {
    mounted = false;
    offStates();
    canvas.remove();
    base?.remove();
    map.remove();
  };
}
