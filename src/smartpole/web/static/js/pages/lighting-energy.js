// The lighting page's energy card: the last 12 months by month (actual vs baseline kWh as bars),
// this month's and the year's savings as tiles, and the CSV exports. Not a page itself.
import { add } from "../i18n.js";
import { uplot } from "../vendor.js";
import { el, failure } from "./ui.js";

/** A zone's offset from UTC at a moment (ms), from Intl (no time zone library). */
function offsetMs(zone, ms) {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-US", { timeZone: zone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric" })
      .formatToParts(new Date(ms))
      .map((p) => [p.type, Number(p.value)]),
  );
  return Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second) - Math.floor(ms / 1000) * 1000;
}

/** Midnight of the first of a month in a zone (ms); month counts from 0 and may overflow. */
export function monthStart(zone, year, month) {
  const guess = Date.UTC(year, month, 1);
  return guess - offsetMs(zone, guess - offsetMs(zone, guess));
}

/** This month in a zone: [year, month from 0]. */
function thisMonth(zone) {
  const [year, month] = new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit" }).format(new Date()).split("-").map(Number);
  return [year, month - 1];
}

function sum(rows, key) {
  return rows.reduce((n, r) => n + r[key], 0);
}

/** Fill the card: fetch the months, draw the bars, show the tiles and the export links. */
export async function energySection(card, ctx, zone) {
  const { api, t, fmt } = ctx;
  const [year, month] = thisMonth(zone);
  const from = monthStart(zone, year, month - 11);
  const to = Date.now();
  const q = new URLSearchParams({ from: String(from), to: String(to), by: "month" });
  const label = `${year}-${String(month + 1).padStart(2, "0")}`;
  const links = el(
    "p",
    { class: "toolbar" },
    el("a", { href: `/api/lighting/energy?${q}&format=csv`, download: "lighting-energy.csv", testid: "energy-csv" }, t("energy.csv")),
    el("a", { href: `/api/lighting/energy/report?month=${label}`, testid: "energy-report" }, t("energy.report", { month: label })),
  );
  card.replaceChildren(el("h2", {}, t("energy.title")), links);
  let rows;
  let currency = "CNY";
  try {
    const [got, settings] = await Promise.all([api.get(`/api/lighting/energy?${q}`), api.get("/api/lighting/settings").catch(() => null)]);
    rows = got.rows;
    currency = settings?.tariff?.currency || currency;
  } catch (err) {
    card.append(el("p", { class: "notice", testid: "energy-error" }, failure(t, err)));
    return;
  }
  const money = (v) => fmt.number(v, { style: "currency", currency });
  const kwh = (v) => `${fmt.number(v, { maximumFractionDigits: 1 })} kWh`;
  const pct = (saved, base) => (base > 0 ? fmt.number(saved / base, { style: "percent", maximumFractionDigits: 1 }) : "–");
  function tiles(testid, title, part) {
    const actual = sum(part, "actual_kwh");
    const baseline = sum(part, "baseline_kwh");
    return el(
      "div",
      { testid },
      el("h3", {}, title),
      el(
        "ul",
        { class: "tiles energy-tiles" },
        [
          ["energy.actual", kwh(actual), "actual"],
          ["energy.saved", pct(baseline - actual, baseline), "saved-pct"],
          ["energy.cost", money(sum(part, "saved_cost")), "saved-cost"],
          ["energy.co2", `${fmt.number(sum(part, "saved_co2_kg"), { maximumFractionDigits: 0 })} kg`, "saved-co2"],
        ].map(([key, value, id]) => el("li", { testid: `${testid}-${id}` }, el("strong", {}, value), el("span", { class: "muted" }, t(key)))),
      ),
    );
  }
  const current = rows.filter((r) => r.period === label);
  // the 12 months, oldest first, each with its row (a month without readings has none)
  const months = Array.from({ length: 12 }, (_, i) => {
    const start = monthStart(zone, year, month - 11 + i);
    const period = new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit" }).format(new Date(start)).slice(0, 7);
    return { start, period, row: rows.find((r) => r.period === period) };
  });
  const chartBox = el("div", { class: "chart", testid: "energy-chart", dataset: { months: String(rows.length) } });
  card.append(
    el("div", { class: "cards energy-cards" }, tiles("energy-month", t("energy.month", { month: label }), current), tiles("energy-year", t("energy.year"), rows)),
    chartBox,
  );
  if (!rows.length) {
    chartBox.append(el("p", { class: "muted" }, t("energy.empty")));
    return;
  }
  const UPlot = await uplot();
  const names = new Intl.DateTimeFormat(ctx.lang, { timeZone: zone, year: "2-digit", month: "short" });
  const labels = months.map((m) => names.format(new Date(m.start)));
  const xs = months.map((_, i) => i);
  const bars = (align) => UPlot.paths.bars({ size: [0.35, 48], align });
  const kwhValue = (u, v) => (v == null ? "–" : kwh(v));
  new UPlot(
    {
      width: Math.max(320, chartBox.clientWidth || 640),
      height: 240,
      scales: { x: { time: false, range: () => [-0.6, 11.6] } },
      axes: [{ splits: () => xs, values: (u, ticks) => ticks.map((i) => labels[i] ?? "") }, { label: "kWh" }],
      series: [
        { label: t("energy.period"), value: (u, i) => (i == null ? "–" : labels[i]) },
        { label: t("energy.actual"), fill: "#1f6feb", stroke: "#1f6feb", paths: bars(-1), points: { show: false }, value: kwhValue },
        { label: t("energy.baseline"), fill: "#9ca3af", stroke: "#9ca3af", paths: bars(1), points: { show: false }, value: kwhValue },
      ],
    },
    [xs, months.map((m) => m.row?.actual_kwh ?? null), months.map((m) => m.row?.baseline_kwh ?? null)],
    chartBox,
  );
}

add({
  en: {
    "energy.title": "Energy",
    "energy.period": "Month",
    "energy.csv": "Export CSV (12 months)",
    "energy.report": "Report of {month} (CSV)",
    "energy.month": "This month ({month})",
    "energy.year": "Last 12 months",
    "energy.actual": "Used",
    "energy.baseline": "Baseline (dusk to dawn at full)",
    "energy.saved": "Saved",
    "energy.cost": "Cost saved",
    "energy.co2": "CO₂ avoided",
    "energy.empty": "No energy recorded yet.",
  },
  "zh-CN": {
    "energy.title": "能耗",
    "energy.period": "月份",
    "energy.csv": "导出 CSV（近 12 个月）",
    "energy.report": "{month} 月报（CSV）",
    "energy.month": "本月（{month}）",
    "energy.year": "近 12 个月",
    "energy.actual": "实际用电",
    "energy.baseline": "基准（整夜全亮）",
    "energy.saved": "节能",
    "energy.cost": "节省电费",
    "energy.co2": "减少 CO₂",
    "energy.empty": "暂无能耗记录。",
  },
});
