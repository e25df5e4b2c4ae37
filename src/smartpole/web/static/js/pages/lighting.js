// The lighting page (/lighting): a group's plan tonight as a step chart with the reason of each
// step, a lamp's level now, the overrides (end one, hold a group), the lighting document (lists,
// YAML export and import with located problems) and the energy saved by month.
import { add } from "../i18n.js";
import { uplot } from "../vendor.js";
import { el, failure, flash, mayOperate, stylesheet } from "./ui.js";
import { energySection } from "./lighting-energy.js";

const YAML = "application/yaml";
const HOUR_MS = 3_600_000;
const FIELDS = { group: "group", level: "level", duration_s: "duration", reason: "reason" };

/** Tonight's evening date in an IANA zone, as YYYY-MM-DD: before local noon, yesterday's (the
 * night still running), as the service's night_date. */
export function tonight(zone) {
  const halfDayAgo = new Date(Date.now() - 12 * HOUR_MS);
  return new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" }).format(halfDayAgo);
}

/** The tenant's time zone (the overview names it), else the browser's. */
export async function tenantZone(api) {
  try {
    return (await api.get("/api/overview")).timezone;
  } catch (err) {
    console.warn("no tenant zone", err);
    return Intl.DateTimeFormat().resolvedOptions().timeZone;
  }
}

/** Who chose a level: "program · entry" or "override". */
function reasonText(t, reason) {
  if (!reason) return "–";
  if (reason.override) return t("lighting.reason.override", { name: reason.override });
  return [reason.program, reason.entry].filter(Boolean).join(" · ") || t("lighting.reason.none");
}

/** A program's steps as "sunset 100 % → …". */
function stepsText(steps) {
  return (steps ?? []).map((s) => `${s.at} ${s.level} %`).join(" → ");
}

/** A group's criteria as "roads: A, B; tags: x". */
function criteriaText(t, group) {
  const parts = [];
  for (const key of ["districts", "roads", "tags", "poles", "lamps"]) {
    if (group[key]?.length) parts.push(`${t(`lighting.crit.${key}`)}: ${group[key].join(", ")}`);
  }
  if (group.polygon) parts.push(t("lighting.crit.polygon"));
  return parts.join("; ") || t("lighting.crit.all");
}

/** A calendar entry's rule, as written. */
function ruleText(entry) {
  const parts = [];
  if (entry.weekdays?.length) parts.push(entry.weekdays.join(" "));
  if (entry.from || entry.to) parts.push(`${entry.from ?? "…"} – ${entry.to ?? "…"}`);
  if (entry.dates?.length) parts.push(entry.dates.join(", "));
  for (const key of ["holidays", "working_days", "rest_days"]) if (entry[key]) parts.push(`${key}: ${entry[key]}`);
  return parts.join("; ") || "–";
}

function table(testid, heads, rows, t) {
  return el(
    "table",
    { class: "list", testid },
    el("thead", {}, el("tr", {}, heads.map((k) => el("th", { scope: "col" }, t(k))))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: heads.length, class: "muted" }, t("ui.none")))),
  );
}

