/**
 * The dashboard at `/`: one self-contained page (inline CSS and JS, no build
 * step, nothing fetched from elsewhere) that polls `/api/v1/snapshot` every
 * second and shows agents, clients and live streams, with a button to close
 * a stream and one to disconnect an agent.
 *
 * The admin token comes from the URL fragment (`/#token=…`: a fragment never
 * reaches the server or its logs), is kept in sessionStorage (never a cookie)
 * and removed from the address bar; without one the page shows a token form.
 * The page writes data only through `textContent`, and the Content Security
 * Policy allows exactly this one script (by hash) and talking to this origin.
 *
 * @module
 */
import { sha256 } from "@noble/hashes/sha2.js";

const STYLE = `
:root { color-scheme: light dark; --bg: #fafafa; --fg: #1d232a; --mute: #68717c;
  --line: #d9dde2; --head: #eef1f4; --ok: #1a7f37; --bad: #b42318; --accent: #2f5fb3; }
@media (prefers-color-scheme: dark) { :root { --bg: #16191d; --fg: #e4e7eb; --mute: #9aa3ad;
  --line: #2c3238; --head: #1f2429; --ok: #4ac26b; --bad: #f47067; --accent: #6ea8fe; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  background: var(--bg); color: var(--fg); }
header { display: flex; gap: 1rem; align-items: baseline; flex-wrap: wrap;
  padding: .8rem 1.2rem; border-bottom: 1px solid var(--line); }
header h1 { font-size: 1.2rem; margin: 0; letter-spacing: .02em; }
#meta, #updated { color: var(--mute); }
#state { font-weight: 600; }
#state.ok { color: var(--ok); } #state.bad { color: var(--bad); }
main { padding: .4rem 1.2rem 2rem; }
section { margin-top: 1.2rem; }
h2 { font-size: 1rem; margin: 0 0 .4rem; }
h2 .n { color: var(--mute); font-weight: normal; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: var(--head); font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; }
td.rules { font-family: ui-monospace, monospace; font-size: 12px; }
td.empty { color: var(--mute); font-style: italic; }
button { font: inherit; padding: .15rem .6rem; border: 1px solid var(--line); border-radius: 4px;
  background: transparent; color: var(--fg); cursor: pointer; }
button:hover { border-color: var(--bad); color: var(--bad); }
form#login { max-width: 28rem; margin: 3rem auto; display: flex; flex-direction: column;
  gap: .6rem; }
form#login input { font: inherit; padding: .4rem .6rem; border: 1px solid var(--line);
  border-radius: 4px; background: transparent; color: var(--fg); }
form#login button { align-self: flex-start; border-color: var(--accent); color: var(--accent); }
#error { color: var(--bad); min-height: 1.2em; }
.hidden { display: none !important; }
`;

