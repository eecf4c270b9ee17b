/**
 * The dashboard's script core (part of its one inline script, dashboard.ts):
 * the admin token, the API calls, the panel registry and the poll loop.
 *
 * The token comes from the URL fragment (`/#token=…`: a fragment never
 * reaches the server or its logs), is kept in sessionStorage (never a
 * cookie) and removed from the address bar; without one the page shows a
 * token form.
 *
 * **Panels.** A panel is `register({id, title, span, mount(p), update(ctx)})`
 * (dashboard_panels.ts): `span` is its width in a 12-column grid (4, 6, 8 or
 * 12; one column on a phone), `mount` builds it once into `p.body` (with
 * `p.count` and `p.tools` in its title bar), and `update(ctx)` redraws it
 * from `ctx.snap` (`/api/v1/snapshot`, every second), `ctx.series`
 * (`/api/v1/series`, every few seconds) and `ctx.rates` (bytes per second
 * per replica and in total, from the last two snapshots). A new panel is one
 * more `register` call.
 *
 * @module
 */

/** Script text defining the registry and helpers; {@link BOOT_SCRIPT} starts the page. */
export const CORE_SCRIPT = `
"use strict";
const KEY = "burrow.admin_token";
const $ = (id) => document.getElementById(id);
const PANELS = [];
const ctx = { snap: null, series: null, rates: { replicas: new Map(), up: 0, down: 0 } };
const armed = new Map();
let token = null;
let timer = null;
let seriesAt = 0;
let prev = null;

function register(panel) { PANELS.push(panel); }

async function api(method, path) {
  const r = await fetch("/api/v1/" + path, {
    method,
    cache: "no-store",
    headers: { authorization: "Bearer " + token },
  });
  let body = null;
  try { body = await r.json(); } catch { body = null; }
  return { status: r.status, body };
}

/** A button that asks once more ("Confirm") before it runs; survives redraws by key. */
function confirmButton(key, label, title, run) {
  const b = el("button", "danger", label);
  b.type = "button";
  b.title = title;
  const until = armed.get(key);
  if (until && until > Date.now()) {
    b.textContent = "Confirm";
    b.classList.add("armed");
  }
  b.addEventListener("click", () => {
    const t = armed.get(key);
    if (t && t > Date.now()) {
      armed.delete(key);
      b.disabled = true;
      void run().then(poll);
    } else {
      armed.set(key, Date.now() + 4000);
      b.textContent = "Confirm";
      b.classList.add("armed");
      setTimeout(() => { if (armed.get(key) && armed.get(key) <= Date.now()) armed.delete(key); }, 4100);
    }
  });
  return b;
}

/**
 * Draw rows into a list: cols [{label, w, cls}], rows [{cls, data: {k: v}, cells: [...]}]
 * where a cell is text, a node, or [text, sub text].
 */
function fillList(box, cols, rows, empty) {
  box.className = "list";
  box.style.setProperty("--cols", cols.map((c) => c.w).join(" "));
  const head = el("div", "head");
  for (const c of cols) head.appendChild(el("div", "cell " + (c.cls || ""), c.label));
  const out = [head];
  if (rows.length === 0) out.push(el("div", "empty", empty));
  for (const r of rows) {
    const row = el("div", "row " + (r.cls || ""));
    for (const k in r.data || {}) row.dataset[k] = r.data[k];
    r.cells.forEach((v, i) => {
      const c = el("div", "cell " + (cols[i].cls || ""));
      if (cols[i].label) c.dataset.label = cols[i].label;
      if (Array.isArray(v)) {
        c.append(el("div", "", v[0]), el("div", "sub", v[1]));
        c.title = v[0] + " " + v[1];
      } else if (v instanceof Node) c.appendChild(v);
      else { c.textContent = v === null || v === undefined ? "" : String(v); c.title = c.textContent; }
      row.appendChild(c);
    });
    out.push(row);
  }
  box.replaceChildren(...out);
}

function mountPanels() {
  const grid = $("grid");
  for (const p of PANELS) {
    const section = el("section", "panel span-" + (p.span || 12) + (p.title ? "" : " bare"));
    section.id = "p-" + p.id;
    const parts = { section, body: el("div", "body"), count: el("span", "n"), tools: el("span", "tools") };
    if (p.title) {
      const h = el("h2", "", p.title);
      h.append(parts.count, parts.tools);
      section.appendChild(h);
    }
    section.appendChild(parts.body);
    grid.appendChild(section);
    p.mount(parts);
  }
}

function updatePanels() {
  if (!ctx.snap) return;
  for (const p of PANELS) {
    try { p.update(ctx); } catch (e) { console.error("panel " + p.id, e); }
  }
}

/** Bytes per second per replica and in total, from this snapshot and the one before. */
function measure(s) {
  const now = Date.now();
  const replicas = new Map();
  let up = 0;
  let down = 0;
  for (const a of s.agents) if (a.source !== "presence") replicas.set(a.session, { up: a.bytes_up, down: a.bytes_down });
  for (const c of s.clients) { up += c.bytes_up; down += c.bytes_down; }
  const cur = { at: now, replicas, up, down };
  if (prev && now > prev.at) {
    const dt = (now - prev.at) / 1000;
    const r = new Map();
    for (const [k, v] of replicas) {
      const p = prev.replicas.get(k);
      r.set(k, p ? { up: Math.max(0, v.up - p.up) / dt, down: Math.max(0, v.down - p.down) / dt } : { up: 0, down: 0 });
    }
    ctx.rates = { replicas: r, up: Math.max(0, up - prev.up) / dt, down: Math.max(0, down - prev.down) / dt };
  }
  prev = cur;
}
`;

