// HTTP client for the hub's /api: bearer token, JSON bodies, typed errors, 401 hook.

const TOKEN_KEY = "huiliu.workbench.token";

// The bundle is served at <root>workbench/static/workbench.js; the API lives at <root>api/.
const scriptSrc = document.currentScript && document.currentScript.src;
const ROOT = scriptSrc ? new URL("../../", scriptSrc) : new URL("./", window.location.href);

export const apiUrl = (path) => new URL(`api/${path}`, ROOT).toString();

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.error) || "http_error";
    this.line = body && body.line != null ? body.line : null;
    this.column = body && body.column != null ? body.column : null;
    this.body = body || {};
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (t) => sessionStorage.setItem(TOKEN_KEY, t),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

let unauthorized = () => {};
export const onUnauthorized = (fn) => { unauthorized = fn; };

async function send(method, path, { body, auth = true } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth && token.get()) headers.Authorization = `Bearer ${token.get()}`;
  let res;
  try {
    res = await fetch(apiUrl(path), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, { error: "network", message: `无法连接服务器 Cannot reach the server (${e.message})` });
  }
  if (res.ok) return res;
  let payload = null;
  try { payload = await res.json(); } catch { /* not JSON */ }
  const err = new ApiError(res.status, payload || { message: `HTTP ${res.status} ${res.statusText}` });
  if (res.status === 401 && auth) unauthorized(err);
  throw err;
}

async function json(method, path, opts) {
  const res = await send(method, path, opts);
  return res.status === 204 ? null : res.json();
}

export const api = {
  login: (credential, purpose) =>
    json("POST", "login", { body: { credential, purpose }, auth: false }),
  logout: () => json("POST", "logout"),
  whoami: () => json("GET", "whoami"),
  schema: () => json("GET", "schema"),
  // `wait` (seconds): the service answers as soon as the query ends, or after that long
  submit: (sql, wait) => json("POST", "queries", { body: { sql, wait } }),
  query: (id, wait) => json("GET", `queries/${encodeURIComponent(id)}?wait=${wait}`),
  rows: (id, offset, limit) =>
    json("GET", `queries/${encodeURIComponent(id)}/rows?offset=${offset}&limit=${limit}`),
  cancel: (id) => json("POST", `queries/${encodeURIComponent(id)}/cancel`),
  exportFile: (id, format) =>
    send("GET", `queries/${encodeURIComponent(id)}/export?format=${encodeURIComponent(format)}`),
  history: () => json("GET", "history"),
  saved: () => json("GET", "saved"),
  save: (item) => json("POST", "saved", { body: item }),
  deleteSaved: (id) => json("DELETE", `saved/${encodeURIComponent(id)}`),
};
