// Saved queries (#saved): list (own and shared), save form, load-and-run, delete.
import { api } from "./api.js";
import { $, el } from "./dom.js";
import { showError, clearError } from "./errors.js";

let hooks = { open: () => {}, sql: () => "", chart: () => null, analyst: () => "" };

export function initSaved(h) {
  hooks = h;
  $("save").addEventListener("click", () => toggleForm());
  $("save-cancel").addEventListener("click", () => toggleForm(false));
  $("save-form").addEventListener("submit", (ev) => { ev.preventDefault(); save(); });
}

function toggleForm(show) {
  const form = $("save-form");
  form.hidden = show === undefined ? !form.hidden : !show;
  $("save").setAttribute("aria-expanded", String(!form.hidden));
  if (!form.hidden) $("save-name").focus();
}

async function save() {
  const name = $("save-name").value.trim();
  const sql = hooks.sql().trim();
  if (!name) { showError("请填写名称 Please enter a name for the saved query"); $("save-name").focus(); return; }
  if (!sql) { showError("编辑器为空 The editor is empty"); return; }
  clearError();
  $("save-confirm").disabled = true;
  try {
    await api.save({ name, description: $("save-description").value.trim(), sql,
      shared: $("save-shared").checked, chart: hooks.chart() });
    $("save-form").reset();
    toggleForm(false);
    await loadSaved();
  } catch (e) {
    if (e.status !== 401) showError(e);
  } finally {
    $("save-confirm").disabled = false;
  }
}

function deleteButton(s) {
  const b = el("button", { type: "button", class: "delete", title: `删除 Delete "${s.name}"`,
    "aria-label": `删除 Delete ${s.name}` }, "✕");
  b.addEventListener("click", async (ev) => {
    ev.stopPropagation();
    if (!b.classList.contains("confirm")) { // first click arms, second deletes
      b.classList.add("confirm");
      b.textContent = "确认删除 Delete?";
      setTimeout(() => { b.classList.remove("confirm"); b.textContent = "✕"; }, 4000);
      return;
    }
    try { await api.deleteSaved(s.id); await loadSaved(); } catch (e) { if (e.status !== 401) showError(e); }
  });
  return b;
}

function item(s) {
  const mine = s.owner === hooks.analyst();
  return el("li", { dataset: { savedId: s.id } },
    el("button", { type: "button", class: "saved-item", title: s.sql, onclick: () => hooks.open(s) },
      el("span", { class: "item-head" },
        el("span", { class: "saved-name" }, s.name),
        s.chart ? el("span", { class: "tag", title: `chart: ${s.chart.type}` },
          s.chart.type === "line" ? "折线 line" : "柱状 bar") : null,
        s.shared ? el("span", { class: "tag shared" }, `共享 shared · ${s.owner}`) : null),
      s.description ? el("span", { class: "meta" }, s.description) : null),
    mine ? deleteButton(s) : null);
}

export async function loadSaved() {
  const list = $("saved-list");
  try {
    const { saved = [] } = await api.saved();
    list.replaceChildren(...(saved.length ? saved.map(item)
      : [el("li", { class: "empty" }, "暂无保存的查询 No saved queries")]));
  } catch (e) {
    if (e.status !== 401) list.replaceChildren(el("li", { class: "empty" }, `加载失败 Failed: ${e.message}`));
  }
}

export function clearSaved() {
  $("saved-list").replaceChildren();
  $("save-form").reset();
  toggleForm(false);
}
