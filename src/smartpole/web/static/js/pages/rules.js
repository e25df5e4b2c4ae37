// The rules page (/rules): the tenant's rules, enable/disable, and a YAML editor (a textarea
// with line numbers) that shows each problem the API reports at its line.
import { add } from "../i18n.js";
import { el, failure, flash, mayOperate, stylesheet } from "./ui.js";

const TEMPLATE = `name: pm25-high
description: PM2.5 above 75 µg/m³ for ten minutes
scope:
  kinds: [air]
condition:
  key: pm25
  op: ">"
  value: 75
  for: 10m
actions:
  - alarm: {type: air_quality, severity: minor}
`;

const YAML = "application/yaml";

export async function mount(root, ctx) {
  const { api, t, fmt } = ctx;
  await stylesheet();
  const operate = mayOperate(ctx.user);
  const notice = el("p", { class: "notice", testid: "rules-notice", hidden: true });
  const list = el("tbody", { testid: "rule-rows" });
  const gutter = el("div", { class: "gutter", testid: "gutter", "aria-hidden": "true" });
  const editor = el("textarea", { class: "code", testid: "rule-editor", spellcheck: "false", rows: 18, wrap: "off", readonly: !operate, "aria-label": t("rules.editor") });
  const problems = el("ul", { class: "problems", testid: "rule-problems" });
  const status = el("p", { class: "muted", testid: "rule-status" });
  let marks = new Map(); // line -> messages

  function numberLines() {
    const count = editor.value.split("\n").length;
    gutter.replaceChildren(
      ...Array.from({ length: count }, (_, i) => {
        const n = i + 1;
        const msgs = marks.get(n);
        return el("div", { class: msgs ? "error" : "", testid: `line-${n}`, dataset: msgs ? { error: "true" } : {}, title: msgs?.join("\n") }, String(n));
      }),
    );
    gutter.scrollTop = editor.scrollTop;
  }
  editor.addEventListener("input", () => {
    marks = new Map();
    problems.replaceChildren();
    numberLines();
  });
  editor.addEventListener("scroll", () => {
    gutter.scrollTop = editor.scrollTop;
  });

  function goTo(line) {
    const lines = editor.value.split("\n");
    const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
    editor.focus();
    editor.setSelectionRange(start, start + (lines[line - 1]?.length ?? 0));
  }

  /** Show a refusal: each problem at its line, or the detail when it has none. */
  function showProblems(err) {
    marks = new Map();
    const items = err.problem?.errors ?? [];
    for (const p of items) {
      if (p.line) marks.set(p.line, [...(marks.get(p.line) ?? []), p.msg]);
    }
    problems.replaceChildren(
      ...(items.length ? items : [{ msg: err.detail || err.message }]).map((p) =>
        el(
          "li",
          { testid: p.line ? `problem-line-${p.line}` : "problem", onclick: () => p.line && goTo(p.line) },
          p.line ? el("strong", {}, t("rules.line", { n: p.line }), " ") : null,
          p.loc?.length ? el("code", {}, p.loc.join(".")) : null,
          " ",
          p.msg,
        ),
      ),
    );
    status.textContent = t("rules.invalid", { n: items.length || 1 });
    numberLines();
  }

  function clearProblems(message) {
    marks = new Map();
    problems.replaceChildren();
    status.textContent = message;
    numberLines();
  }

  async function check() {
    try {
      const got = await api.send("POST", "/api/rules/check", editor.value, YAML);
      clearProblems(t("rules.valid", { keys: got.keys.join(", ") || "–" }));
    } catch (err) {
      if (err.status === 422) showProblems(err);
      else flash(notice, failure(t, err));
    }
  }

  async function save() {
    try {
      const rule = await api.send("POST", "/api/rules", editor.value, YAML);
      clearProblems(t("rules.saved", { name: rule.name }));
      await load();
    } catch (err) {
      if (err.status === 422) showProblems(err);
      else flash(notice, failure(t, err));
    }
  }

  async function edit(rule) {
    try {
      editor.value = await api.send("GET", `/api/rules/${rule.id}`, undefined, YAML);
      clearProblems(t("rules.editing", { name: rule.name }));
    } catch (err) {
      flash(notice, failure(t, err));
    }
  }

  async function toggle(rule) {
    try {
      await api.post("/api/rules", { ...rule.body, enabled: !rule.enabled });
      await load();
    } catch (err) {
      flash(notice, failure(t, err));
    }
  }

  async function remove(rule) {
    if (!confirm(t("rules.confirm-delete", { name: rule.name }))) return;
    try {
      await api.del(`/api/rules/${rule.id}`);
      await load();
    } catch (err) {
      flash(notice, failure(t, err));
    }
  }

  function row(rule) {
    const enabled = operate
      ? el("input", { type: "checkbox", testid: `enabled-${rule.id}`, checked: rule.enabled, "aria-label": t("rules.enabled"), onchange: () => toggle(rule) })
      : el("span", { testid: `enabled-${rule.id}` }, t(rule.enabled ? "rules.on" : "rules.off"));
    return el(
      "tr",
      { testid: `rule-${rule.name}`, dataset: { enabled: String(rule.enabled) } },
      el("td", {}, enabled),
      el("th", { scope: "row" }, rule.name, rule.body.description ? el("div", { class: "muted" }, rule.body.description) : null),
      el("td", { class: "muted" }, fmt.datetime(rule.updated)),
      el(
        "td",
        {},
        el("button", { type: "button", class: "secondary", testid: `edit-${rule.id}`, onclick: () => edit(rule) }, t(operate ? "rules.edit" : "rules.view")),
        operate ? el("button", { type: "button", class: "secondary", testid: `delete-${rule.id}`, onclick: () => remove(rule) }, t("rules.delete")) : null,
      ),
    );
  }

  async function load() {
    const rules = await api.get("/api/rules");
    list.replaceChildren(...(rules.length ? rules.map(row) : [el("tr", {}, el("td", { colspan: 4, class: "muted" }, t("ui.none")))]));
  }

  editor.value = operate ? TEMPLATE : "";
  const buttons = operate
    ? el(
        "div",
        { class: "toolbar" },
        el("button", { type: "button", class: "secondary", testid: "rule-new", onclick: () => { editor.value = TEMPLATE; clearProblems(""); } }, t("rules.new")),
        el("button", { type: "button", class: "secondary", testid: "rule-check", onclick: check }, t("rules.check")),
        el("button", { type: "button", testid: "rule-save", onclick: save }, t("rules.save")),
      )
    : null;
  root.replaceChildren(
    el(
      "div",
      { class: "rules-page", testid: "rules-page" },
      el("header", { class: "page-head" }, el("h1", {}, t("rules.title"))),
      notice,
      el(
        "table",
        { class: "list" },
        el("thead", {}, el("tr", {}, ["rules.enabled", "rules.name", "rules.updated", "rules.actions"].map((k) => el("th", { scope: "col" }, t(k))))),
        list,
      ),
      el("section", { class: "card" }, el("h2", {}, t("rules.editor")), buttons, el("div", { class: "code-editor" }, gutter, editor), status, problems),
    ),
  );
  numberLines();
  await load();
  return () => {};
}

