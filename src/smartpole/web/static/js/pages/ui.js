// What the console's pages share: building elements, their stylesheet, severity and status
// labels. Not a page itself (the router loads pages by route name only).
import { add } from "../i18n.js";

/** An element: el("button", {class: "x", testid: "y", onclick: fn}, "text", child...). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "testid") node.dataset.testid = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, value);
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

let styled = null;

/** Load the pages' stylesheet once (CSP: style-src 'self'). */
export function stylesheet() {
  styled ??= new Promise((resolve) => {
    const link = el("link", { rel: "stylesheet", href: "/static/css/pages.css" });
    link.onload = resolve;
    link.onerror = resolve;
    document.head.append(link);
  });
  return styled;
}

/** The catalog in the chosen language (GET /api/catalog) as kind -> {label, keys: key ->
 * {label, unit, ...}}; empty when it cannot be had (the raw names are shown then). */
export async function catalog(ctx) {
  const out = {};
  try {
    const got = await ctx.api.get(`/api/catalog?lang=${encodeURIComponent(ctx.lang)}`);
    for (const kind of got.kinds) {
      out[kind.kind] = { label: kind.label, keys: Object.fromEntries(kind.keys.map((k) => [k.key, k])) };
    }
  } catch (err) {
    console.warn("no catalog", err);
  }
  return out;
}

/** Severities, worst first (model/lifecycle.py: Severity). */
export const SEVERITIES = ["critical", "major", "minor", "warning", "indeterminate"];

/** A coloured badge for an alarm's (or work order's) severity. */
export function severityBadge(t, severity) {
  return el("span", { class: `badge sev-${severity}`, dataset: { severity } }, t(`sev.${severity}`));
}

/** May this user change things (operator or admin)? A viewer sees no control it cannot use. */
export function mayOperate(user) {
  return user?.role === "operator" || user?.role === "admin";
}

/** A line saying why something failed, for a page's message area. */
export function failure(t, err) {
  return t("ui.failed", { detail: err?.detail || err?.title || err?.message || String(err) });
}

/** An element's text replaced by a message that fades after a while. */
export function flash(node, text, ms = 6000) {
  node.textContent = text;
  node.hidden = false;
  clearTimeout(node._timer);
  node._timer = setTimeout(() => {
    node.hidden = true;
  }, ms);
}

add({
  en: {
    "sev.critical": "critical",
    "sev.major": "major",
    "sev.minor": "minor",
    "sev.warning": "warning",
    "sev.indeterminate": "indeterminate",
    "alarm.status.active_unack": "active, unacknowledged",
    "alarm.status.active_ack": "active, acknowledged",
    "alarm.status.cleared_unack": "cleared, unacknowledged",
    "alarm.status.cleared_ack": "cleared, acknowledged",
    "wo.status.open": "Open",
    "wo.status.assigned": "Assigned",
    "wo.status.in_progress": "In progress",
    "wo.status.resolved": "Resolved",
    "wo.status.closed": "Closed",
    "ui.failed": "Failed: {detail}",
    "ui.none": "None.",
    "ui.ack": "Acknowledge",
    "ui.clear": "Clear",
  },
  "zh-CN": {
    "sev.critical": "紧急",
    "sev.major": "重要",
    "sev.minor": "次要",
    "sev.warning": "警告",
    "sev.indeterminate": "不确定",
    "alarm.status.active_unack": "活动，未确认",
    "alarm.status.active_ack": "活动，已确认",
    "alarm.status.cleared_unack": "已清除，未确认",
    "alarm.status.cleared_ack": "已清除，已确认",
    "wo.status.open": "待处理",
    "wo.status.assigned": "已派单",
    "wo.status.in_progress": "处理中",
    "wo.status.resolved": "已解决",
    "wo.status.closed": "已关闭",
    "ui.failed": "操作失败：{detail}",
    "ui.none": "无。",
    "ui.ack": "确认",
    "ui.clear": "清除",
  },
});

/** HJ 633-2012 AQI level (1..6) of a value: the upper bounds of hub/aqi.py's AQI_LEVELS. */
export function aqiLevel(aqi) {
  const bounds = [50, 100, 150, 200, 300];
  const i = bounds.findIndex((b) => aqi <= b);
  return i === -1 ? 6 : i + 1;
}
