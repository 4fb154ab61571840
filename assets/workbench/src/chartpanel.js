// Chart controls (#chart-type, #chart-x, #chart-y, #chart-series) and the rows behind them:
// up to the row cap (1,000) of the current result are fetched once per query.
import { api } from "./api.js";
import { $, el, fmtInt } from "./dom.js";
import { renderChart } from "./chart.js";

const NUMERIC = /INT|DECIMAL|NUMERIC|DOUBLE|FLOAT|REAL/i;
const CHART_ROWS = 1000;
let result = null; // {id, columns, rowCount, rows: Promise|null}
let want = null; // column choices to apply to the next result: {x, y, series}

export function initChart() {
  for (const id of ["chart-type", "chart-x", "chart-y", "chart-series"]) {
    $(id).addEventListener("change", draw);
  }
  resetChart();
}

export function getChartSettings() {
  const type = $("chart-type").value;
  if (type === "none" || !$("chart-x").value || !$("chart-y").value) return null;
  return { type, x: $("chart-x").value, y: $("chart-y").value, series: $("chart-series").value || null };
}

// Preset from a saved query; applied as soon as a result has the columns.
export function presetChart(chart) {
  $("chart-type").value = chart && ["bar", "line"].includes(chart.type) ? chart.type : "none";
  want = chart ? { x: chart.x, y: chart.y, series: chart.series || "" } : { x: "", y: "", series: "" };
}

function fill(select, columns, want, { optional = false } = {}) {
  const options = columns.map((c) => el("option", { value: c.name }, `${c.name} (${c.type || "?"})`));
  if (optional) options.unshift(el("option", { value: "" }, "— 无 none —"));
  select.replaceChildren(...options);
  if (columns.some((c) => c.name === want)) select.value = want;
  select.disabled = !columns.length;
}

export function resetChart() {
  result = null;
  $("chart").replaceChildren();
  $("chart").hidden = true;
  // keep the current choice for the next result unless a saved query preset one
  if (!want && $("chart-x").options.length) {
    want = { x: $("chart-x").value, y: $("chart-y").value, series: $("chart-series").value };
  }
  for (const id of ["chart-x", "chart-y", "chart-series"]) {
    $(id).replaceChildren();
    $(id).disabled = true;
  }
}

export function setChartResult(q) {
  const columns = q.columns || [];
  result = { id: q.id, columns, rowCount: q.row_count || 0, rows: null };
  const numeric = columns.filter((c) => NUMERIC.test(c.type || ""));
  const firstText = columns.find((c) => !NUMERIC.test(c.type || ""));
  const has = (name) => name && columns.some((c) => c.name === name);
  const w = want || {};
  want = null;
  const x = has(w.x) ? w.x : (firstText || columns[0] || {}).name;
  const measure = numeric.filter((c) => c.name !== x).pop(); // measures tend to come last
  const y = has(w.y) ? w.y : (measure || columns[1] || columns[0] || {}).name;
  fill($("chart-x"), columns, x);
  fill($("chart-y"), columns, y);
  fill($("chart-series"), columns, w.series, { optional: true });
  return draw();
}

async function chartRows(r) {
  const rows = [];
  const want = Math.min(r.rowCount, CHART_ROWS);
  while (rows.length < want) {
    const page = await api.rows(r.id, rows.length, want - rows.length);
    const got = page.rows || [];
    rows.push(...got);
    if (!got.length || (page.total != null && rows.length >= page.total)) break;
  }
  return rows;
}

async function draw() {
  const box = $("chart");
  const spec = getChartSettings();
  if (!result || !spec) { box.hidden = true; box.replaceChildren(); return; }
  box.hidden = false;
  const r = result;
  if (!r.rows) {
    box.replaceChildren(el("p", { class: "empty" }, "加载图表数据… Loading chart data"));
    r.rows = chartRows(r).catch((e) => { r.rows = null; throw e; });
  }
  let rows;
  try { rows = await r.rows; } catch (e) {
    box.replaceChildren(el("p", { class: "empty" }, `图表数据加载失败 Chart data failed: ${e.message}`));
    return;
  }
  const now = getChartSettings();
  if (result !== r || !now) return;
  renderChart(box, { ...now, columns: r.columns, rows });
  const note = box.querySelector(".chart-note");
  if (r.rowCount > rows.length || rows.length >= CHART_ROWS) {
    note.textContent = [`基于前 ${fmtInt(rows.length)} 行 from the first ${fmtInt(rows.length)} rows`,
      note.textContent].filter(Boolean).join(" · ");
  }
}
