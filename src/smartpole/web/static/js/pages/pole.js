// The pole page (/poles/{id}): its devices by kind with live latest values and online state,
// a chart of any key, attributes, the commands the role allows with each command's lifecycle,
// and the pole's alarms and work orders. Live over ctx.live ({"op": "pole"}), no polling.
import { add } from "../i18n.js";
import { uplot } from "../vendor.js";
import { catalog as loadCatalog, el, failure, flash, mayOperate, severityBadge, stylesheet } from "./ui.js";

const RANGES = [
  // [label key, window ms, aggregation, bucket ms]; whole hours come from the hourly rollups
  ["1h", 3_600_000, "none", 0],
  ["24h", 86_400_000, "avg", 900_000],
  ["7d", 7 * 86_400_000, "avg", 3_600_000],
  ["30d", 30 * 86_400_000, "avg", 6 * 3_600_000],
];
const DONE = new Set(["succeeded", "failed", "expired"]);
const LIFECYCLE = ["queued", "sent", "delivered", "succeeded"];
const COMMAND = { persistent: true, timeout: 10_000, expiration: 300_000 };
// How far along each status is: the POST's answer may come after the live "succeeded".
const RANK = { queued: 0, sent: 1, delivered: 2, succeeded: 3, failed: 3, expired: 3 };

function display(ctx, value, unit) {
  if (typeof value === "number") return `${ctx.fmt.number(value, { maximumFractionDigits: 2 })}${unit ? ` ${unit}` : ""}`;
  if (typeof value === "boolean") return ctx.t(value ? "pole.yes" : "pole.no");
  if (value && typeof value === "object") return JSON.stringify(value);
  return String(value ?? "–");
}