add({
  en: {
    "rules.title": "Rules",
    "rules.enabled": "On",
    "rules.on": "on",
    "rules.off": "off",
    "rules.name": "Name",
    "rules.updated": "Changed",
    "rules.actions": "Actions",
    "rules.edit": "Edit",
    "rules.view": "View",
    "rules.delete": "Delete",
    "rules.confirm-delete": "Delete the rule {name}? Its alarms stay.",
    "rules.editor": "Rule (YAML)",
    "rules.new": "New rule",
    "rules.check": "Check",
    "rules.save": "Save",
    "rules.line": "line {n}:",
    "rules.invalid": "{n} problem(s); nothing was saved.",
    "rules.valid": "Valid; it reads: {keys}",
    "rules.saved": "Saved {name}; it takes effect now.",
    "rules.editing": "Editing {name}: saving replaces it.",
  },
  "zh-CN": {
    "rules.title": "规则",
    "rules.enabled": "启用",
    "rules.on": "启用",
    "rules.off": "停用",
    "rules.name": "名称",
    "rules.updated": "修改时间",
    "rules.actions": "操作",
    "rules.edit": "编辑",
    "rules.view": "查看",
    "rules.delete": "删除",
    "rules.confirm-delete": "删除规则 {name}？其告警保留。",
    "rules.editor": "规则（YAML）",
    "rules.new": "新建规则",
    "rules.check": "检查",
    "rules.save": "保存",
    "rules.line": "第 {n} 行：",
    "rules.invalid": "{n} 个问题，未保存。",
    "rules.valid": "规则有效；读取：{keys}",
    "rules.saved": "已保存 {name}，立即生效。",
    "rules.editing": "正在编辑 {name}：保存将替换原规则。",
  },
});
