// The login page: name and password to POST /api/session, then on to the page asked for.
import { api } from "./api.js";
import * as i18n from "./i18n.js";

let lang = i18n.chosen();

function render() {
  const t = i18n.translator(lang);
  document.documentElement.lang = lang;
  document.title = `${t("login.title")} · smartpole`;
  i18n.label(document, t);
}

/** Only a console address of this host (never //other.host or a full URL). */
function next() {
  const wanted = new URLSearchParams(location.search).get("next") || "/";
  return wanted.startsWith("/") && !wanted.startsWith("//") && !wanted.startsWith("/\\")
    ? wanted
    : "/";
}

function showError(text) {
  const error = document.getElementById("login-error");
  error.textContent = text;
  error.hidden = false;
}

async function submit(event) {
  event.preventDefault();
  const t = i18n.translator(lang);
  const form = event.target;
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    await api.post("/api/session", {
      user: form.user.value.trim(),
      password: form.password.value,
    });
    location.assign(next());
  } catch (err) {
    form.password.value = "";
    if (err.status === 401) showError(t("login.wrong"));
    else if (err.status === 429) showError(t("login.throttled", { seconds: err.retryAfter ?? 60 }));
    else showError(t("login.failed", { detail: err.message }));
    form.password.focus();
  } finally {
    button.disabled = false;
  }
}

i18n.languageSelect(document.getElementById("lang"), lang, (chosen) => {
  lang = chosen;
  render();
});
document.getElementById("login-form").addEventListener("submit", submit);
render();
document.getElementById("user").focus();
