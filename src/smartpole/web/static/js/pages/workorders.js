// The work-order board (/work-orders): a column per status with SLA countdowns, overdue
// orders marked, and the steps each order's status allows (the API names them: "steps").
import { add } from "../i18n.js";
import { el, failure, flash, mayOperate, severityBadge, stylesheet } from "./ui.js";

const COLUMNS = ["open", "assigned", "in_progress", "resolved", "closed"];
const UNRESOLVED = new Set(["open", "assigned", "in_progress"]);
const TICK_MS = 1000; // the countdowns' clock; nothing is fetched on it

export async function mount(root, ctx) {
  const { api, t, fmt } = ctx;
  await stylesheet();
  const operate = mayOperate(ctx.user);
  const notice = el("p", { class: "notice", testid: "board-notice", hidden: true });
  const board = el("div", { class: "board", testid: "board" });
  const countdowns = new Set();
  let teams = [];

  function countdown(o) {
    const node = el("span", { class: "countdown", testid: `sla-${o.id}` });
    const update = () => {
      const now = Date.now();
      const late = UNRESOLVED.has(o.status) && (o.overdue || now > o.deadline);
      node.textContent = UNRESOLVED.has(o.status) ? t(late ? "wo.late" : "wo.due", { when: fmt.relative(o.deadline, now) }) : "";
      node.classList.toggle("late", late);
      node.closest?.(".wo")?.classList.toggle("overdue", late);
      node.dataset.overdue = String(late);
    };
    update();
    countdowns.add(update);
    return node;
  }

  function stepControls(o) {
    if (!operate) return null;
    const box = el("div", { class: "actions" });
    if (o.status === "open" || o.status === "assigned" || o.status === "in_progress") {
      const team = el("select", { testid: `team-${o.id}`, "aria-label": t("wo.team") }, teams.map((tm) => el("option", { value: tm.id, selected: tm.id === o.team_id }, tm.title || tm.name)));
      if (teams.length) {
        box.append(team, el("button", { type: "button", class: "secondary", testid: `assign-${o.id}`, onclick: () => change(o, "assign", { team_id: Number(team.value) }) }, t(o.status === "open" ? "wo.assign" : "wo.reassign")));
      }
    }
    for (const to of o.steps ?? []) {
      if (to === "assigned") continue; // reached by assigning a team, above
      const label = o.status === "resolved" && to === "in_progress" ? "wo.reopen" : `wo.to.${to}`;
      box.append(el("button", { type: "button", testid: `step-${o.id}-${to}`, onclick: () => change(o, "transition", { to }) }, t(label)));
    }
    return box;
  }

  function card(o) {
    const node = el(
      "article",
      { class: "wo card", id: `wo-${o.id}`, testid: `wo-${o.id}`, dataset: { status: o.status } },
      el("header", {}, severityBadge(t, o.severity), " ", el("strong", {}, o.title)),
      el(
        "p",
        { class: "muted" },
        o.team ? `${t("wo.team")}: ${o.team}` : t("wo.no-team"),
        o.pole_id ? [" · ", el("a", { href: `/poles/${o.pole_id}` }, t("wo.pole"))] : null,
      ),
      countdown(o),
      o.resolve_suggested ? el("p", { class: "hint" }, t("wo.resolve-suggested")) : null,
      stepControls(o),
    );
    return node;
  }

  async function change(o, what, body) {
    try {
      await api.post(`/api/work-orders/${o.id}/${what}`, body);
      await load();
    } catch (err) {
      flash(notice, failure(t, err));
    }
  }

  async function load() {
    const open = COLUMNS.filter((c) => c !== "closed").map((s) => `status=${s}`).join("&");
    const [active, closed] = await Promise.all([
      api.get(`/api/work-orders?${open}&limit=1000`),
      api.get("/api/work-orders?status=closed&limit=50"),
    ]);
    const orders = [...active.items, ...closed.items];
    countdowns.clear();
    board.replaceChildren(
      ...COLUMNS.map((status) => {
        const mine = orders.filter((o) => o.status === status).sort((a, b) => a.deadline - b.deadline);
        return el(
          "section",
          { class: "column", testid: `column-${status}` },
          el("h2", {}, t(`wo.status.${status}`), " ", el("span", { class: "count" }, fmt.number(mine.length))),
          mine.map(card),
        );
      }),
    );
    for (const update of countdowns) update(); // now attached: mark the overdue cards
  }

  if (operate) teams = await api.get("/api/teams").catch(() => []);
  root.replaceChildren(
    el("div", { class: "board-page", testid: "work-orders-page" }, el("header", { class: "page-head" }, el("h1", {}, t("wo.title"))), notice, board),
  );
  await load();
  const timer = setInterval(() => {
    for (const update of countdowns) update();
  }, TICK_MS);
  return () => clearInterval(timer);
}

add({
  en: {
    "wo.title": "Work orders",
    "wo.team": "Team",
    "wo.no-team": "No team yet",
    "wo.pole": "Pole",
    "wo.assign": "Assign",
    "wo.reassign": "Reassign",
    "wo.due": "due {when}",
    "wo.late": "overdue, due {when}",
    "wo.resolve-suggested": "Its alarm cleared: consider resolving it.",
    "wo.to.in_progress": "Start work",
    "wo.to.resolved": "Resolve",
    "wo.to.closed": "Close",
    "wo.reopen": "Reopen",
  },
  "zh-CN": {
    "wo.title": "工单",
    "wo.team": "班组",
    "wo.no-team": "尚未派单",
    "wo.pole": "灯杆",
    "wo.assign": "派单",
    "wo.reassign": "改派",
    "wo.due": "{when}到期",
    "wo.late": "已超时，{when}到期",
    "wo.resolve-suggested": "相关告警已清除，可考虑解决此工单。",
    "wo.to.in_progress": "开始处理",
    "wo.to.resolved": "解决",
    "wo.to.closed": "关闭",
    "wo.reopen": "重新打开",
  },
});
