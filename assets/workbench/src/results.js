// Results grid (#results) with 100-row pages, row count, elapsed time and the truncation badge.
import { api } from "./api.js";
import { $, el, fmtInt, fmtSeconds } from "./dom.js";
import { showError } from "./errors.js";

export const PAGE_SIZE = 100;
const NUMERIC = /INT|DECIMAL|NUMERIC|DOUBLE|FLOAT|REAL/i;

let current = null; // {id, columns, total, offset}
let caps = { row_cap: 1000, export_cap: 100000 };

export function setCaps(session) {
  caps = { row_cap: session.row_cap ?? 1000, export_cap: session.export_cap ?? 100000 };
}

export function initResults() {
  $("prev-page").addEventListener("click", () => current && loadPage(current.offset - PAGE_SIZE));
  $("next-page").addEventListener("click", () => current && loadPage(current.offset + PAGE_SIZE));
}

export function resetResults(note = "运行查询后在此显示结果 Results appear here after a run") {
  current = null;
  $("results").replaceChildren(el("p", { class: "empty" }, note));
  $("row-count").textContent = "";
  $("elapsed").textContent = "";
  $("truncated").hidden = true;
  $("page-info").textContent = "";
  $("page-info").title = "";
  $("prev-page").disabled = true;
  $("next-page").disabled = true;
}

export async function showResult(q) {
  current = { id: q.id, columns: q.columns || [], total: q.row_count || 0, offset: 0 };
  $("row-count").textContent = `${fmtInt(q.row_count)} 行 rows`;
  $("elapsed").textContent = fmtSeconds(q.elapsed_ms);
  const badge = $("truncated");
  badge.textContent = `已截断 truncated: showing the first ${fmtInt(caps.row_cap)} rows; `
    + `export for up to ${fmtInt(caps.export_cap)}`;
  badge.hidden = !q.truncated;
  await loadPage(0);
}

function cell(value, isNumeric) {
  if (value === null || value === undefined) return el("td", { class: "null" }, "NULL");
  const text = typeof value === "object" ? JSON.stringify(value) : String(value);
  const numeric = isNumeric || typeof value === "number";
  return el("td", { class: numeric ? "num" : null, title: text.length > 40 ? text : null }, text);
}

function renderTable(columns, rows, offset) {
  const numeric = columns.map((c) => NUMERIC.test(c.type || ""));
  const head = el("tr", {}, el("th", { class: "rownum", scope: "col" }, "#"),
    columns.map((c) => el("th", { scope: "col", title: c.type },
      c.name, el("span", { class: "coltype" }, c.type || ""))));
  const body = rows.map((r, i) => el("tr", {},
    el("td", { class: "rownum" }, String(offset + i + 1)),
    r.map((v, j) => cell(v, numeric[j]))));
  return el("table", { class: "grid" },
    el("caption", { class: "sr-only" }, "查询结果 Query results"),
    el("thead", {}, head), el("tbody", {}, body));
}

async function loadPage(offset) {
  const q = current;
  if (!q || offset < 0) return;
  $("prev-page").disabled = true;
  $("next-page").disabled = true;
  let page;
  try {
    page = await api.rows(q.id, offset, PAGE_SIZE);
  } catch (e) {
    if (e.status !== 401) showError(e);
    return;
  }
  if (current !== q) return; // a newer query replaced this one meanwhile
  q.offset = page.offset ?? offset;
  q.total = page.total ?? q.total;
  const rows = page.rows || [];
  $("results").replaceChildren(rows.length || q.columns.length
    ? renderTable(q.columns, rows, q.offset)
    : el("p", { class: "empty" }, "没有结果行 No rows"));
  const last = q.offset + rows.length;
  $("page-info").textContent = q.total
    ? `${fmtInt(q.offset + 1)}–${fmtInt(last)} / ${fmtInt(q.total)}` : "0 / 0";
  $("page-info").title = `第 ${fmtInt(q.offset + 1)}–${fmtInt(last)} 行，共 ${fmtInt(q.total)} 行 `
    + `Rows ${fmtInt(q.offset + 1)}–${fmtInt(last)} of ${fmtInt(q.total)}`;
  $("prev-page").disabled = q.offset <= 0;
  $("next-page").disabled = last >= q.total;
}
