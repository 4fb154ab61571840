// Export buttons: the download needs the bearer token, so fetch a blob and save it
// through an object URL, named from Content-Disposition.
import { api } from "./api.js";
import { $ } from "./dom.js";
import { showError, clearError } from "./errors.js";

let queryId = null;

export function filenameFrom(disposition, fallback) {
  if (!disposition) return fallback;
  const star = /filename\*\s*=\s*([^']*)'[^']*'([^;]+)/i.exec(disposition);
  if (star) {
    try { return decodeURIComponent(star[2].trim().replace(/^"|"$/g, "")); } catch { /* fall through */ }
  }
  const plain = /filename\s*=\s*("([^"]*)"|[^;]+)/i.exec(disposition);
  const name = plain && (plain[2] ?? plain[1]).trim();
  return name ? name.replace(/[\\/]/g, "_") : fallback;
}

async function download(format, button) {
  if (!queryId) return;
  const label = button.innerHTML;
  button.disabled = true;
  button.textContent = "导出中… Exporting";
  clearError();
  try {
    const res = await api.exportFile(queryId, format);
    const blob = await res.blob();
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = filenameFrom(res.headers.get("Content-Disposition"), `result.${format}`);
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) {
    if (e.status !== 401) showError(e);
  } finally {
    button.innerHTML = label;
    button.disabled = !queryId;
  }
}

export function initExport() {
  $("export-csv").addEventListener("click", (ev) => download("csv", ev.currentTarget));
  $("export-parquet").addEventListener("click", (ev) => download("parquet", ev.currentTarget));
  setExportable(null);
}

export function setExportable(id) {
  queryId = id;
  $("export-csv").disabled = !id;
  $("export-parquet").disabled = !id;
}
