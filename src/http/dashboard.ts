/**
 * The dashboard at `/`: one self-contained page (inline CSS and JS, no build
 * step, no library, nothing fetched from elsewhere, so it works offline)
 * that polls `/api/v1/snapshot` every second and `/api/v1/series` every few
 * seconds. Its parts:
 *
 * | file | what |
 * |---|---|
 * | dashboard_style.ts | the CSS: a grid of panels, light and dark |
 * | dashboard_script.ts | the token, API calls, the panel registry, the poll loop |
 * | dashboard_chart.ts | SVG line charts, sparklines, bars; formatting |
 * | dashboard_panels.ts | the panels, one `register` call each |
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
import { CHART_SCRIPT } from "./dashboard_chart.ts";
import { PANELS_SCRIPT } from "./dashboard_panels.ts";
import { BOOT_SCRIPT, CORE_SCRIPT } from "./dashboard_script.ts";
import { STYLE } from "./dashboard_style.ts";

const SCRIPT = CORE_SCRIPT + CHART_SCRIPT + PANELS_SCRIPT + BOOT_SCRIPT;

const BODY = `
<header class="top">
  <span class="brand">burrow</span><span id="state" class="pill">…</span><span id="meta"></span>
  <span class="spacer"></span>
  <span id="top-tools" class="hidden"><span id="updated"></span>
    <button type="button" id="logout" title="Remove the token from this tab">Sign out</button></span>
</header>
<form id="login" class="hidden" autocomplete="off">
  <h2>Admin token</h2>
  <p>Enter the admin token (<code>admin:</code> in server.yaml), or open this page as
  <code>/#token=…</code>. It is kept in this tab's session storage only.</p>
  <input id="token" type="password" placeholder="admin token" aria-label="admin token">
  <button type="submit">Open dashboard</button>
  <div id="error" role="alert"></div>
</form>
<main id="board" class="hidden"><div id="grid" class="grid"></div></main>
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
