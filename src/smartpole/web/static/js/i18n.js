// Labels in zh-CN and English. Each module registers its own strings with add(), so no two
// pages share one strings file; t(key) looks a key up in the chosen language, then English.
const STORAGE_KEY = "smartpole.lang";
export const LANGS = ["zh-CN", "en"];
export const LANG_NAMES = { "zh-CN": "中文", en: "English" };
const tables = { en: {}, "zh-CN": {} };

/** Register strings: add({en: {key: "..."}, "zh-CN": {key: "..."}}). */
export function add(table) {
  for (const [lang, strings] of Object.entries(table)) {
    tables[lang] = Object.assign(tables[lang] ?? {}, strings);
  }
}

/** The language kept in localStorage, else the browser's (zh* -> zh-CN, anything else -> en). */
export function chosen() {
  const kept = localStorage.getItem(STORAGE_KEY);
  if (LANGS.includes(kept)) return kept;
  const wanted = navigator.languages?.length ? navigator.languages : [navigator.language];
  for (const lang of wanted) {
    if ((lang || "").toLowerCase().startsWith("zh")) return "zh-CN";
    if ((lang || "").toLowerCase().startsWith("en")) return "en";
  }
  return "en";
}

/** Keep a language for the next pages and visits. */
export function choose(lang) {
  if (!LANGS.includes(lang)) throw new Error(`unknown language ${lang}`);
  localStorage.setItem(STORAGE_KEY, lang);
  document.documentElement.lang = lang;
}

/** A translator for one language: t("key", {name: value}) fills {name} placeholders. */
export function translator(lang) {
  return (key, vars) => {
    let text = tables[lang]?.[key] ?? tables.en[key] ?? key;
    if (vars) {
      for (const [name, value] of Object.entries(vars)) text = text.replaceAll(`{${name}}`, value);
    }
    return text;
  };
}

/** Numbers and dates in one locale (Intl). */
export function formatter(lang) {
  const numbers = new Map();
  const dates = new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "medium" });
  const zoned = new Map(); // IANA zone -> its formatter
  const relative = new Intl.RelativeTimeFormat(lang, { numeric: "auto" });
  const STEPS = [
    [60, "second"],
    [60, "minute"],
    [24, "hour"],
    [7, "day"],
    [4.345, "week"],
    [12, "month"],
    [Infinity, "year"],
  ];
  return {
    number(value, options = {}) {
      if (value === null || value === undefined || Number.isNaN(value)) return "–";
      const key = JSON.stringify(options);
      if (!numbers.has(key)) numbers.set(key, new Intl.NumberFormat(lang, options));
      return numbers.get(key).format(value);
    },
    /** A time in the browser's zone, or in ``timeZone`` (an IANA name) when given. */
    datetime(value, timeZone) {
      if (value === null || value === undefined) return "–";
      if (!timeZone) return dates.format(new Date(value));
      if (!zoned.has(timeZone)) {
        // dateStyle/timeStyle cannot be combined with timeZoneName: the zone is named after it
        zoned.set(timeZone, new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short", timeZone }));
      }
      return `${zoned.get(timeZone).format(new Date(value))} (${timeZone})`;
    },
    relative(value, now = Date.now()) {
      if (value === null || value === undefined) return "–";
      let amount = (new Date(value).getTime() - now) / 1000;
      for (const [size, unit] of STEPS) {
        if (Math.abs(amount) < size) return relative.format(Math.round(amount), unit);
        amount /= size;
      }
      return relative.format(Math.round(amount), "year");
    },
  };
}

/** Fill every [data-i18n] element of root with its label. */
export function label(root, t) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}

/** Fill a <select> with the languages; choosing one keeps it and calls onChange(lang). */
export function languageSelect(select, lang, onChange) {
  select.replaceChildren(
    ...LANGS.map((code) => {
      const option = document.createElement("option");
      option.value = code;
      option.textContent = LANG_NAMES[code];
      option.selected = code === lang;
      return option;
    }),
  );
  select.onchange = () => {
    choose(select.value);
    onChange(select.value);
  };
}

add({
  en: {
    "nav.map": "Map",
    "nav.alarms": "Alarms",
    "nav.work-orders": "Work orders",
    "nav.overview": "Overview",
    "nav.rules": "Rules",
    "nav.lighting": "Lighting",
    "user.logout": "Log out",
    "user.role.viewer": "viewer",
    "user.role.operator": "operator",
    "user.role.admin": "admin",
    "page.soon": "This page is coming soon.",
    "page.not-found": "Not found",
    "page.not-found.detail": "There is nothing here you may see.",
    "page.error": "Something went wrong",
    "page.retry": "Try again",
    "live.offline": "Live updates interrupted, reconnecting…",
    "login.title": "Log in",
    "login.user": "User",
    "login.password": "Password",
    "login.submit": "Log in",
    "login.wrong": "Wrong user name or password.",
    "login.throttled": "Too many attempts. Try again in {seconds} s.",
    "login.failed": "Cannot log in: {detail}",
  },
  "zh-CN": {
    "nav.map": "地图",
    "nav.alarms": "告警",
    "nav.work-orders": "工单",
    "nav.overview": "总览",
    "nav.rules": "规则",
    "nav.lighting": "照明",
    "user.logout": "退出登录",
    "user.role.viewer": "查看者",
    "user.role.operator": "操作员",
    "user.role.admin": "管理员",
    "page.soon": "此页面即将推出。",
    "page.not-found": "未找到",
    "page.not-found.detail": "这里没有您可以查看的内容。",
    "page.error": "出错了",
    "page.retry": "重试",
    "live.offline": "实时更新已中断，正在重新连接…",
    "login.title": "登录",
    "login.user": "用户名",
    "login.password": "密码",
    "login.submit": "登录",
    "login.wrong": "用户名或密码错误。",
    "login.throttled": "尝试次数过多，请在 {seconds} 秒后重试。",
    "login.failed": "无法登录：{detail}",
  },
});
