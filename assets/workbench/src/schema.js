// Schema browser (#schema): tables grouped by schema, expandable to their columns;
// clicking a name inserts it at the editor cursor.
import { $, el, quoteIdent } from "./dom.js";

let onInsert = () => {};

export function initSchema({ insert }) {
  onInsert = insert;
  $("schema-filter").addEventListener("input", applyFilter);
}

function columnItem(t, c) {
  return el("li", { class: "column", dataset: { column: c.name } },
    el("button", {
      type: "button", class: "column-name", title: `插入列名 Insert ${c.name}`,
      onclick: () => onInsert(quoteIdent(c.name)),
    }, c.name),
    el("span", { class: "column-type" }, c.type || ""),
    c.comment ? el("span", { class: "column-comment" }, c.comment) : null);
}

function tableItem(t) {
  const qualified = `${t.schema}.${t.name}`;
  const columns = el("ul", { class: "columns", hidden: true },
    (t.columns || []).map((c) => columnItem(t, c)));
  const twisty = el("button", {
    type: "button", class: "twisty", "aria-expanded": "false",
    "aria-label": `展开列 Show columns of ${qualified}`, text: "▸",
  });
  twisty.addEventListener("click", () => {
    const open = columns.hidden;
    columns.hidden = !open;
    twisty.setAttribute("aria-expanded", String(open));
    twisty.textContent = open ? "▾" : "▸";
  });
  const insertText = `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`;
  return el("li", {
    class: "table", dataset: { table: qualified, search: `${qualified} ${t.comment || ""}`.toLowerCase() },
  },
  el("div", { class: "table-row" }, twisty,
    el("button", {
      type: "button", class: "table-name", title: `插入表名 Insert ${qualified}\n${t.comment || ""}`,
      onclick: () => onInsert(insertText),
    }, el("span", { class: "mono" }, t.name),
    t.comment ? el("span", { class: "table-comment" }, t.comment) : null)),
  columns);
}

export function renderSchema(tables) {
  const root = $("schema-tree");
  root.replaceChildren();
  if (!tables.length) {
    root.append(el("p", { class: "empty" }, "没有可访问的表 No tables in this tier"));
    return;
  }
  const groups = new Map();
  for (const t of tables) {
    if (!groups.has(t.schema)) groups.set(t.schema, []);
    groups.get(t.schema).push(t);
  }
  for (const [schema, list] of groups) {
    root.append(el("details", { class: "schema-group", open: true, dataset: { schema } },
      el("summary", {}, el("span", { class: "mono" }, schema),
        el("span", { class: "count" }, String(list.length))),
      el("ul", { class: "tables" }, list.map(tableItem))));
  }
  applyFilter();
}

function applyFilter() {
  const q = $("schema-filter").value.trim().toLowerCase();
  for (const li of $("schema-tree").querySelectorAll("li.table")) {
    const colHit = q && [...li.querySelectorAll("li.column")]
      .some((c) => c.dataset.column.toLowerCase().includes(q));
    li.hidden = Boolean(q) && !li.dataset.search.includes(q) && !colHit;
  }
}
