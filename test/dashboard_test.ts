/**
 * The dashboard in a real browser: headless Chromium (Debian's `chromium`,
 * over the DevTools protocol, test/cdp.ts) opens `/#token=…` on an
 * in-process server, shows the connected agent, and a stream that appears
 * and disappears. Saves a screenshot to `.state/dashboard-<runtime>.png`.
 */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { test } from "node:test";
import type { Host } from "../src/cli/mod.ts";
import { httpApp } from "../src/http/mod.ts";
import { launchChromium } from "./cdp.ts";
import { echoTarget, repo, runtime, socksTo, tunnel } from "./helpers.ts";

const rt = runtime;
const ADMIN = "admin-token-0123456789abcdef";

test(`${rt}: dashboard shows agents and live streams in headless Chromium`, async () => {
  const { host } = await import(`../runtimes/${rt}/main.ts`) as { host: Host };
  const t = await tunnel({ config: { admin: { token: ADMIN } } });
  const echo = await echoTarget(t.net);
  const http = await host.serveHttp({ host: "127.0.0.1", port: 0 }, httpApp(t.server).fetch);
  const base = `http://127.0.0.1:${http.addr.port}`;
  const browser = await launchChromium(t.net);
  try {
    const page = await browser.open(`${base}/#token=${ADMIN}`);
    assert.ok(
      await page.waitFor(`document.querySelector('#agents tr[data-key="office"]')`),
      "the agent's row shows",
    );
    assert.match(await page.eval<string>(`document.getElementById("agents").innerText`), /office/);
    // The token left the address bar for session storage; no cookie.
    assert.equal(await page.eval<string>("location.hash"), "");
    assert.equal(await page.eval<string>(`sessionStorage.getItem("burrow.admin_token")`), ADMIN);
    assert.equal(await page.eval<string>("document.cookie"), "");

    const s = await socksTo(t, echo.addr.port);
    assert.equal(s.reply, 0);
    await s.conn.write(new TextEncoder().encode("hello dashboard"));
    await s.conn.read(); // echoed
    const [id] = [...t.server.router.streams.keys()];
    assert.ok(id !== undefined, "the stream is live");
    assert.ok(
      await page.waitFor(`document.querySelector('#streams tr[data-key="${id}"]')`),
      "the stream's row appears",
    );
    const row = await page.eval<string>(
      `document.querySelector('#streams tr[data-key="${id}"]').innerText`,
    );
    assert.match(row, /alice/);
    assert.match(row, new RegExp(`127\\.0\\.0\\.1:${echo.addr.port}`));
    mkdirSync(`${repo}.state`, { recursive: true });
    writeFileSync(`${repo}.state/dashboard-${rt}.png`, await page.screenshot());

    s.conn.close();
    assert.ok(
      await page.waitFor(`!document.querySelector('#streams tr[data-key="${id}"]')`),
      "the stream's row disappears",
    );

    // A new tab has its own session storage: no token, so the token form.
    const bare = await browser.open(`${base}/`);
    assert.ok(
      await bare.waitFor(`!document.getElementById("login").classList.contains("hidden")`),
      "the token form shows",
    );
    // A wrong token is refused and the form says so.
    const wrong = await browser.open(`${base}/#token=not-the-admin-token`);
    assert.ok(
      await wrong.waitFor(`document.getElementById("error").textContent.includes("refused")`),
      "a wrong token is refused",
    );
  } finally {
    await browser.close();
    await http.close();
    echo.close();
    await t.close();
  }
});
