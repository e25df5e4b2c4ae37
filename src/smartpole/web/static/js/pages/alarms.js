// The alarms page (/alarms): the live list (GET /api/alarms, then "alarm" messages of the
// live socket) with filters, acknowledge, clear, assign and comment, and a jump to the pole
// on the map. New critical alarms ring the header's bell (alarm-bell.js).
import { bell } from "../alarm-bell.js";
import { add } from "../i18n.js";
import { el, failure, flash, mayOperate, SEVERITIES, severityBadge, stylesheet } from "./ui.js";

const STATUSES = ["active_unack", "active_ack", "cleared_unack", "cleared_ack"];

export async function mount(root, ctx) {
  const { api, t, fmt, live } = ctx;
  await stylesheet();
  const operate = mayOperate(ctx.user);
  const rows = new Map(); // alarm id -> {alarm, row}
  const notice = el("p", { class: "notice", testid: "alarms-notice", hidden: true });
  const list = el("tbody", { testid: "alarm-rows" });
  const empty = el("p", { class: "muted", testid: "alarms-empty", hidden: true }, t("alarms.empty"));

  const severity = el("select", { testid: "filter-severity", "aria-label": t("alarms.severity") }, el("option", { value: "" }, t("alarms.any-severity")), SEVERITIES.map((s) => el("option", { value: s }, t(`sev.${s}`))));
  const status = el(
    "select",
    { testid: "filter-status", "aria-label": t("alarms.status") },
    el("option", { value: "active" }, t("alarms.active")),
    el("option", { value: "" }, t("alarms.all")),
    STATUSES.map((s) => el("option", { value: s }, t(`alarm.status.${s}`))),
  );
  const type = el("input", { type: "search", testid: "filter-type", placeholder: t("alarms.type"), "aria-label": t("alarms.type") });
  const pole = el("input", { type: "search", testid: "filter-pole", placeholder: t("alarms.pole"), "aria-label": t("alarms.pole") });

  function filters() {
    return { severity: severity.value, status: status.value, type: type.value.trim(), pole: pole.value.trim() };
  }

  /** Does an alarm pass the filters (for live changes; the list itself is asked of the API)? */
  function passes(a, f, poleId) {
    if (f.severity && a.severity !== f.severity) return false;
    if (f.status === "active" && !a.status.startsWith("active")) return false;
    if (f.status && f.status !== "active" && a.status !== f.status) return false;
    if (f.type && a.type !== f.type) return false;
    if (poleId !== null && a.pole_id !== poleId && !(a.originator_type === "pole" && a.originator_id === poleId)) return false;
    return true;
  }

  let poleId = null;
  async function poleOf(text) {
    if (!text) return null;
    if (/^\d+$/.test(text)) return Number(text);
    const found = await api.get(`/api/poles/by-code/${encodeURIComponent(text)}`);
    return found.id;
  }

  async function load() {
    const f = filters();
    const q = new URLSearchParams({ limit: "500" });
    if (f.severity) q.set("severity", f.severity);
    if (f.status === "active") q.set("active", "true");
    else if (f.status) q.set("status", f.status);
    if (f.type) q.set("type", f.type);
    try {
      poleId = await poleOf(f.pole);
    } catch {
      poleId = -1; // no such pole: nothing matches (no alarm has pole -1)
    }
    if (poleId !== null && poleId > 0) q.set("pole_id", String(poleId));
    const got = poleId === -1 ? [] : await api.get(`/api/alarms?${q}`);
    rows.clear();
    list.replaceChildren();
    for (const a of got) put(a, false);
    empty.hidden = rows.size > 0;
  }

  function actions(a) {
    const box = el("div", { class: "actions" });
    if (operate) {
      if (a.status.endsWith("_unack")) box.append(el("button", { type: "button", testid: `ack-${a.id}`, onclick: () => act(a, "ack") }, t("ui.ack")));
      if (a.status.startsWith("active")) box.append(el("button", { type: "button", class: "secondary", testid: `clear-${a.id}`, onclick: () => act(a, "clear") }, t("ui.clear")));
      const who = el("input", { type: "text", class: "short", testid: `assignee-${a.id}`, value: a.assignee ?? "", placeholder: t("alarms.assignee"), "aria-label": t("alarms.assignee") });
      box.append(who, el("button", { type: "button", class: "secondary", testid: `assign-${a.id}`, onclick: () => act(a, "assign", { assignee: who.value.trim() || null }) }, t("alarms.assign")));
    }
    const comments = el("ul", { class: "comments", testid: `comments-${a.id}` });
    const text = el("input", { type: "text", testid: `comment-text-${a.id}`, placeholder: t("alarms.comment"), "aria-label": t("alarms.comment") });
    const details = el(
      "details",
      { ontoggle: () => details.open && showComments(a, comments) },
      el("summary", { testid: `comments-toggle-${a.id}` }, t("alarms.comments")),
      comments,
      el("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); comment(a, text, comments); } }, text, el("button", { type: "submit", testid: `comment-${a.id}` }, t("alarms.add-comment"))),
    );
    box.append(details);
    return box;
  }

  async function showComments(a, box) {
    try {
      const got = await api.get(`/api/alarms/${a.id}/comments`);
      box.replaceChildren(...got.map((c) => el("li", {}, el("span", { class: "muted" }, `${fmt.datetime(c.ts)} · ${c.author}: `), c.text)));
    } catch (err) {
      box.replaceChildren(el("li", { class: "muted" }, failure(t, err)));
    }
  }

  async function comment(a, input, box) {
    if (!input.value.trim()) return;
    try {
      await api.post(`/api/alarms/${a.id}/comments`, { text: input.value.trim() });
      input.value = "";
      await showComments(a, box);
    } catch (err) {
      flash(notice, failure(t, err));
    }
  }

  async function act(a, what, body) {
    try {
      put(await api.post(`/api/alarms/${a.id}/${what}`, body), true);
    } catch (err) {
      flash(notice, failure(t, err));
    }
  }

  function row(a) {
    const where = a.pole_id
      ? [el("a", { href: `/poles/${a.pole_id}`, testid: `pole-link-${a.id}` }, t("alarms.pole-page")), " · ", el("a", { href: `/?pole=${a.pole_id}`, testid: `map-link-${a.id}` }, t("alarms.on-map"))]
      : [];
    return el(
      "tr",
      { testid: `alarm-${a.id}`, dataset: { status: a.status, severity: a.severity, type: a.type } },
      el("td", {}, severityBadge(t, a.severity)),
      el("td", {}, el("strong", {}, a.type), el("div", { class: "muted" }, `${a.originator_type} ${a.originator_id}`)),
      el("td", { testid: `status-${a.id}` }, t(`alarm.status.${a.status}`)),
      el("td", {}, fmt.datetime(a.last_ts), el("div", { class: "muted" }, t("alarms.count", { n: fmt.number(a.count) }))),
      el("td", { testid: `assigned-${a.id}` }, a.assignee ?? "–"),
      el("td", {}, where),
      el("td", {}, actions(a)),
    );
  }

  /** Show an alarm (new or changed), or drop it when it no longer passes the filters. */
  function put(a, live) {
    const known = rows.get(a.id);
    if (!passes(a, filters(), poleId)) {
      known?.row.remove();
      rows.delete(a.id);
      empty.hidden = rows.size > 0;
      return;
    }
    const fresh = row(a);
    if (known?.row.querySelector("details")?.open) fresh.querySelector("details").open = true; // stays open, comments reread
    if (known) known.row.replaceWith(fresh);
    else if (live) list.prepend(fresh);
    else list.append(fresh);
    if (live && !known) fresh.classList.add("fresh");
    rows.set(a.id, { alarm: a, row: fresh });
    empty.hidden = true;
  }

  for (const input of [severity, status]) input.onchange = () => load().catch((err) => flash(notice, failure(t, err)));
  for (const input of [type, pole]) input.onchange = () => load().catch((err) => flash(notice, failure(t, err)));

  root.replaceChildren(
    el(
      "div",
      { class: "alarms-page", testid: "alarms-page" },
      el("header", { class: "page-head" }, el("h1", {}, t("alarms.title"))),
      el("div", { class: "toolbar", testid: "alarm-filters" }, severity, status, type, pole),
      notice,
      el(
        "table",
        { class: "list" },
        el("thead", {}, el("tr", {}, ["alarms.severity", "alarms.type", "alarms.status", "alarms.last", "alarms.assignee", "alarms.where", "alarms.actions"].map((k) => el("th", { scope: "col" }, t(k))))),
        list,
      ),
      empty,
    ),
  );
  await load();
  bell.seen();
  const off = live.on("alarm", (m) => {
    if (m.alarm) put(m.alarm, true);
  });
  const offDropped = live.on("dropped", () => load().catch(() => {}));
  live.send({ op: "alarms" });
  return () => {
    off();
    offDropped();
  };
}

add({
  en: {
    "alarms.title": "Alarms",
    "alarms.empty": "No alarm matches.",
    "alarms.severity": "Severity",
    "alarms.any-severity": "Any severity",
    "alarms.status": "Status",
    "alarms.active": "Active",
    "alarms.all": "All",
    "alarms.type": "Type",
    "alarms.pole": "Pole (code or id)",
    "alarms.last": "Last seen",
    "alarms.count": "{n} times",
    "alarms.assignee": "Assignee",
    "alarms.assign": "Assign",
    "alarms.where": "Where",
    "alarms.actions": "Actions",
    "alarms.pole-page": "Pole",
    "alarms.on-map": "On the map",
    "alarms.comment": "Comment",
    "alarms.comments": "Comments",
    "alarms.add-comment": "Add",
  },
  "zh-CN": {
    "alarms.title": "告警",
    "alarms.empty": "没有符合条件的告警。",
    "alarms.severity": "级别",
    "alarms.any-severity": "全部级别",
    "alarms.status": "状态",
    "alarms.active": "活动",
    "alarms.all": "全部",
    "alarms.type": "类型",
    "alarms.pole": "灯杆（编号或 ID）",
    "alarms.last": "最近发生",
    "alarms.count": "{n} 次",
    "alarms.assignee": "处理人",
    "alarms.assign": "指派",
    "alarms.where": "位置",
    "alarms.actions": "操作",
    "alarms.pole-page": "灯杆",
    "alarms.on-map": "在地图上查看",
    "alarms.comment": "备注",
    "alarms.comments": "备注",
    "alarms.add-comment": "添加",
  },
});
