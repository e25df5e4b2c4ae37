// The REST API from the console: same-origin cookie, the CSRF token on every write, and
// problem+json answers turned into an Error with .status, .title and .detail.
let csrfToken = null;

/** The token POST/GET /api/session returned; sent as X-CSRF-Token on writes. */
export function setCsrf(token) {
  csrfToken = token;
}

/** An API refusal: the problem+json body's fields on an Error. */
export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.title = problem.title || "";
    this.detail = problem.detail || "";
    this.problem = problem;
    this.retryAfter = retryAfter;
  }
}

async function request(method, path, body, media = "application/json") {
  const headers = { Accept: `${media}, application/problem+json` };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = media;
    init.body = media === "application/json" ? JSON.stringify(body) : body;
  }
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const problem = typeof data === "object" && data ? data : { detail: String(data) };
    const wait = Number(response.headers.get("Retry-After"));
    throw new ApiError(response.status, problem, Number.isFinite(wait) ? wait : null);
  }
  return data;
}

export const api = {
  get: (path) => request("GET", path),
  post: (path, body) => request("POST", path, body),
  put: (path, body) => request("PUT", path, body),
  patch: (path, body) => request("PATCH", path, body),
  del: (path, body) => request("DELETE", path, body),
  /** Another media type (YAML rules): send(method, path, text, "application/yaml") -> text. */
  send: (method, path, text, media) => request(method, path, text, media),
};