export async function mount(root, ctx) {
  const { api, t, fmt, live } = ctx;
  const poleId = Number(ctx.params?.id);
  if (!Number.isInteger(poleId) || poleId < 1) throw Object.assign(new Error("not found"), { status: 404 });
  await stylesheet();
  const pole = await api.get(`/api/poles/${poleId}`); // 404: the shell shows "not found"
  const [devicePage, cat, latest, alarms, orders] = await Promise.all([
    api.get(`/api/devices?pole_id=${poleId}&limit=1000`),
    loadCatalog(ctx),
    api.get(`/api/telemetry/latest?pole_id=${poleId}`),
    api.get(`/api/alarms?pole_id=${poleId}&active=true&limit=200`),
    api.get(`/api/work-orders?pole_id=${poleId}&status=open&status=assigned&status=in_progress&status=resolved`),
  ]);
  const operate = mayOperate(ctx.user);
  const devices = devicePage.items;
  const byId = new Map(devices.map((d) => [d.id, d]));
  const values = new Map(devices.map((d) => [d.id, { ...(latest[d.id] ?? latest[String(d.id)] ?? {}) }]));
  const cells = new Map(); // device id -> key -> value cell
  const commands = new Map(); // command id -> row
  const notice = el("p", { class: "notice", testid: "pole-notice", hidden: true });
  const kindLabel = (kind) => cat[kind]?.label ?? kind;
  const keyLabel = (kind, key) => cat[kind]?.keys?.[key]?.label ?? key;
  const keyUnit = (kind, key) => cat[kind]?.keys?.[key]?.unit ?? "";

  // -- devices, by kind ---------------------------------------------------------------------
  function valueRows(device) {
    const body = el("tbody");
    const mine = new Map();
    cells.set(device.id, mine);
    const keys = Object.keys(values.get(device.id)).sort();
    for (const key of keys) body.append(valueRow(device, key, mine));
    return body;
  }

  function valueRow(device, key, mine) {
    const point = values.get(device.id)[key];
    const cell = el("td", { testid: `value-${device.id}-${key}` }, display(ctx, point?.value, keyUnit(device.kind, key)));
    const when = el("td", { class: "muted" }, fmt.relative(point?.ts));
    mine.set(key, { cell, when });
    return el("tr", {}, el("th", { scope: "row", title: key }, keyLabel(device.kind, key)), cell, when);
  }

  function setValue(deviceId, key, point) {
    const device = byId.get(deviceId);
    if (!device) return;
    values.get(deviceId)[key] = point;
    const mine = cells.get(deviceId);
    const known = mine?.get(key);
    if (known) {
      known.cell.textContent = display(ctx, point.value, keyUnit(device.kind, key));
      known.when.textContent = fmt.relative(point.ts);
      known.cell.classList.remove("fresh");
      void known.cell.offsetWidth;
      known.cell.classList.add("fresh");
    } else if (mine) {
      root.querySelector(`[data-testid=values-${deviceId}] tbody`)?.append(valueRow(device, key, mine));
      chartKeys();
    }
  }

  function onlineBadge(device) {
    return el(
      "span",
      { class: `online ${device.online ? "on" : "off"}`, testid: `online-${device.id}`, dataset: { online: String(!!device.online) } },
      t(device.online ? "pole.online" : "pole.offline"),
    );
  }

  function controls(device) {
    if (!operate) return null;
    const box = el("div", { class: "controls", testid: `controls-${device.id}` });
    const send = (method, params) => command(device, method, params);
    if (device.kind === "lamp") {
      const level = el("input", { type: "number", min: 0, max: 100, value: 60, class: "short", testid: `dim-level-${device.id}`, "aria-label": t("pole.level") });
      box.append(
        el("label", {}, t("pole.level"), " ", level, " %"),
        el("button", { type: "button", testid: `cmd-dim-${device.id}`, onclick: () => send("setDim", { level: Number(level.value) }) }, t("pole.dim")),
        el("button", { type: "button", testid: `cmd-on-${device.id}`, onclick: () => send("setOn", { on: true }) }, t("pole.on")),
        el("button", { type: "button", testid: `cmd-off-${device.id}`, onclick: () => send("setOn", { on: false }) }, t("pole.off")),
      );
    } else if (device.kind === "gateway") {
      const port = el("input", { type: "number", min: 1, max: 32, value: 1, class: "short", testid: `port-${device.id}`, "aria-label": t("pole.port") });
      box.append(
        el("label", {}, t("pole.port"), " ", port),
        el("button", { type: "button", testid: `cmd-port-on-${device.id}`, onclick: () => send("switchPort", { port: Number(port.value), on: true }) }, t("pole.on")),
        el("button", { type: "button", testid: `cmd-port-off-${device.id}`, onclick: () => send("switchPort", { port: Number(port.value), on: false }) }, t("pole.off")),
      );
    } else if (device.kind === "display") {
      const text = el("input", { type: "text", maxlength: 500, testid: `display-text-${device.id}`, "aria-label": t("pole.text") });
      box.append(text, el("button", { type: "button", testid: `cmd-show-${device.id}`, onclick: () => send("showContent", { content: text.value }) }, t("pole.show")));
    }
    box.append(el("button", { type: "button", class: "secondary", testid: `cmd-reboot-${device.id}`, onclick: () => send("reboot", {}) }, t("pole.reboot")));
    return box;
  }

  async function command(device, method, params) {
    try {
      const sent = await api.post(`/api/devices/${device.id}/rpc`, { method, params, ...COMMAND });
      showCommand(sent);
    } catch (err) {
      flash(notice, failure(t, err));
    }
  }

  function lifecycle(status) {
    const steps = DONE.has(status) && status !== "succeeded" ? [...LIFECYCLE.slice(0, 3), status] : LIFECYCLE;
    const at = steps.indexOf(status);
    return el(
      "ol",
      { class: "lifecycle" },
      steps.map((s, i) => el("li", { class: i < at ? "past" : i === at ? `now ${s}` : "" }, t(`cmd.${s}`))),
    );
  }

  function showCommand(c) {
    const list = root.querySelector(`[data-testid=commands-${c.device_id}]`);
    if (!list) return;
    const shown = commands.get(c.id)?.dataset.status;
    if (shown && RANK[shown] >= RANK[c.status]) return;
    const row = el(
      "li",
      { testid: `command-${c.id}`, dataset: { status: c.status } },
      el("code", {}, c.method),
      " ",
      el("span", { class: `status ${c.status}`, testid: `command-status-${c.id}` }, t(`cmd.${c.status}`)),
      lifecycle(c.status),
      c.error ? el("span", { class: "muted" }, ` ${c.error}`) : null,
    );
    const old = commands.get(c.id);
    if (old) old.replaceWith(row);
    else list.prepend(row);
    commands.set(c.id, row);
    while (list.children.length > 5) {
      const last = list.lastElementChild;
      commands.delete(Number(last.dataset.testid.replace("command-", "")));
      last.remove();
    }
  }

  async function attributes(device, box) {
    try {
      const attrs = await api.get(`/api/devices/${device.id}/attributes`);
      const rows = [];
      for (const [scope, kv] of Object.entries(attrs ?? {})) {
        for (const [key, attr] of Object.entries(kv ?? {})) {
          const value = attr && typeof attr === "object" && "value" in attr ? attr.value : attr;
          rows.push(el("tr", {}, el("th", { scope: "row" }, key), el("td", {}, display(ctx, value, "")), el("td", { class: "muted" }, t(`scope.${scope}`))));
        }
      }
      box.replaceChildren(rows.length ? el("table", { class: "kv" }, el("tbody", {}, rows)) : el("p", { class: "muted" }, t("ui.none")));
    } catch (err) {
      box.replaceChildren(el("p", { class: "muted" }, failure(t, err)));
    }
  }

  function deviceCard(device) {
    const attrs = el("div", { class: "attributes" });
    const details = el("details", { ontoggle: () => details.open && attributes(device, attrs) }, el("summary", {}, t("pole.attributes")), attrs);
    return el(
      "article",
      { class: "device card", testid: `device-${device.id}`, dataset: { kind: device.kind } },
      el("header", {}, el("h3", {}, device.name), onlineBadge(device)),
      el("table", { class: "kv", testid: `values-${device.id}` }, valueRows(device)),
      controls(device),
      operate ? el("ol", { class: "commands", testid: `commands-${device.id}` }) : null,
      details,
    );
  }

  const kinds = [...new Set(devices.map((d) => d.kind))].sort();
  const deviceSection = el(
    "section",
    { class: "devices", testid: "devices" },
    el("h2", {}, t("pole.devices")),
    devices.length ? null : el("p", { class: "muted" }, t("ui.none")),
    kinds.map((kind) =>
      el("div", { class: "kind", testid: `kind-${kind}` }, el("h3", {}, kindLabel(kind)), el("div", { class: "cards" }, devices.filter((d) => d.kind === kind).map(deviceCard))),
    ),
  );

  // -- chart --------------------------------------------------------------------------------
  const seriesSelect = el("select", { testid: "chart-key", "aria-label": t("pole.chart.key") });
  let range = RANGES[1];
  let plot = null;
  const chartBox = el("div", { class: "chart", testid: "chart" });
  const rangeButtons = RANGES.map((r) =>
    el("button", { type: "button", class: r === range ? "active" : "", testid: `range-${r[0]}`, onclick: () => { range = r; for (const b of rangeButtons) b.classList.toggle("active", b.dataset.testid === `range-${r[0]}`); draw(); } }, t(`pole.range.${r[0]}`)),
  );
  function chartKeys() {
    const chosen = seriesSelect.value;
    const options = [];
    for (const d of devices) {
      for (const [key, point] of Object.entries(values.get(d.id))) {
        if (typeof point?.value === "number") options.push(el("option", { value: `${d.id}:${key}` }, `${d.name} · ${keyLabel(d.kind, key)}`));
      }
    }
    seriesSelect.replaceChildren(...options);
    if (chosen) seriesSelect.value = chosen;
  }
  seriesSelect.onchange = () => draw();
  async function draw() {
    const [deviceId, key] = (seriesSelect.value || "").split(/:(.*)/s);
    if (!key) {
      chartBox.replaceChildren(el("p", { class: "muted" }, t("pole.chart.empty")));
      return;
    }
    const [label, span, agg, interval] = range;
    const end = Date.now();
    const q = new URLSearchParams({ key, start: String(end - span), end: String(end), agg, limit: "10000" });
    if (interval) q.set("interval", String(interval));
    try {
      const [got, UPlot] = await Promise.all([api.get(`/api/devices/${deviceId}/timeseries?${q}`), uplot()]);
      const points = (got[key] ?? []).slice().sort((a, b) => a.ts - b.ts);
      const xs = points.map((p) => p.ts / 1000);
      const ys = points.map((p) => (typeof p.value === "number" ? p.value : null));
      const device = byId.get(Number(deviceId));
      const unit = keyUnit(device?.kind, key);
      plot?.destroy();
      chartBox.replaceChildren();
      chartBox.dataset.points = String(points.length);
      chartBox.dataset.range = label;
      plot = new UPlot(
        {
          width: Math.max(320, chartBox.clientWidth || 640),
          height: 240,
          series: [{}, { label: `${keyLabel(device?.kind, key)}${unit ? ` (${unit})` : ""}`, stroke: "#1f6feb", width: 2, value: (_, v) => (v == null ? "–" : fmt.number(v, { maximumFractionDigits: 2 })) }],
          axes: [{}, { values: (_, ticks) => ticks.map((v) => fmt.number(v)) }],
        },
        [xs, ys],
        chartBox,
      );
    } catch (err) {
      chartBox.replaceChildren(el("p", { class: "muted" }, failure(t, err)));
    }
  }

  // -- alarms and work orders ------------------------------------------------------------------
  const alarmList = el("ul", { class: "rows", testid: "pole-alarms" });
  const alarmRows = new Map();
  function alarmRow(a) {
    const buttons = operate
      ? [
          a.status === "active_unack" || a.status === "cleared_unack"
            ? el("button", { type: "button", testid: `pole-ack-${a.id}`, onclick: () => act(a, "ack") }, t("ui.ack"))
            : null,
          a.status.startsWith("active") ? el("button", { type: "button", class: "secondary", testid: `pole-clear-${a.id}`, onclick: () => act(a, "clear") }, t("ui.clear")) : null,
        ]
      : [];
    return el("li", { testid: `pole-alarm-${a.id}`, dataset: { status: a.status } }, severityBadge(t, a.severity), " ", el("strong", {}, a.type), " ", el("span", { class: "muted" }, t(`alarm.status.${a.status}`), " · ", fmt.datetime(a.last_ts)), ...buttons);
  }
  function showAlarm(a) {
    const old = alarmRows.get(a.id);
    if (!a.status.startsWith("active")) {
      old?.remove();
      alarmRows.delete(a.id);
      return;
    }
    const row = alarmRow(a);
    if (old) old.replaceWith(row);
    else alarmList.prepend(row);
    alarmRows.set(a.id, row);
  }
  async function act(a, what) {
    try {
      showAlarm(await api.post(`/api/alarms/${a.id}/${what}`));
    } catch (err) {
      flash(notice, failure(t, err));
    }
  }
  for (const a of alarms.slice().reverse()) showAlarm(a);

  const orderList = el(
    "ul",
    { class: "rows", testid: "pole-work-orders" },
    orders.items.length
      ? orders.items.map((o) => el("li", { testid: `pole-wo-${o.id}` }, severityBadge(t, o.severity), " ", el("a", { href: `/work-orders#wo-${o.id}` }, o.title), " ", el("span", { class: "muted" }, t(`wo.status.${o.status}`), o.overdue ? ` · ${t("pole.overdue")}` : "")))
      : el("li", { class: "muted" }, t("ui.none")),
  );

  root.replaceChildren(
    el(
      "div",
      { class: "pole-page", testid: "pole-page" },
      el("header", { class: "page-head" }, el("h1", { testid: "pole-code" }, pole.code), el("p", { class: "muted" }, [pole.district, pole.road].filter(Boolean).join(" · "), " ", el("a", { href: `/?pole=${poleId}`, testid: "pole-on-map" }, t("pole.on-map")))),
      notice,
      deviceSection,
      el("section", { class: "card" }, el("h2", {}, t("pole.chart")), el("div", { class: "toolbar" }, seriesSelect, rangeButtons), chartBox),
      el("section", { class: "card" }, el("h2", {}, t("pole.alarms")), alarmList),
      el("section", { class: "card" }, el("h2", {}, t("pole.work-orders")), orderList),
    ),
  );
  chartKeys();
  draw();
  if (operate) {
    await Promise.all(
      devices.map(async (d) => {
        const recent = await api.get(`/api/devices/${d.id}/commands?limit=5`).catch(() => []);
        for (const c of recent.slice().reverse()) showCommand(c);
      }),
    );
  }

  // -- live -----------------------------------------------------------------------------------
  const offs = [
    live.on("latest", (m) => {
      for (const [key, point] of Object.entries(m.values ?? {})) setValue(m.device, key, point);
    }),
    live.on("online", (m) => {
      const device = byId.get(m.device);
      if (!device) return;
      device.online = m.online;
      root.querySelector(`[data-testid=online-${m.device}]`)?.replaceWith(onlineBadge(device));
    }),
    live.on("command", (m) => {
      if (byId.has(m.command?.device_id)) showCommand(m.command);
    }),
    live.on("alarm", (m) => {
      if (m.alarm?.pole_id === poleId || byId.has(m.alarm?.originator_id)) showAlarm(m.alarm);
    }),
  ];
  live.send({ op: "pole", id: poleId });
  return () => {
    for (const off of offs) off();
    plot?.destroy();
  };
}

