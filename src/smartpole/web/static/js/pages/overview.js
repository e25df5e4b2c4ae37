// The overview (/overview): devices online and offline by kind, active alarms by severity,
// today's lamp energy, each district's air quality now and its forecast for the next hours.
import { add } from "../i18n.js";
import { aqiLevel, catalog as loadCatalog, el, SEVERITIES, severityBadge, stylesheet } from "./ui.js";

const FORECAST_HOURS = 24;

export async function mount(root, ctx) {
  const { api, t, fmt } = ctx;
  await stylesheet();
  const [data, catalog] = await Promise.all([
    api.get("/api/overview"),
    loadCatalog(ctx),
  ]);

  const total = data.devices.reduce((n, k) => n + k.online + k.offline, 0);
  const online = data.devices.reduce((n, k) => n + k.online, 0);
  const devices = el(
    "section",
    { class: "card", testid: "overview-devices" },
    el("h2", {}, t("ov.devices"), " ", el("span", { class: "muted" }, t("ov.online-of", { online: fmt.number(online), total: fmt.number(total) }))),
    el(
      "table",
      { class: "list" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, t("ov.kind")), el("th", { scope: "col" }, t("ov.online")), el("th", { scope: "col" }, t("ov.offline")))),
      el(
        "tbody",
        {},
        data.devices.map((k) =>
          el("tr", { testid: `kind-${k.kind}` }, el("th", { scope: "row" }, catalog[k.kind]?.label ?? k.kind), el("td", { testid: `online-${k.kind}` }, fmt.number(k.online)), el("td", { testid: `offline-${k.kind}`, class: k.offline ? "warn" : "" }, fmt.number(k.offline))),
        ),
      ),
    ),
  );
  const alarms = el(
    "section",
    { class: "card", testid: "overview-alarms" },
    el("h2", {}, t("ov.alarms")),
    el(
      "ul",
      { class: "tiles" },
      SEVERITIES.map((s) => el("li", { testid: `alarms-${s}` }, severityBadge(t, s), el("a", { href: "/alarms", class: "big" }, fmt.number(data.alarms[s] ?? 0)))),
    ),
  );
  const energy = el(
    "section",
    { class: "card", testid: "overview-energy" },
    el("h2", {}, t("ov.energy")),
    el("p", { class: "big", testid: "energy-kwh" }, `${fmt.number(data.lamp_energy_kwh, { maximumFractionDigits: 1 })} kWh`),
    el("p", { class: "muted" }, t("ov.since", { when: fmt.datetime(data.day_start, data.timezone) })),
  );
  const air = el(
    "section",
    { class: "card", testid: "overview-air" },
    el("h2", {}, t("ov.air")),
    data.air.length
      ? el(
          "table",
          { class: "list" },
          el("thead", {}, el("tr", {}, ["ov.district", "ov.aqi", "ov.forecast"].map((k) => el("th", { scope: "col" }, t(k))))),
          el("tbody", {}, data.air.map(districtRow)),
        )
      : el("p", { class: "muted" }, t("ui.none")),
  );

  function districtRow(d) {
    const forecast = el("td", { testid: `forecast-${d.district}` }, el("span", { class: "muted" }, "…"));
    api
      .get(`/api/forecast?district=${encodeURIComponent(d.district)}&key=aqi&hours=${FORECAST_HOURS}`)
      .then((f) => {
        const peak = f.forecast.reduce((a, b) => (b.value > a.value ? b : a), f.forecast[0]);
        forecast.replaceChildren(
          el(
            "div",
            { class: "strip", title: t("ov.peak", { value: fmt.number(peak.value, { maximumFractionDigits: 0 }), when: fmt.datetime(peak.ts) }) },
            f.forecast.map((p) => el("span", { class: `aqi aqi-${aqiLevel(p.value)}`, title: `${fmt.datetime(p.ts)}: ${fmt.number(p.value, { maximumFractionDigits: 0 })}` })),
          ),
          el("span", { class: "muted" }, t("ov.peak", { value: fmt.number(peak.value, { maximumFractionDigits: 0 }), when: fmt.datetime(peak.ts) })),
        );
      })
      .catch((err) => {
        forecast.replaceChildren(el("span", { class: "muted" }, err.status === 409 ? t("ov.no-history") : err.message));
      });
    return el(
      "tr",
      { testid: `air-${d.district}` },
      el("th", { scope: "row" }, d.district),
      el("td", {}, el("span", { class: `aqi-badge aqi-${d.level}`, testid: `aqi-${d.district}` }, fmt.number(d.aqi, { maximumFractionDigits: 0 })), " ", t(`aqi.level.${d.level}`)),
      forecast,
    );
  }

  root.replaceChildren(
    el("div", { class: "overview-page", testid: "overview-page" }, el("header", { class: "page-head" }, el("h1", {}, t("ov.title"))), el("div", { class: "grid" }, devices, alarms, energy, air)),
  );
  return () => {};
}

add({
  en: {
    "ov.title": "Overview",
    "ov.devices": "Devices",
    "ov.online-of": "{online} of {total} online",
    "ov.kind": "Kind",
    "ov.online": "Online",
    "ov.offline": "Offline",
    "ov.alarms": "Active alarms",
    "ov.energy": "Street lighting today",
    "ov.since": "since {when}",
    "ov.air": "Air quality by district",
    "ov.district": "District",
    "ov.aqi": "AQI now",
    "ov.forecast": "Next 24 hours",
    "ov.peak": "peak {value} at {when}",
    "ov.no-history": "Not enough history for a forecast yet (48 h).",
    "aqi.level.1": "excellent",
    "aqi.level.2": "good",
    "aqi.level.3": "lightly polluted",
    "aqi.level.4": "moderately polluted",
    "aqi.level.5": "heavily polluted",
    "aqi.level.6": "severely polluted",
  },
  "zh-CN": {
    "ov.title": "总览",
    "ov.devices": "设备",
    "ov.online-of": "{total} 台中 {online} 台在线",
    "ov.kind": "类型",
    "ov.online": "在线",
    "ov.offline": "离线",
    "ov.alarms": "活动告警",
    "ov.energy": "今日路灯用电",
    "ov.since": "自 {when} 起",
    "ov.air": "各区空气质量",
    "ov.district": "区域",
    "ov.aqi": "当前 AQI",
    "ov.forecast": "未来 24 小时",
    "ov.peak": "峰值 {value}，{when}",
    "ov.no-history": "历史数据不足，暂无法预测（需 48 小时）。",
    "aqi.level.1": "优",
    "aqi.level.2": "良",
    "aqi.level.3": "轻度污染",
    "aqi.level.4": "中度污染",
    "aqi.level.5": "重度污染",
    "aqi.level.6": "严重污染",
  },
});
