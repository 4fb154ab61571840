// Login form, session restore (whoami), the header with analyst/department/purpose/tier, logout.
import { api, token } from "./api.js";
import { $, el } from "./dom.js";
import { showError, clearError } from "./errors.js";

const PURPOSES_KEY = "huiliu.workbench.purposes";
let session = null;
let hooks = { enter: () => {}, leave: () => {} };

export const currentSession = () => session;

function rememberPurposes(purposes) {
  if (!Array.isArray(purposes) || !purposes.length) return;
  localStorage.setItem(PURPOSES_KEY, JSON.stringify(purposes));
  fillPurposeList(purposes);
}

function fillPurposeList(purposes) {
  $("purpose-options").replaceChildren(...purposes.map((p) => el("option", { value: p })));
}

function showHeader(s) {
  $("analyst").textContent = s.analyst || "";
  $("department").textContent = s.department_name
    ? `${s.department_name} (${s.department})` : s.department || "";
  $("current-purpose").textContent = s.purpose || "";
  $("tier").textContent = s.tier || "";
  $("tier").title = `数据层 Data tier: ${s.tier || ""}`;
}

function enter(s) {
  session = s;
  rememberPurposes(s.purposes);
  showHeader(s);
  $("login-view").hidden = true;
  $("session-bar").hidden = false;
  $("workbench").hidden = false;
  hooks.enter(s);
}

// Back to the login form: after logout, an expired token or a failed restore.
export function leave(message) {
  const wasIn = session !== null;
  session = null;
  token.clear();
  $("workbench").hidden = true;
  $("session-bar").hidden = true;
  $("login-view").hidden = false;
  $("credential").value = "";
  if (wasIn) hooks.leave();
  if (message) showError(message); else clearError();
  $("credential").focus();
}

async function login(ev) {
  ev.preventDefault();
  const credential = $("credential").value;
  const purpose = $("purpose").value.trim() || "ANALYTICS";
  if (!credential) { showError("请输入凭证 Please enter your credential"); return; }
  clearError();
  $("login").disabled = true;
  try {
    const s = await api.login(credential, purpose);
    token.set(s.token);
    const { token: _t, ...rest } = s;
    enter(rest);
  } catch (e) {
    const allowed = e.body && Array.isArray(e.body.purposes) ? e.body.purposes : null;
    if (allowed) rememberPurposes(allowed);
    const missing = allowed && !allowed.every((p) => e.message.includes(p));
    showError(e, missing ? `允许的用途 Allowed purposes: ${allowed.join(", ")}` : "");
  } finally {
    $("login").disabled = false;
  }
}

async function logout() {
  $("logout").disabled = true;
  try { await api.logout(); } catch { /* the session ends here either way */ }
  $("logout").disabled = false;
  leave();
}

export async function initSession(h) {
  hooks = h;
  try { fillPurposeList(JSON.parse(localStorage.getItem(PURPOSES_KEY)) || []); } catch { /* ignore */ }
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  if (!token.get()) { leave(); return; }
  try {
    enter(await api.whoami());
  } catch (e) {
    if (e.status !== 401) leave(e.message);
  }
}
