// The console's shell: boot (who is logged in, else /login), the header, the router.
// Each page is static/js/pages/<name>.js exporting `async mount(root, ctx)` that returns an
// unmount function; ctx = {api, live, t, lang, user, navigate, fmt, params}.
import { bell } from "./alarm-bell.js";
import { api, setCsrf } from "./api.js";
import * as i18n from "./i18n.js";
import { connect } from "./live.js";

const ROUTES = [
  { pattern: /^\/$/, page: "map", nav: "map" },
  { pattern: /^\/poles\/(?<id>[^/]+)$/, page: "pole", nav: "map" },
  { pattern: /^\/alarms$/, page: "alarms", nav: "alarms" },
  { pattern: /^\/work-orders$/, page: "workorders", nav: "work-orders" },
  { pattern: /^\/overview$/, page: "overview", nav: "overview" },
  { pattern: /^\/rules$/, page: "rules", nav: "rules" },
  { pattern: /^\/lighting$/, page: "lighting", nav: "lighting" },
];
const NAV = [
  ["map", "/"],
  ["alarms", "/alarms"],
  ["work-orders", "/work-orders"],
  ["overview", "/overview"],
  ["rules", "/rules"],
  ["lighting", "/lighting"],
];

const state = { user: null, lang: i18n.chosen(), live: null, unmount: null, seq: 0 };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function toLogin() {
  const next = location.pathname + location.search;
  location.replace(`/login?next=${encodeURIComponent(next)}`);
}

function match(path) {
  for (const route of ROUTES) {
    const found = route.pattern.exec(path);
    if (found) return { ...route, params: { ...found.groups } };
  }
  return null;
}

function context(params) {
  const lang = state.lang;
  return {
    api,
    live: state.live,
    t: i18n.translator(lang),
    lang,
    user: state.user,
    navigate,
    fmt: i18n.formatter(lang),
    params,
  };
}

function header(active) {
  const t = i18n.translator(state.lang);
  const root = document.getElementById("header");
  const nav = el("nav", { class: "nav", "aria-label": "main" });
  for (const [key, href] of NAV) {
    const attrs = { href, "data-testid": `nav-${key}` };
    if (key === active) attrs["aria-current"] = "page";
    nav.append(el("a", attrs, t(`nav.${key}`)));
  }
  const lang = el("select", { class: "lang", "data-testid": "lang", "aria-label": "Language" });
  i18n.languageSelect(lang, state.lang, (chosen) => {
    state.lang = chosen;
    route();
  });
  const user = state.user;
  const menu = el(
    "details",
    { class: "user-menu", "data-testid": "user-menu" },
    el("summary", {}, user.name),
    el(
      "div",
      { class: "user-menu-body" },
      el("p", {}, `${user.tenant} · ${t(`user.role.${user.role}`)}`),
      el("button", { type: "button", "data-testid": "logout", onclick: logout }, t("user.logout")),
    ),
  );
  const offline = el("span", { class: "live-state", "data-testid": "live-state", hidden: "" });
  offline.textContent = t("live.offline");
  root.replaceChildren(
    el("a", { class: "brand", href: "/" }, el("img", { src: "/static/img/pole.svg", alt: "" }), "smartpole"),
    nav,
    offline,
    el("div", { class: "header-end" }, bell.element, lang, menu),
  );
}

async function logout() {
  try {
    await api.del("/api/session");
  } finally {
    state.live?.close();
    location.assign("/login");
  }
}

function message(root, title, detail, testid) {
  root.replaceChildren(
    el("section", { class: "message", "data-testid": testid }, el("h1", {}, title), el("p", {}, detail)),
  );
}

async function load(name) {
  try {
    return await import(`./pages/${name}.js`);
  } catch (err) {
    console.warn(`page ${name} not available`, err);
    return null;
  }
}

/** Show the page of the current address (after navigate(), a back/forward or a language switch). */
async function route() {
  const seq = ++state.seq;
  const found = match(location.pathname);
  header(found?.nav);
  document.documentElement.lang = state.lang;
  if (state.unmount) {
    try {
      state.unmount();
    } catch (err) {
      console.error(err);
    }
    state.unmount = null;
  }
  const root = document.getElementById("page");
  root.replaceChildren();
  root.dataset.page = found ? found.page : "not-found";
  const t = i18n.translator(state.lang);
  if (!found) {
    message(root, t("page.not-found"), t("page.not-found.detail"), "not-found");
    return;
  }
  const module = await load(found.page);
  if (seq !== state.seq) return;
  if (!module) {
    message(root, t(`nav.${found.nav}`), t("page.soon"), "placeholder");
    return;
  }
  try {
    const unmount = await module.mount(root, context(found.params));
    if (seq !== state.seq) unmount?.();
    else state.unmount = unmount ?? null;
  } catch (err) {
    if (seq !== state.seq) return;
    if (err.status === 401) return toLogin();
    if (err.status === 404 || err.status === 403) {
      message(root, t("page.not-found"), t("page.not-found.detail"), "not-found");
    } else {
      console.error(err);
      message(root, t("page.error"), err.message, "page-error");
    }
  }
}

/** Go to a console address without reloading (History API). */
export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  route();
}

function interceptLinks(event) {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = event.target.closest("a[href]");
  if (!link || link.target || link.hasAttribute("download")) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || !match(url.pathname)) return;
  event.preventDefault();
  if (url.pathname + url.search !== location.pathname + location.search) {
    navigate(url.pathname + url.search);
  }
}

async function boot() {
  let session;
  try {
    session = await api.get("/api/session");
  } catch (err) {
    if (err.status === 401) return toLogin();
    throw err;
  }
  state.user = session.user;
  setCsrf(session.csrf);
  state.live = connect({ onRefused: toLogin });
  state.live.on("close", () => {
    document.querySelector("[data-testid=live-state]")?.removeAttribute("hidden");
  });
  state.live.on("open", () => {
    document.querySelector("[data-testid=live-state]")?.setAttribute("hidden", "");
  });
  bell.start(state.live);
  document.addEventListener("click", interceptLinks);
  window.addEventListener("popstate", route);
  await route();
}

boot();
