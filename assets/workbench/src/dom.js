// Small DOM and formatting helpers shared by the other modules.

export const $ = (id) => document.getElementById(id);

// el("li", {class: "x", dataset: {id: 1}, onclick: fn}, child, "text", ...)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const fmtInt = (n) => (n == null ? "" : Number(n).toLocaleString("en-US"));

export function fmtSeconds(ms) {
  if (ms == null) return "";
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(2)} s`;
  return `${Math.floor(s / 60)} min ${(s % 60).toFixed(1)} s`;
}

export function fmtTime(at) {
  const d = new Date(at);
  if (!at || Number.isNaN(d.getTime())) return at ? String(at) : "";
  const p = (n) => String(n).padStart(2, "0");
  return `${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// A name is inserted as is when it is a plain identifier, else double-quoted.
export function quoteIdent(name) {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? name : `"${String(name).replace(/"/g, '""')}"`;
}

export const STATE_LABELS = {
  queued: "排队中 queued",
  running: "运行中 running",
  done: "完成 done",
  failed: "失败 failed",
  timeout: "超时 timeout",
  cancelled: "已取消 cancelled",
};
