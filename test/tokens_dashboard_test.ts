/**
 * Issued tokens on the dashboard (headless Chromium over test/cdp.ts): the
 * tokens panel lists each active token with its subject, expiry and
 * streams, and its Revoke button (a click, then Confirm) revokes it and
 * closes its stream; the snapshot names each stream's token.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Host } from "../src/cli/mod.ts";
import { httpApp } from "../src/http/mod.ts";
import { targetOf } from "../src/ip.ts";
import { Status } from "../src/messages.ts";
import { launchChromium } from "./cdp.ts";
import { ADMIN_TOKEN, echoTarget, runtime, socks, tunnel, until } from "./helpers.ts";

test(`${runtime}: dashboard lists issued tokens with their expiry and revokes one`, async () => {
  const { host } = await import(`../runtimes/${runtime}/main.ts`) as { host: Host };
  const t = await tunnel({ config: { admin: { token: ADMIN_TOKEN } } });
  const http = await host.serveHttp({ host: "127.0.0.1", port: 0 }, httpApp(t.server).fetch);
  const browser = await launchChromium(t.net, 1280, 800);
  const echo = await echoTarget(t.net);
  try {
    const a = await t.server.tokens.issue("client", "alice", 7200);
    const s = await socks(
      t.net,
      t.socks,
      "@office",
      a.token,
      targetOf("127.0.0.1", echo.addr.port),
    );
    assert.equal(s.reply, Status.succeeded);
    assert.deepEqual(t.server.snapshot().streams.map((x) => x.token), [a.id]);

    const page = await browser.open(`http://127.0.0.1:${http.addr.port}/#token=${ADMIN_TOKEN}`);
    const row = `document.querySelector('#tokens [data-token="${a.id}"]')`;
    assert.ok(await page.waitFor(`${row} !== null`), "a row for the token");
    const text = await page.eval<string>(`${row}.innerText`);
    assert.match(text, /alice/);
    assert.match(text, /1 h 59 min|2 h 0 min/);
    assert.ok(await page.waitFor(`${row}.children[3].textContent === "1"`), "its stream");
    await page.eval(`${row}.querySelector("button").click()`);
    assert.ok(await page.waitFor(`${row}.querySelector("button").textContent === "Confirm"`));
    assert.equal(t.server.tokens.revoked(a.id), false, "one click only arms the button");
    await page.eval(`${row}.querySelector("button").click()`);
    assert.ok(await until(() => t.server.tokens.revoked(a.id)));
    assert.ok(await until(() => t.logs.some((l) => /closed by revocation/.test(l))));
    assert.ok(await page.waitFor(`${row} === null`), "gone from the list");
    s.conn.close();
  } finally {
    await echo.close();
    await browser.close();
    await http.close();
    await t.close();
  }
});
