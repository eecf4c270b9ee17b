/**
 * The dashboard's drawing (part of its one inline script, dashboard.ts):
 * formatting, the DOM helpers, the line chart, sparklines and bar strips,
 * all plain SVG made with `createElementNS` (no library, nothing fetched).
 * Every text goes in through `textContent`.
 *
 * @module
 */

/** Script text; it defines functions only (the panels call them). */
export const CHART_SCRIPT = `
const NS = "http://www.w3.org/2000/svg";
const WINDOW_MS = 15 * 60 * 1000;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function svgEl(tag, attrs) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, String(attrs[k]));
  return e;
}

function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  n = Math.max(0, n || 0);
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(Math.round(n)) : n.toFixed(n < 10 ? 1 : 0)) + " " + u[i];
}

const rate = (n) => bytes(n) + "/s";
const count = (n) => String(Math.round(n || 0));

function age(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
}

/** A round upper bound for an axis: 1, 2, 2.5 or 5 times a power of base's scale. */
function niceMax(v, isBytes) {
  if (!(v > 0)) return isBytes ? 1024 : 2;
  if (!isBytes) {
    const m = Math.max(2, Math.ceil(v));
    const p = Math.pow(10, Math.floor(Math.log10(m)));
    for (const f of [1, 2, 2.5, 5, 10]) if (f * p >= m && (f * p) % 2 === 0) return f * p;
    return 10 * p;
  }
  let unit = 1;
  while (v / unit >= 1024) unit *= 1024;
  const m = v / unit;
  const p = Math.pow(10, Math.floor(Math.log10(m)));
  for (const f of [1, 2, 2.5, 5, 10]) {
    if (f * p >= m) return f * p >= 1000 ? 1024 * unit : f * p * unit;
  }
  return 1024 * unit;
}

/**
 * The top five series by volume (the rest summed as "other"): each
 * { name, values } from a map name -> fields, through pick(fields) -> number[].
 */
function topSeries(map, pick, n) {
  const all = Object.keys(map || {}).map((name) => {
    const values = pick(map[name]);
    return { name, values, sum: values.reduce((a, b) => a + b, 0) };
  }).filter((s) => s.sum > 0).sort((a, b) => b.sum - a.sum || a.name.localeCompare(b.name));
  const k = n || 5;
  if (all.length <= k + 1) return all;
  const rest = all.slice(k);
  const other = rest[0].values.map((_, i) => rest.reduce((a, s) => a + (s.values[i] || 0), 0));
  return all.slice(0, k).concat([{ name: "other (" + rest.length + ")", values: other, other: true }]);
}

const sumFields = (a, b) => a.map((v, i) => v + (b[i] || 0));

/** Draw a line chart of series over the last 15 minutes into box; legend below it. */
function lineChart(box, legend, t, series, fmt, isBytes, emptyText) {
  const w = Math.max(box.clientWidth, 160);
  const h = Math.max(box.clientHeight, 120);
  const pad = { l: 62, r: 6, t: 8, b: 20 };
  const iw = w - pad.l - pad.r;
  const ih = h - pad.t - pad.b;
  const end = t.length ? Math.max(t[t.length - 1], Date.now() - 5000) : Date.now();
  const start = end - WINDOW_MS;
  const svg = svgEl("svg", { viewBox: "0 0 " + w + " " + h, role: "img" });
  svg.appendChild(svgEl("rect", { x: 0, y: 0, width: w, height: h, fill: "transparent" }));
  let max = 0;
  for (const s of series) for (const v of s.values) max = Math.max(max, v);
  max = niceMax(max, isBytes);
  for (let i = 0; i <= 2; i++) {
    const y = pad.t + ih * i / 2;
    svg.appendChild(svgEl("line", { class: "gridline", x1: pad.l, x2: w - pad.r, y1: y, y2: y }));
    const label = svgEl("text", { class: "axis", x: pad.l - 8, y: y + 3, "text-anchor": "end" });
    label.textContent = fmt(max * (2 - i) / 2);
    svg.appendChild(label);
  }
  [["15 min ago", 0, "start"], ["10 min", 1 / 3, "middle"], ["5 min", 2 / 3, "middle"],
    ["now", 1, "end"]].filter((_, i) => iw > 400 || i !== 1).forEach(([text, f, anchor]) => {
    const label = svgEl("text", { class: "axis", x: pad.l + iw * f, y: h - 4, "text-anchor": anchor });
    label.textContent = text;
    svg.appendChild(label);
  });
  const x = (ms) => pad.l + iw * Math.min(1, Math.max(0, (ms - start) / WINDOW_MS));
  const y = (v) => pad.t + ih * (1 - Math.min(v / max, 1));
  series.forEach((s, k) => {
    const cls = "k" + (s.other ? 5 : k % 5);
    let d = "";
    t.forEach((ms, i) => { d += (i ? "L" : "M") + x(ms).toFixed(1) + " " + y(s.values[i] || 0).toFixed(1); });
    if (!d) return;
    const area = d + "L" + x(t[t.length - 1]).toFixed(1) + " " + y(0) + "L" + x(t[0]).toFixed(1) + " " + y(0) + "Z";
    svg.appendChild(svgEl("path", { class: "area " + cls, d: area }));
    const line = svgEl("path", { class: "line " + cls, d });
    line.dataset.series = s.name;
    line.dataset.last = String(s.values[s.values.length - 1] || 0);
    svg.appendChild(line);
  });
  if (series.length === 0) {
    const e = svgEl("text", { class: "empty", x: pad.l + iw / 2, y: pad.t + ih / 2, "text-anchor": "middle" });
    e.textContent = emptyText;
    svg.appendChild(e);
  }
  const tip = hover(box, svg, t, series, fmt, { x, start, pad, iw, ih, w });
  box.replaceChildren(svg, tip);
  if (box.dataset.hover) svg.dispatchEvent(new MouseEvent("mousemove", { clientX: Number(box.dataset.hover) + svg.getBoundingClientRect().left }));
  legend.replaceChildren(...series.map((s, k) => {
    const item = el("span");
    item.append(el("i", "k" + (s.other ? 5 : k % 5)), el("span", "", s.name),
      el("b", "", fmt(s.values[s.values.length - 1] || 0)));
    return item;
  }));
}

/** A crosshair and a tooltip with every series' value at the sample nearest the pointer. */
function hover(box, svg, t, series, fmt, g) {
  const cross = svgEl("line", { class: "cross", x1: 0, x2: 0, y1: g.pad.t, y2: g.pad.t + g.ih, visibility: "hidden" });
  svg.appendChild(cross);
  const tip = el("div", "tip hidden");
  svg.addEventListener("mousemove", (e) => {
    const px = e.clientX - svg.getBoundingClientRect().left;
    if (t.length === 0 || series.length === 0) return;
    box.dataset.hover = String(px);
    const ms = g.start + (px - g.pad.l) / g.iw * WINDOW_MS;
    let i = 0;
    for (let j = 1; j < t.length; j++) if (Math.abs(t[j] - ms) < Math.abs(t[i] - ms)) i = j;
    const at = g.x(t[i]);
    cross.setAttribute("x1", at);
    cross.setAttribute("x2", at);
    cross.setAttribute("visibility", "visible");
    tip.replaceChildren(el("div", "when", new Date(t[i]).toLocaleTimeString()), ...series.map((s, k) => {
      const row = el("div", "");
      row.append(el("i", "k" + (s.other ? 5 : k % 5)), el("span", "", s.name), el("b", "", fmt(s.values[i] || 0)));
      return row;
    }));
    tip.classList.remove("hidden");
    const left = at + 12 + tip.offsetWidth > g.w ? at - 12 - tip.offsetWidth : at + 12;
    tip.style.left = Math.max(0, left) + "px";
  });
  svg.addEventListener("mouseleave", () => {
    delete box.dataset.hover;
    tip.classList.add("hidden");
    cross.setAttribute("visibility", "hidden");
  });
  return tip;
}

/** A small line of values (oldest first), scaled to its own maximum. */
function spark(values) {
  const w = 120;
  const h = 22;
  const svg = svgEl("svg", { class: "spark", viewBox: "0 0 " + w + " " + h, preserveAspectRatio: "none" });
  const v = (values || []).slice(-60);
  const max = Math.max(...v, 0);
  if (v.length < 2 || max === 0) {
    svg.appendChild(svgEl("path", { d: "M0 " + (h - 1) + "L" + w + " " + (h - 1) }));
    return svg;
  }
  let d = "";
  v.forEach((n, i) => {
    d += (i ? "L" : "M") + (w * i / (v.length - 1)).toFixed(1) + " " + (h - 1 - (h - 3) * n / max).toFixed(1);
  });
  svg.appendChild(svgEl("path", { class: "fill", d: d + "L" + w + " " + h + "L0 " + h + "Z" }));
  svg.appendChild(svgEl("path", { d }));
  return svg;
}

/** Bars of counts per interval (oldest first), in 30 buckets. */
function bars(values) {
  const w = 120;
  const h = 16;
  const n = 30;
  const per = Math.max(1, Math.ceil(values.length / n));
  const buckets = [];
  for (let i = 0; i < values.length; i += per) {
    buckets.push(values.slice(i, i + per).reduce((a, b) => a + b, 0));
  }
  const max = Math.max(...buckets, 1);
  const svg = svgEl("svg", { class: "bars", viewBox: "0 0 " + w + " " + h, width: w, height: h });
  const bw = w / n;
  svg.appendChild(svgEl("line", { class: "base", x1: 0, x2: w, y1: h - 0.5, y2: h - 0.5 }));
  buckets.slice(-n).forEach((b, i, all) => {
    if (b <= 0) return;
    const bh = Math.max(2, (h - 1) * b / max);
    svg.appendChild(svgEl("rect", { x: (n - all.length + i) * bw, y: h - bh, width: bw - 1, height: bh }));
  });
  return svg;
}
`;
