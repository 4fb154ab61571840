// Entry point: wires the modules together.
import { api, onUnauthorized } from "./api.js";
import { $ } from "./dom.js";
import { showError, initErrorBox } from "./errors.js";
import { createEditor, setCompletionSchema, insertAtCursor, setDoc, getDoc } from "./editor.js";
import { initSchema, renderSchema } from "./schema.js";
import { completionNamespace, columnCompletionSource } from "./completion.js";
import { initResults, resetResults, setCaps } from "./results.js";
import { initChart, resetChart, presetChart, getChartSettings } from "./chartpanel.js";
import { initExport } from "./export.js";
import { initHistory, loadHistory, clearHistory } from "./history.js";
import { initSaved, loadSaved, clearSaved } from "./saved.js";
import { runQuery, cancelQuery, stopQuery } from "./query.js";
import { initSession, leave, currentSession } from "./session.js";

async function loadSchema() {
  $("schema-tree").replaceChildren("加载中… Loading");
  try {
    const { tables = [] } = await api.schema();
    renderSchema(tables);
    setCompletionSchema(completionNamespace(tables), columnCompletionSource(tables));
  } catch (e) {
    if (e.status !== 401) { $("schema-tree").replaceChildren(); showError(e); }
  }
}

function start() {
  initErrorBox();
  createEditor($("editor"), { onRun: runQuery });
  initSchema({ insert: insertAtCursor });
  initResults();
  initChart();
  initExport();
  initHistory({ pick: setDoc });
  initSaved({
    open: (s) => { setDoc(s.sql); presetChart(s.chart); runQuery(); },
    sql: getDoc,
    chart: getChartSettings,
    analyst: () => (currentSession() || {}).analyst,
  });
  $("run").addEventListener("click", runQuery);
  $("cancel").addEventListener("click", cancelQuery);
  onUnauthorized((e) => leave(`会话已失效，请重新登录 Session expired, please log in again (${e.message})`));
  resetResults();
  initSession({
    enter: (s) => { setCaps(s); loadSchema(); loadHistory(); loadSaved(); },
    leave: () => {
      stopQuery(); resetResults(); resetChart(); clearHistory(); clearSaved();
      $("schema-tree").replaceChildren();
    },
  });
}

start();
