// Query lifecycle: submit, then ask for its state with a wait (the service answers the moment the
// query ends, or after WAIT_S to refresh the position and elapsed time), show #status, cancel; on
// done hand the result to the grid, the chart and the export buttons.
import { api } from "./api.js";
import { $, el, fmtSeconds, STATE_LABELS } from "./dom.js";
import { showError, clearError } from "./errors.js";
import { textToRun, markError, clearMarks } from "./editor.js";
import { resetResults, showResult } from "./results.js";
import { resetChart, setChartResult } from "./chartpanel.js";
import { setExportable } from "./export.js";
import { loadHistory } from "./history.js";

const WAIT_S = 2; // each state request waits this long at most for the query to end
const SUBMIT_WAIT_S = 1; // a quick query is answered by its submission
const RETRY_MS = 500; // after a failed state request
const ACTIVE = new Set(["queued", "running"]);
let active = null; // {id, timer, failures}

export const isActive = () => active !== null;

function setStatus(state, detail = "") {
  const box = $("status");
  box.dataset.state = state || "";
  const label = el("span", { class: "status-label" },
    state === "submitting" ? "提交中 submitting" : STATE_LABELS[state] || "",
    detail ? el("span", { class: "status-detail" }, detail) : "");
  const parts = [label];
  if (state === "running" || state === "submitting") {
    parts.unshift(el("span", { class: "spinner", "aria-hidden": "true" }));
  }
  box.replaceChildren(...parts);
}

function setBusy(busy) {
  $("run").disabled = busy;
  $("cancel").disabled = !busy;
}

function show(q) {
  if (q.state === "queued") {
    setStatus("queued", q.position != null ? `, position ${q.position}` : "");
  } else if (q.state === "running") {
    setStatus("running", ` · ${fmtSeconds(q.elapsed_ms || 0)}`);
  } else {
    setStatus(q.state, q.elapsed_ms != null ? ` · ${fmtSeconds(q.elapsed_ms)}` : "");
  }
}

async function finish(q) {
  if (active && active.timer) clearTimeout(active.timer);
  active = null;
  setBusy(false);
  show(q);
  if (q.state === "done") {
    setExportable(q.id);
    await Promise.all([showResult(q), setChartResult(q)]);
  } else if (q.state === "failed" || q.state === "timeout") {
    const err = q.error || { message: q.state === "timeout"
      ? "查询超时 The query ran past its time limit" : "查询失败 The query failed" };
    showError(err);
    markError(err.message, err.line, err.column);
    resetResults();
  } else if (q.state === "cancelled") {
    resetResults("查询已取消 Query cancelled");
  }
  loadHistory();
}

async function poll(run) {
  if (active !== run) return;
  let q;
  try {
    q = await api.query(run.id, WAIT_S);
    run.failures = 0;
  } catch (e) {
    if (active !== run) return;
    if (e.status === 401) { stopQuery(); return; }
    run.failures += 1;
    if (run.failures >= 5 || (e.status && e.status < 500)) {
      active = null;
      setBusy(false);
      setStatus("failed");
      showError(e);
      return;
    }
  }
  if (active !== run) return;
  if (q && !ACTIVE.has(q.state)) { await finish(q); return; }
  if (q) show(q);
  run.timer = setTimeout(() => poll(run), q ? 0 : RETRY_MS);
}

export async function runQuery() {
  if (active) return;
  const sql = textToRun();
  clearError();
  clearMarks();
  if (!sql.trim()) { showError("请输入 SQL Please enter a query"); return; }
  resetResults();
  resetChart();
  setExportable(null);
  const run = { id: null, timer: null, failures: 0, cancelWanted: false };
  active = run;
  setBusy(true);
  setStatus("submitting");
  let q;
  try {
    q = await api.submit(sql, SUBMIT_WAIT_S);
  } catch (e) {
    if (active === run) { active = null; setBusy(false); setStatus(""); }
    if (e.status !== 401) { showError(e); markError(e.message, e.line, e.column); }
    return;
  }
  if (active !== run) return; // logged out meanwhile
  run.id = q.id;
  if (!ACTIVE.has(q.state)) { await finish(q); return; }
  if (run.cancelWanted) { await cancelQuery(); return; } // cancelled while it was submitted
  show(q);
  loadHistory();
  run.timer = setTimeout(() => poll(run), 0);
}

export async function cancelQuery() {
  const run = active;
  if (!run) return;
  if (!run.id) { run.cancelWanted = true; $("cancel").disabled = true; return; }
  $("cancel").disabled = true;
  try {
    const res = await api.cancel(run.id);
    if (active === run && res && res.state === "cancelled") {
      await finish({ id: run.id, state: "cancelled" });
    }
  } catch (e) {
    if (e.status !== 401) showError(e);
    if (active === run) $("cancel").disabled = false;
  }
}

// Forget the running query (logout, expired session); the server keeps its own state.
export function stopQuery() {
  if (active && active.timer) clearTimeout(active.timer);
  active = null;
  setBusy(false);
  setStatus("");
  setExportable(null);
}