/** Script text that shows the token form or the board and polls. */
export const BOOT_SCRIPT = `
function takeTokenFromFragment() {
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  token = sessionStorage.getItem(KEY);
}

function showLogin(message) {
  $("login").classList.remove("hidden");
  $("board").classList.add("hidden");
  $("top-tools").classList.add("hidden");
  $("error").textContent = message || "";
  if (timer !== null) { clearTimeout(timer); timer = null; }
}

function showBoard() {
  $("login").classList.add("hidden");
  $("board").classList.remove("hidden");
  $("top-tools").classList.remove("hidden");
}

function setState(text, ok) {
  $("state").textContent = text;
  $("state").className = "pill " + (ok ? "ok" : "bad");
}

async function poll() {
  if (timer !== null) { clearTimeout(timer); timer = null; }
  if (!token) return showLogin("");
  try {
    const r = await api("GET", "snapshot");
    if (r.status === 401) {
      sessionStorage.removeItem(KEY);
      token = null;
      return showLogin("The server refused this token.");
    }
    showBoard();
    if (r.status !== 200) {
      setState((r.body && r.body.message) || "HTTP " + r.status, false);
    } else {
      if (Date.now() - seriesAt > 2500) {
        const s = await api("GET", "series");
        if (s.status === 200) { ctx.series = s.body; seriesAt = Date.now(); }
      }
      const v = r.body.server;
      ctx.snap = r.body;
      measure(r.body);
      updatePanels();
      setState(v.ready ? "ready" : "not ready", v.ready);
      $("meta").textContent = "burrow " + v.version + " · " + v.runtime + " " + v.runtime_version +
        " · protocol " + v.protocol.min + "–" + v.protocol.max + " · up " + age(v.started_at);
      $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    }
  } catch (e) {
    setState("server unreachable", false);
  }
  timer = setTimeout(poll, 1000);
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  const t = $("token").value.trim();
  if (!t) return;
  sessionStorage.setItem(KEY, t);
  token = t;
  $("token").value = "";
  void poll();
});
$("logout").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  token = null;
  showLogin("");
});
let resizing = null;
window.addEventListener("resize", () => {
  clearTimeout(resizing);
  resizing = setTimeout(updatePanels, 150);
});
window.addEventListener("hashchange", () => { takeTokenFromFragment(); void poll(); });
mountPanels();
takeTokenFromFragment();
void poll();
`;