add({
  en: {
    "pole.devices": "Devices",
    "pole.online": "online",
    "pole.offline": "offline",
    "pole.yes": "yes",
    "pole.no": "no",
    "pole.level": "Level",
    "pole.dim": "Dim",
    "pole.on": "Switch on",
    "pole.off": "Switch off",
    "pole.port": "Port",
    "pole.text": "Text to show",
    "pole.show": "Show",
    "pole.reboot": "Reboot",
    "pole.attributes": "Attributes",
    "pole.chart": "History",
    "pole.chart.key": "Value to chart",
    "pole.chart.empty": "No numeric value to chart yet.",
    "pole.range.1h": "1 h",
    "pole.range.24h": "24 h",
    "pole.range.7d": "7 d",
    "pole.range.30d": "30 d",
    "pole.alarms": "Active alarms",
    "pole.work-orders": "Work orders",
    "pole.overdue": "overdue",
    "pole.on-map": "Show on the map",
    "scope.client": "client",
    "scope.shared": "shared",
    "scope.server": "server",
    "cmd.queued": "queued",
    "cmd.sent": "sent",
    "cmd.delivered": "delivered",
    "cmd.succeeded": "succeeded",
    "cmd.failed": "failed",
    "cmd.expired": "expired",
  },
  "zh-CN": {
    "pole.devices": "设备",
    "pole.online": "在线",
    "pole.offline": "离线",
    "pole.yes": "是",
    "pole.no": "否",
    "pole.level": "亮度",
    "pole.dim": "调光",
    "pole.on": "开启",
    "pole.off": "关闭",
    "pole.port": "端口",
    "pole.text": "显示内容",
    "pole.show": "显示",
    "pole.reboot": "重启",
    "pole.attributes": "属性",
    "pole.chart": "历史曲线",
    "pole.chart.key": "曲线数据",
    "pole.chart.empty": "暂无可绘制的数值。",
    "pole.range.1h": "1 小时",
    "pole.range.24h": "24 小时",
    "pole.range.7d": "7 天",
    "pole.range.30d": "30 天",
    "pole.alarms": "活动告警",
    "pole.work-orders": "工单",
    "pole.overdue": "已超时",
    "pole.on-map": "在地图上显示",
    "scope.client": "客户端",
    "scope.shared": "共享",
    "scope.server": "服务端",
    "cmd.queued": "排队中",
    "cmd.sent": "已发送",
    "cmd.delivered": "已送达",
    "cmd.succeeded": "成功",
    "cmd.failed": "失败",
    "cmd.expired": "已过期",
  },
});
