// The one visible error box (#error): message plus "line L, column C" when given.
import { $ } from "./dom.js";

export function showError(errOrMessage, extra) {
  const box = $("error");
  const e = typeof errOrMessage === "string" ? { message: errOrMessage } : errOrMessage || {};
  let text = e.message || "未知错误 Unknown error";
  if (e.line != null) text += ` (line ${e.line}${e.column != null ? `, column ${e.column}` : ""})`;
  if (extra) text += ` ${extra}`;
  box.querySelector(".error-text").textContent = text;
  box.hidden = false;
}

export function clearError() {
  const box = $("error");
  box.hidden = true;
  box.querySelector(".error-text").textContent = "";
}

export function initErrorBox() {
  $("error-close").addEventListener("click", clearError);
}
