// Query history (#history), newest first; clicking an entry puts its SQL into the editor.
import { api } from "./api.js";
import { $, el, fmtInt, fmtSeconds, fmtTime, STATE_LABELS } from "./dom.js";

let onPick = () => {};

export function initHistory({ pick }) {
  onPick = pick;
  $("history-refresh").addEventListener("click", loadHistory);
}

function entry(q) {
  const meta = [fmtTime(q.at)];
  if (q.state === "done") meta.push(`${fmtInt(q.row_count)} 行 rows`);
  if (q.elapsed_ms != null) meta.push(fmtSeconds(q.elapsed_ms));
  return el("li", { dataset: { queryId: q.id } },
    el("button", { type: "button", class: "history-item", title: q.sql, onclick: () => onPick(q.sql) },
      el("span", { class: "item-head" },
        el("span", { class: `state state-${q.state}` }, STATE_LABELS[q.state] || q.state),
        el("span", { class: "meta" }, meta.join(" · "))),
      el("code", { class: "sql-snippet" }, q.sql.replace(/\s+/g, " ").trim())));
}

export async function loadHistory() {
  const list = $("history-list");
  try {
    const { queries = [] } = await api.history();
    list.replaceChildren(...(queries.length ? queries.map(entry)
      : [el("li", { class: "empty" }, "暂无历史 No queries yet")]));
  } catch (e) {
    if (e.status !== 401) list.replaceChildren(el("li", { class: "empty" }, `加载失败 Failed: ${e.message}`));
  }
}

export function clearHistory() {
  $("history-list").replaceChildren();
}