export async function mount(root, ctx) {
  const { api, t, fmt } = ctx;
  await stylesheet();
  const operate = mayOperate(ctx.user);
  const zone = await tenantZone(api);
  const notice = el("p", { class: "notice", testid: "lighting-notice", hidden: true });
  let plot = null;
  const hours = new Intl.DateTimeFormat(ctx.lang, { timeZone: zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  let groups = [];

  // -- tonight ---------------------------------------------------------------------------------
  const groupPick = el("select", { testid: "plan-group", "aria-label": t("lighting.group") });
  const datePick = el("input", { type: "date", testid: "plan-date", value: tonight(zone), "aria-label": t("lighting.date") });
  const chartBox = el("div", { class: "chart", testid: "plan-chart" });
  const planInfo = el("p", { class: "muted", testid: "plan-info" });
  const reasons = el("div", { testid: "plan-reasons" });
  const lampName = el("input", { type: "search", testid: "lamp-search", placeholder: t("lighting.lamp.placeholder"), "aria-label": t("lighting.lamp") });
  const lampOut = el("p", { testid: "lamp-now" });

  async function drawPlan() {
    const group = groupPick.value;
    if (!group) return;
    try {
      const q = new URLSearchParams({ group, date: datePick.value || tonight(zone) });
      const [got, UPlot] = await Promise.all([api.get(`/api/lighting/plan?${q}`), uplot()]);
      // lamps of a group mostly share one plan (same calendar); the first one is drawn
      const steps = got.lamps[0]?.steps ?? [];
      planInfo.textContent = got.lamps.length
        ? t("lighting.plan.lamps", { n: fmt.number(got.lamps.length), lamp: got.lamps[0].lamp })
        : t("lighting.plan.no-lamps");
      chartBox.dataset.steps = String(steps.length);
      plot?.destroy();
      plot = null;
      chartBox.replaceChildren();
      reasons.replaceChildren(
        table(
          "plan-steps",
          ["lighting.time", "lighting.level", "lighting.fade", "lighting.reason"],
          steps.map((s, i) =>
            el(
              "tr",
              { testid: `step-${i}` },
              el("td", {}, fmt.datetime(s.ts, zone)),
              el("td", {}, `${fmt.number(s.level, { maximumFractionDigits: 1 })} %`),
              el("td", {}, s.fade_s ? `${fmt.number(s.fade_s)} s` : "–"),
              el("td", {}, reasonText(t, s.reason)),
            ),
          ),
          t,
        ),
      );
      if (!steps.length) {
        chartBox.append(el("p", { class: "muted" }, t("lighting.plan.empty")));
        return;
      }
      // the last level holds for an hour after the last step, so the step shows
      const xs = [...steps.map((s) => s.ts / 1000), steps.at(-1).ts / 1000 + HOUR_MS / 1000];
      const ys = [...steps.map((s) => s.level), steps.at(-1).level];
      plot = new UPlot(
        {
          width: Math.max(320, chartBox.clientWidth || 640),
          height: 240,
          tzDate: (ts) => UPlot.tzDate(new Date(ts * 1000), zone),
          scales: { y: { range: [0, 100] } },
          axes: [{ values: (u, ticks) => ticks.map((x) => hours.format(new Date(x * 1000))) }, { label: t("lighting.level.pct") }],
          series: [{ label: t("lighting.time"), value: (u, x) => (x == null ? "–" : fmt.datetime(x * 1000, zone)) }, { label: t("lighting.level.pct"), stroke: "#1f6feb", fill: "rgba(31,111,235,0.12)", width: 2, paths: UPlot.paths.stepped({ align: 1 }) }],
        },
        [xs, ys],
        chartBox,
      );
    } catch (err) {
      chartBox.replaceChildren();
      flash(notice, failure(t, err));
    }
  }

  async function lampNow(event) {
    event.preventDefault();
    const lamp = lampName.value.trim();
    if (!lamp) return;
    try {
      const got = await api.get(`/api/lighting/plan?${new URLSearchParams({ lamp, at: String(Date.now()) })}`);
      lampOut.dataset.level = String(got.level);
      lampOut.textContent = t("lighting.lamp.now", { lamp, level: fmt.number(got.level, { maximumFractionDigits: 1 }), reason: reasonText(t, got.reason) });
    } catch (err) {
      delete lampOut.dataset.level;
      lampOut.textContent = failure(t, err);
    }
  }

  groupPick.addEventListener("change", drawPlan);
  datePick.addEventListener("change", drawPlan);

  // -- overrides -------------------------------------------------------------------------------
  const overrideRows = el("div", { testid: "overrides" });
  const holdGroup = el("select", { testid: "hold-group", name: "group" });
  const holdLevel = el("input", { type: "number", min: 0, max: 100, step: 1, value: 80, testid: "hold-level", name: "level" });
  const holdMinutes = el("input", { type: "number", min: 1, step: 1, value: 60, testid: "hold-minutes", name: "duration" });
  const holdReason = el("input", { type: "text", maxlength: 500, testid: "hold-reason", name: "reason" });
  const fieldErrors = Object.fromEntries(Object.values(FIELDS).map((f) => [f, el("span", { class: "field-error", testid: `error-${f}`, hidden: true })]));

  function labelled(key, input, field) {
    return el("label", { class: "field" }, el("span", {}, t(key)), input, fieldErrors[field]);
  }

  function showFieldErrors(err) {
    for (const span of Object.values(fieldErrors)) span.hidden = true;
    const items = err.problem?.errors ?? [];
    let placed = false;
    for (const p of items) {
      const field = FIELDS[p.loc?.at(-1)];
      if (!field) continue;
      fieldErrors[field].textContent = p.msg;
      fieldErrors[field].hidden = false;
      placed = true;
    }
    if (!placed) flash(notice, failure(t, err));
  }

  async function hold(event) {
    event.preventDefault();
    const body = {
      group: holdGroup.value,
      level: Number(holdLevel.value),
      duration_s: Number(holdMinutes.value) * 60,
      reason: holdReason.value,
    };
    try {
      await api.post("/api/lighting/overrides", body);
      for (const span of Object.values(fieldErrors)) span.hidden = true;
      await Promise.all([loadOverrides(), drawPlan()]);
    } catch (err) {
      if (err.status === 422) showFieldErrors(err);
      else flash(notice, failure(t, err));
    }
  }

  async function end(o) {
    try {
      await api.del(`/api/lighting/overrides/${o.id}`);
      await Promise.all([loadOverrides(), drawPlan()]);
    } catch (err) {
      flash(notice, failure(t, err));
    }
  }

  async function loadOverrides() {
    const running = await api.get("/api/lighting/overrides?running=true");
    const heads = ["lighting.group", "lighting.level", "lighting.until", "lighting.why", "lighting.by"];
    overrideRows.replaceChildren(
      table(
        "override-rows",
        operate ? [...heads, "lighting.actions"] : heads,
        running.map((o) =>
          el(
            "tr",
            { testid: `override-${o.id}`, dataset: { group: o.group } },
            el("td", {}, o.group),
            el("td", {}, `${fmt.number(o.level, { maximumFractionDigits: 1 })} %`),
            el("td", {}, fmt.datetime(o.until, zone), el("div", { class: "muted" }, fmt.relative(o.until))),
            el("td", {}, o.reason || "–"),
            el("td", {}, o.by),
            operate ? el("td", {}, el("button", { type: "button", class: "secondary", testid: `end-${o.id}`, onclick: () => end(o) }, t("lighting.end"))) : null,
          ),
        ),
        t,
      ),
    );
  }

  // -- the document ----------------------------------------------------------------------------
  const lists = el("div", { testid: "lighting-lists" });
  const importText = el("textarea", { class: "code", testid: "import-text", rows: 18, spellcheck: "false", wrap: "off", "aria-label": t("lighting.import") });
  const importFile = el("input", { type: "file", accept: ".yaml,.yml,.json", testid: "import-file", "aria-label": t("lighting.import.file") });
  const importMerge = el("input", { type: "checkbox", testid: "import-merge" });
  const problems = el("ul", { class: "problems", testid: "import-problems" });
  const importStatus = el("p", { class: "muted", testid: "import-status" });

  const gutter = el("div", { class: "gutter", testid: "import-gutter", "aria-hidden": "true" });
  let marks = new Map(); // line -> its problems

  // line numbers beside the text, a line with a problem in red (as on the rules page)
  function numberLines() {
    const count = importText.value.split("\n").length;
    gutter.replaceChildren(
      ...Array.from({ length: count }, (_, i) => {
        const msgs = marks.get(i + 1);
        return el("div", { class: msgs ? "error" : "", testid: `import-line-${i + 1}`, dataset: msgs ? { error: "true" } : {}, title: msgs?.join("\n") }, String(i + 1));
      }),
    );
    gutter.scrollTop = importText.scrollTop;
  }
  importText.addEventListener("input", () => {
    marks = new Map();
    problems.replaceChildren();
    numberLines();
  });
  importText.addEventListener("scroll", () => {
    gutter.scrollTop = importText.scrollTop;
  });
  importFile.addEventListener("change", async () => {
    const file = importFile.files?.[0];
    if (file) importText.value = await file.text();
    marks = new Map();
    numberLines();
  });

  function goTo(line) {
    const lines = importText.value.split("\n");
    const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
    importText.focus();
    importText.setSelectionRange(start, start + (lines[line - 1]?.length ?? 0));
  }

  function showProblems(err) {
    const items = err.problem?.errors ?? [];
    marks = new Map();
    for (const p of items) if (p.line) marks.set(p.line, [...(marks.get(p.line) ?? []), p.msg]);
    numberLines();
    problems.replaceChildren(
      ...(items.length ? items : [{ msg: err.detail || err.message }]).map((p) =>
        el(
          "li",
          { testid: p.line ? `problem-line-${p.line}` : "problem", onclick: () => p.line && goTo(p.line) },
          p.line ? el("strong", {}, t("lighting.line", { n: p.line }), " ") : null,
          p.loc?.length ? el("code", {}, p.loc.join(".")) : null,
          " ",
          p.msg,
        ),
      ),
    );
    importStatus.textContent = t("lighting.invalid", { n: items.length || 1 });
  }

  async function importDocument() {
    const path = `/api/lighting/document?replace=${importMerge.checked ? "false" : "true"}`;
    try {
      await api.send("PUT", path, importText.value, YAML);
      problems.replaceChildren();
      marks = new Map();
      numberLines();
      importStatus.textContent = t("lighting.imported");
      await loadDocument();
      await drawPlan();
    } catch (err) {
      if (err.status === 422 || err.status === 400) showProblems(err);
      else flash(notice, failure(t, err));
    }
  }

  async function loadDocument() {
    const [programs, groupList, calendar] = await Promise.all(
      ["programs", "groups", "calendars"].map((part) => api.get(`/api/lighting/${part}`)),
    );
    groups = groupList;
    for (const pick of [groupPick, holdGroup]) {
      const kept = pick.value;
      pick.replaceChildren(...groups.map((g) => el("option", { value: g.name, selected: g.name === kept }, g.name)));
    }
    lists.replaceChildren(
      el("h3", {}, t("lighting.programs")),
      table("program-rows", ["lighting.name", "lighting.steps"], programs.map((p) => el("tr", { testid: `program-${p.name}` }, el("th", { scope: "row" }, p.name), el("td", {}, stepsText(p.steps)))), t),
      el("h3", {}, t("lighting.groups")),
      table("group-rows", ["lighting.name", "lighting.criteria"], groups.map((g) => el("tr", { testid: `group-${g.name}` }, el("th", { scope: "row" }, g.name), el("td", {}, criteriaText(t, g)))), t),
      el("h3", {}, t("lighting.calendar")),
      table(
        "calendar-rows",
        ["lighting.name", "lighting.program", "lighting.group", "lighting.rule", "lighting.priority"],
        calendar.map((c) =>
          el("tr", { testid: `entry-${c.name}` }, el("th", { scope: "row" }, c.name), el("td", {}, c.program), el("td", {}, c.group), el("td", {}, ruleText(c)), el("td", {}, fmt.number(c.priority ?? 0))),
        ),
        t,
      ),
    );
  }

  // -- the page --------------------------------------------------------------------------------
  const holdForm = operate
    ? el(
        "form",
        { class: "toolbar hold", testid: "hold-form", novalidate: true, onsubmit: hold },
        labelled("lighting.group", holdGroup, "group"),
        labelled("lighting.level.pct", holdLevel, "level"),
        labelled("lighting.minutes", holdMinutes, "duration"),
        labelled("lighting.why", holdReason, "reason"),
        el("button", { type: "submit", testid: "hold" }, t("lighting.hold")),
      )
    : null;
  const importCard = operate
    ? el(
        "div",
        { testid: "import" },
        el("h3", {}, t("lighting.import")),
        el("div", { class: "toolbar" }, importFile, el("label", {}, importMerge, " ", t("lighting.import.merge")), el("button", { type: "button", testid: "import-submit", onclick: importDocument }, t("lighting.import.submit"))),
        el("div", { class: "code-editor" }, gutter, importText),
        importStatus,
        problems,
      )
    : null;
  const energy = el("section", { class: "card", testid: "energy" });
  root.replaceChildren(
    el(
      "div",
      { class: "lighting-page", testid: "lighting-page" },
      el("header", { class: "page-head" }, el("h1", {}, t("lighting.title")), el("span", { class: "muted", testid: "lighting-zone" }, zone)),
      notice,
      el(
        "section",
        { class: "card", testid: "tonight" },
        el("h2", {}, t("lighting.tonight")),
        el("div", { class: "toolbar" }, el("label", {}, t("lighting.group"), " ", groupPick), el("label", {}, t("lighting.date"), " ", datePick)),
        planInfo,
        chartBox,
        reasons,
        el("form", { class: "toolbar", testid: "lamp-form", onsubmit: lampNow }, lampName, el("button", { type: "submit", class: "secondary", testid: "lamp-go" }, t("lighting.lamp.go"))),
        lampOut,
      ),
      el("section", { class: "card", testid: "override-card" }, el("h2", {}, t("lighting.overrides")), overrideRows, holdForm),
      el(
        "section",
        { class: "card", testid: "document" },
        el("h2", {}, t("lighting.document")),
        el("a", { href: "/api/lighting/document?format=yaml", download: "lighting.yaml", testid: "export" }, t("lighting.export")),
        lists,
        importCard,
      ),
      energy,
    ),
  );
  numberLines();
  await loadDocument();
  await Promise.all([drawPlan(), loadOverrides(), energySection(energy, ctx, zone)]);
  return () => {
    plot?.destroy();
  };
}

add({
  en: {
    "lighting.title": "Lighting",
    "lighting.tonight": "Tonight per group",
    "lighting.group": "Group",
    "lighting.date": "Evening of",
    "lighting.plan.lamps": "{n} lamp(s); the plan of {lamp} is drawn.",
    "lighting.plan.empty": "No step this night (no calendar entry matches, or no lamp).",
    "lighting.plan.no-lamps": "No lamp is in this group.",
    "lighting.time": "Time",
    "lighting.level": "Level",
    "lighting.level.pct": "Level (%)",
    "lighting.fade": "Fade",
    "lighting.reason": "Why",
    "lighting.reason.override": "override {name}",
    "lighting.reason.none": "no program",
    "lighting.lamp": "Lamp",
    "lighting.lamp.placeholder": "Lamp name",
    "lighting.lamp.go": "Level now",
    "lighting.lamp.now": "{lamp} should be at {level} % now: {reason}",
    "lighting.overrides": "Overrides",
    "lighting.until": "Until",
    "lighting.why": "Reason",
    "lighting.by": "By",
    "lighting.actions": "Actions",
    "lighting.end": "End now",
    "lighting.minutes": "Minutes",
    "lighting.hold": "Hold",
    "lighting.document": "Programs, groups and calendar",
    "lighting.export": "Download the document (YAML)",
    "lighting.programs": "Programs",
    "lighting.groups": "Groups",
    "lighting.calendar": "Calendar",
    "lighting.name": "Name",
    "lighting.steps": "Steps",
    "lighting.criteria": "Lamps",
    "lighting.program": "Program",
    "lighting.rule": "Nights",
    "lighting.priority": "Priority",
    "lighting.crit.districts": "districts",
    "lighting.crit.roads": "roads",
    "lighting.crit.tags": "tags",
    "lighting.crit.poles": "poles",
    "lighting.crit.lamps": "lamps",
    "lighting.crit.polygon": "inside a polygon",
    "lighting.crit.all": "every lamp",
    "lighting.import": "Import a document",
    "lighting.import.file": "Document file",
    "lighting.import.merge": "merge by name (else replace the whole)",
    "lighting.import.submit": "Import",
    "lighting.imported": "Imported; plans are recomputed.",
    "lighting.invalid": "{n} problem(s); nothing was saved.",
    "lighting.line": "line {n}:",
  },
  "zh-CN": {
    "lighting.title": "照明",
    "lighting.tonight": "今晚各分组计划",
    "lighting.group": "分组",
    "lighting.date": "日期（当晚）",
    "lighting.plan.lamps": "共 {n} 盏灯；图中为 {lamp} 的计划。",
    "lighting.plan.empty": "当晚没有步骤（无匹配的日历条目或没有灯）。",
    "lighting.plan.no-lamps": "此分组没有路灯。",
    "lighting.time": "时间",
    "lighting.level": "亮度",
    "lighting.level.pct": "亮度（%）",
    "lighting.fade": "渐变",
    "lighting.reason": "原因",
    "lighting.reason.override": "临时控制 {name}",
    "lighting.reason.none": "无方案",
    "lighting.lamp": "路灯",
    "lighting.lamp.placeholder": "路灯名称",
    "lighting.lamp.go": "当前亮度",
    "lighting.lamp.now": "{lamp} 现在应为 {level}%：{reason}",
    "lighting.overrides": "临时控制",
    "lighting.until": "截止",
    "lighting.why": "原因",
    "lighting.by": "操作人",
    "lighting.actions": "操作",
    "lighting.end": "立即结束",
    "lighting.minutes": "分钟",
    "lighting.hold": "保持",
    "lighting.document": "方案、分组与日历",
    "lighting.export": "下载文档（YAML）",
    "lighting.programs": "方案",
    "lighting.groups": "分组",
    "lighting.calendar": "日历",
    "lighting.name": "名称",
    "lighting.steps": "步骤",
    "lighting.criteria": "路灯",
    "lighting.program": "方案",
    "lighting.rule": "适用夜晚",
    "lighting.priority": "优先级",
    "lighting.crit.districts": "区",
    "lighting.crit.roads": "道路",
    "lighting.crit.tags": "标签",
    "lighting.crit.poles": "灯杆",
    "lighting.crit.lamps": "路灯",
    "lighting.crit.polygon": "多边形范围内",
    "lighting.crit.all": "全部路灯",
    "lighting.import": "导入文档",
    "lighting.import.file": "文档文件",
    "lighting.import.merge": "按名称合并（否则整体替换）",
    "lighting.import.submit": "导入",
    "lighting.imported": "已导入；计划已重新计算。",
    "lighting.invalid": "{n} 个问题，未保存。",
    "lighting.line": "第 {n} 行：",
  },
});