const SCRIPT = `
"use strict";
const KEY = "burrow.admin_token";
const $ = (id) => document.getElementById(id);
let token = null;
let timer = null;

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
  $("error").textContent = message || "";
  if (timer !== null) { clearTimeout(timer); timer = null; }
}

function showBoard() {
  $("login").classList.add("hidden");
  $("board").classList.remove("hidden");
}

function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(n) : n.toFixed(1)) + " " + u[i];
}

function age(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function fill(id, rows, columns, empty, key, action) {
  const tbody = $(id);
  tbody.replaceChildren();
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    const td = cell(tr, empty, "empty");
    td.colSpan = columns.length + (action ? 1 : 0);
    tbody.appendChild(tr);
    return;
  }
  for (const row of rows) {
    const tr = document.createElement("tr");
    tr.dataset.key = String(row[key]);
    for (const [get, cls] of columns) cell(tr, String(get(row)), cls);
    if (action) {
      const td = cell(tr, "");
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = action.label;
      b.addEventListener("click", () => action.run(row));
      td.appendChild(b);
    }
    tbody.appendChild(tr);
  }
}

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

function render(s) {
  $("meta").textContent = "burrow " + s.server.version + " on " + s.server.runtime + " " +
    s.server.runtime_version + " · protocol " + s.server.protocol.min + ".." +
    s.server.protocol.max + " · up " + age(s.server.started_at);
  $("n-agents").textContent = "(" + s.agents.length + ")";
  $("n-clients").textContent = "(" + s.clients.length + ")";
  $("n-streams").textContent = "(" + s.streams.length + ")";
  fill("agents", s.agents, [
    [(a) => a.name], [(a) => a.id, "num"], [(a) => a.session], [(a) => a.protocol, "num"],
    [(a) => a.software], [(a) => a.remote], [(a) => age(a.connected_since)],
    [(a) => a.rules.join(" "), "rules"], [(a) => a.pool.idle + " / " + a.pool.target, "num"],
    [(a) => a.streams, "num"], [(a) => bytes(a.bytes_up), "num"],
    [(a) => bytes(a.bytes_down), "num"],
  ], "no agent connected", "name", {
    label: "disconnect",
    run: (a) => {
      if (confirm("Disconnect agent " + a.name + "? It reconnects after its backoff.")) {
        void api("DELETE", "agents/" + encodeURIComponent(a.name)).then(poll);
      }
    },
  });
  fill("clients", s.clients, [
    [(c) => c.name], [(c) => c.id === null ? "–" : c.id, "num"], [(c) => c.streams, "num"],
    [(c) => bytes(c.bytes_up), "num"], [(c) => bytes(c.bytes_down), "num"],
  ], "no client configured", "name", null);
  fill("streams", s.streams, [
    [(t) => t.id, "num"], [(t) => t.client], [(t) => t.agent], [(t) => t.target],
    [(t) => t.port], [(t) => age(t.since), "num"], [(t) => bytes(t.bytes_up), "num"],
    [(t) => bytes(t.bytes_down), "num"],
  ], "no live stream", "id", {
    label: "close",
    run: (t) => void api("DELETE", "streams/" + t.id).then(poll),
  });
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
    if (r.status !== 200) {
      showBoard();
      $("state").textContent = (r.body && r.body.message) || "HTTP " + r.status;
      $("state").className = "bad";
    } else {
      showBoard();
      render(r.body);
      $("state").textContent = r.body.server.ready ? "ready" : "not ready";
      $("state").className = r.body.server.ready ? "ok" : "bad";
      $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    }
  } catch (e) {
    $("state").textContent = "server unreachable";
    $("state").className = "bad";
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
window.addEventListener("hashchange", () => { takeTokenFromFragment(); void poll(); });
takeTokenFromFragment();
void poll();
`;

const BODY = `
<header>
  <h1>burrow</h1><span id="state">…</span><span id="meta"></span><span id="updated"></span>
</header>
<form id="login" class="hidden" autocomplete="off">
  <h2>Admin token</h2>
  <p>Enter the admin token (<code>admin:</code> in server.yaml), or open this page as
  <code>/#token=…</code>. It is kept in this tab's session storage only.</p>
  <input id="token" type="password" placeholder="admin token" aria-label="admin token">
  <button type="submit">Open dashboard</button>
  <div id="error" role="alert"></div>
</form>
<main id="board" class="hidden">
  <section>
    <h2>Agents <span class="n" id="n-agents"></span></h2>
    <table><thead><tr><th>name</th><th class="num">id</th><th>session</th>
      <th class="num">protocol</th><th>software</th><th>remote</th><th>connected</th>
      <th>rules</th><th class="num">pool idle / target</th><th class="num">streams</th>
      <th class="num">up</th><th class="num">down</th><th></th></tr></thead>
      <tbody id="agents"></tbody></table>
  </section>
  <section>
    <h2>Live streams <span class="n" id="n-streams"></span></h2>
    <table><thead><tr><th class="num">id</th><th>client</th><th>agent</th><th>target</th>
      <th>port</th><th class="num">age</th><th class="num">up</th><th class="num">down</th>
      <th></th></tr></thead>
      <tbody id="streams"></tbody></table>
  </section>
  <section>
    <h2>Clients <span class="n" id="n-clients"></span></h2>
    <table><thead><tr><th>name</th><th class="num">id</th><th class="num">streams</th>
      <th class="num">up</th><th class="num">down</th></tr></thead>
      <tbody id="clients"></tbody></table>
  </section>
  <p><button type="button" id="logout">forget token</button></p>
</main>
`;

function b64(bytes: Uint8Array): string {
  let s = "";
  for (const x of bytes) s += String.fromCharCode(x);
  return btoa(s);
}

/** The page, as served. */
export const dashboardHtml = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>burrow</title>
<style>${STYLE}</style>
</head><body>${BODY}<script>${SCRIPT}</script></body></html>
`;

/** Only this page's own script (by hash) and style run; it talks to its own origin only. */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  `script-src 'sha256-${b64(sha256(new TextEncoder().encode(SCRIPT)))}'`,
  "style-src 'unsafe-inline'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");
