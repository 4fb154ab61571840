// Draws a bar or line chart as inline SVG: renderChart(container, {type, columns, rows, x, y, series}).
// Pure presentation: no fetching, no controls.

const NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0891b2",
  "#db2777", "#65a30d", "#78716c", "#ea580c", "#4f46e5", "#0d9488"];
const MAX_SERIES = PALETTE.length;
const W = 820;

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v != null) node.setAttribute(k, String(v));
  for (const c of children.flat()) {
    if (c == null) continue;
    node.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return node;
}

const label = (v) => (v === null || v === undefined ? "NULL" : String(v));
const short = (s, n = 16) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
// Rough text width at the chart's 11px font: CJK and other wide characters count double.
const textWidth = (s) => [...s].reduce((w, ch) => w + (ch.charCodeAt(0) > 0x2e80 ? 11.5 : 6.6), 0);

export function fmtNumber(v) {
  const abs = Math.abs(v);
  const compact = abs >= 100000;
  return new Intl.NumberFormat("en-US", {
    maximumFractionDigits: compact ? 2 : abs >= 100 ? 0 : 2,
    notation: compact ? "compact" : "standard",
  }).format(v);
}

export function niceTicks(min, max, count = 5) {
  if (min === max) { min -= Math.abs(min) * 0.1 || 1; max += Math.abs(max) * 0.1 || 1; }
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const ticks = [];
  for (let t = lo; t <= hi + step / 2; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

// Rows → {categories, series: [{name, values: Map(category → sum)}], summed, skipped, dropped}
export function prepare({ type, columns, rows, x, y, series }) {
  const idx = (name) => columns.findIndex((c) => c.name === name);
  const xi = idx(x); const yi = idx(y); const si = series ? idx(series) : -1;
  const cats = []; const seen = new Set(); const groups = new Map();
  let summed = false; let skipped = 0;
  for (const r of rows) {
    const yv = r[yi] === null || r[yi] === "" ? NaN : Number(r[yi]);
    if (!Number.isFinite(yv)) { skipped += 1; continue; }
    const xv = label(r[xi]);
    const sv = si >= 0 ? label(r[si]) : y;
    if (!seen.has(xv)) { seen.add(xv); cats.push(xv); }
    if (!groups.has(sv)) groups.set(sv, new Map());
    const g = groups.get(sv);
    if (g.has(xv)) summed = true;
    g.set(xv, (g.get(xv) || 0) + yv);
  }
  if (type === "line") {
    if (cats.every((c) => c !== "NULL" && Number.isFinite(Number(c)))) cats.sort((a, b) => a - b);
    else if (cats.every((c) => /^\d{4}-\d{2}/.test(c))) cats.sort();
  }
  const all = [...groups].map(([name, values]) => ({ name, values }));
  return { categories: cats, series: all.slice(0, MAX_SERIES), summed, skipped,
    dropped: Math.max(0, all.length - MAX_SERIES) };
}

function message(container, text) {
  const p = document.createElement("p");
  p.className = "empty";
  p.textContent = text;
  container.replaceChildren(p);
}

export function renderChart(container, spec) {
  const data = prepare(spec);
  if (!data.categories.length) {
    message(container, `没有可绘制的数值 No numeric values in ${spec.y} to plot`);
    return;
  }
  const { categories: cats, series } = data;
  const values = series.flatMap((s) => [...s.values.values()]);
  let lo = Math.min(...values); let hi = Math.max(...values);
  if (spec.type === "bar") { lo = Math.min(0, lo); hi = Math.max(0, hi); }
  const ticks = niceTicks(lo, hi);
  lo = ticks[0]; hi = ticks[ticks.length - 1];

  const legend = series.length > 1;
  const rotate = cats.length > 10 || cats.some((c) => textWidth(c) > 700 / cats.length);
  const m = { top: legend ? 40 : 20, right: 20, bottom: rotate ? 104 : 52, left: 72 };
  const H = 400;
  const pw = W - m.left - m.right; const ph = H - m.top - m.bottom;
  const band = pw / cats.length;
  const X = (i) => m.left + band * (i + 0.5);
  const Y = (v) => m.top + ph - ((v - lo) / (hi - lo)) * ph;

  const root = svg("svg", {
    viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img",
    "aria-label": `${spec.type === "bar" ? "柱状图 Bar chart" : "折线图 Line chart"}: ${spec.y} by ${spec.x}`,
  });
  // y grid, ticks and title
  root.append(svg("g", { class: "axis y" }, ticks.map((t) => svg("g", {},
    svg("line", { x1: m.left, x2: W - m.right, y1: Y(t), y2: Y(t), class: t === 0 ? "zero" : "gridline" }),
    svg("text", { x: m.left - 8, y: Y(t) + 4, "text-anchor": "end" }, fmtNumber(t)))),
  svg("text", { class: "axis-title", transform: `translate(16 ${m.top + ph / 2}) rotate(-90)`,
    "text-anchor": "middle" }, short(`${spec.y}${data.summed ? " (Σ)" : ""}`, 40))));
  // x labels, thinned to at most ~40 (rotated) or what fits
  const every = Math.ceil(cats.length / (rotate ? 40 : 12));
  root.append(svg("g", { class: "axis x" },
    svg("line", { x1: m.left, x2: W - m.right, y1: m.top + ph, y2: m.top + ph, class: "baseline" }),
    cats.map((c, i) => (i % every ? null : svg("text", rotate
      ? { transform: `translate(${X(i)} ${m.top + ph + 12}) rotate(-40)`, "text-anchor": "end" }
      : { x: X(i), y: m.top + ph + 18, "text-anchor": "middle" },
    svg("title", {}, c), short(c, rotate ? 16 : Math.max(4, Math.floor(band / 7)))))),
    svg("text", { class: "axis-title", x: m.left + pw / 2, y: H - 6, "text-anchor": "middle" },
      short(spec.x, 60))));

  const plot = svg("g", { class: "plot" });
  series.forEach((s, k) => {
    const color = PALETTE[k % PALETTE.length];
    const tip = (c, v) => `${spec.x}: ${c}\n${legend ? `${spec.series}: ${s.name}\n` : ""}${spec.y}: ${fmtNumber(v)}`;
    if (spec.type === "bar") {
      const bw = (band * 0.8) / series.length;
      cats.forEach((c, i) => {
        if (!s.values.has(c)) return;
        const v = s.values.get(c);
        const y0 = Y(Math.max(0, Math.min(v, hi))); const y1 = Y(Math.min(0, Math.max(v, lo)));
        plot.append(svg("rect", { x: m.left + band * i + band * 0.1 + bw * k, y: Math.min(y0, y1),
          width: Math.max(1, bw - 1), height: Math.max(1, Math.abs(y1 - y0)), fill: color },
        svg("title", {}, tip(c, v))));
      });
    } else {
      const pts = cats.map((c, i) => (s.values.has(c) ? [X(i), Y(s.values.get(c)), c] : null)).filter(Boolean);
      plot.append(svg("polyline", { points: pts.map((p) => `${p[0]},${p[1]}`).join(" "),
        fill: "none", stroke: color, "stroke-width": 2 }));
      if (pts.length <= 200) pts.forEach(([px, py, c]) => plot.append(svg("circle",
        { cx: px, cy: py, r: 3, fill: color }, svg("title", {}, tip(c, s.values.get(c))))));
    }
  });
  root.append(plot);

  if (legend) {
    let lx = m.left;
    root.append(svg("g", { class: "legend" }, series.map((s, k) => {
      const g = svg("g", { transform: `translate(${lx} 14)` },
        svg("rect", { width: 10, height: 10, y: -9, fill: PALETTE[k % PALETTE.length] }),
        svg("text", { x: 14 }, short(s.name, 18)));
      lx += 26 + textWidth(short(s.name, 18));
      return g;
    })));
  }
  const notes = [];
  if (data.summed) notes.push("相同 x 的值已求和 values with the same x are summed");
  if (data.skipped) notes.push(`${data.skipped} 行 y 非数值已跳过 rows with non-numeric y skipped`);
  if (data.dropped) notes.push(`仅显示前 ${MAX_SERIES} 个系列 only the first ${MAX_SERIES} series shown`);
  const caption = document.createElement("p");
  caption.className = "chart-note";
  caption.textContent = notes.join(" · ");
  container.replaceChildren(root, caption);
}
