/**
 * The dashboard in a real browser: headless Chromium (Debian's `chromium`,
 * over the DevTools protocol, test/cdp.ts) opens `/#token=…` on an
 * in-process server. It shows the connected agent and a stream that appears
 * and disappears; fits 1280×800 and 390×844 without sideways scrolling; its
 * graphs move while bytes flow through a real stream; it shows refusals by
 * reason; and two real replicas of one agent are rows of their own, each
 * disconnected on its own. Screenshots go to `.state/dashboard-<runtime>-*.png`.
 */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { test } from "node:test";
import { toHex } from "../src/auth.ts";
import type { Host } from "../src/cli/mod.ts";
import { httpApp } from "../src/http/mod.ts";
import { Status } from "../src/messages.ts";
import { type Browser, launchChromium, type Page } from "./cdp.ts";
import {
  ADMIN_TOKEN,
  BOB_TOKEN,
  echoTarget,
  repo,
  runtime,
  socksTo,
  startReplicas,
  tunnel,
  until,
} from "./helpers.ts";

const rt = runtime;
const NO_SIDEWAYS =
  "document.scrollingElement.scrollWidth <= document.scrollingElement.clientWidth";

type T = Awaited<ReturnType<typeof tunnel>>;

/** A tunnel with the admin API on, its HTTP app served, and a browser. */
async function board(
  opts: Parameters<typeof tunnel>[0] = {},
  width = 1280,
  height = 800,
): Promise<
  { t: T; base: string; browser: Browser; close(): Promise<void> }
> {
  const { host } = await import(`../runtimes/${rt}/main.ts`) as { host: Host };
  const t = await tunnel({ ...opts, config: { admin: { token: ADMIN_TOKEN }, ...opts.config } });
  const http = await host.serveHttp({ host: "127.0.0.1", port: 0 }, httpApp(t.server).fetch);
  const browser = await launchChromium(t.net, width, height);
  return {
    t,
    base: `http://127.0.0.1:${http.addr.port}`,
    browser,
    async close() {
      await browser.close();
      await http.close();
      await t.close();
    },
  };
}

function shot(name: string, png: Uint8Array): void {
  mkdirSync(`${repo}.state`, { recursive: true });
  writeFileSync(`${repo}.state/dashboard-${rt}-${name}.png`, png);
}

/** Send `n` bytes on a SOCKS stream to the echo target and read them back. */
async function echoBytes(
  conn: { write(b: Uint8Array): Promise<void>; read(): Promise<Uint8Array | null> },
  n: number,
) {
  await conn.write(new Uint8Array(n).fill(0x61));
  let got = 0;
  for (let i = 0; i < 1000 && got < n; i++) {
    const c = await conn.read();
    if (c === null) break;
    got += c.length;
  }
  assert.equal(got, n);
}

const lineOf = (panel: string, series: string) =>
  `document.querySelector('#p-${panel} path.line[data-series="${series}"]')`;

test(`${rt}: dashboard shows agents and live streams in headless Chromium`, async () => {
  const b = await board({}, 1400, 900);
  const { t, base, browser } = b;
  const echo = await echoTarget(t.net);
  try {
    const page = await browser.open(`${base}/#token=${ADMIN_TOKEN}`);
    assert.ok(
      await page.waitFor(`document.querySelector('#agents [data-agent="office"]')`),
      "the agent's row shows",
    );
    assert.match(await page.eval<string>(`document.getElementById("agents").innerText`), /office/);
    // The token left the address bar for session storage; no cookie.
    assert.equal(await page.eval<string>("location.hash"), "");
    assert.equal(
      await page.eval<string>(`sessionStorage.getItem("burrow.admin_token")`),
      ADMIN_TOKEN,
    );
    assert.equal(await page.eval<string>("document.cookie"), "");

    const s = await socksTo(t, echo.addr.port);
    assert.equal(s.reply, 0);
    await echoBytes(s.conn, 15);
    const [id] = [...t.server.router.streams.keys()];
    assert.ok(id !== undefined, "the stream is live");
    const row = `document.querySelector('#streams [data-key="${id}"]')`;
    assert.ok(await page.waitFor(row), "the stream's row appears");
    const text = await page.eval<string>(`${row}.innerText`);
    assert.match(text, /alice → office/);
    assert.match(text, new RegExp(`127\\.0\\.0\\.1:${echo.addr.port}`));

    s.conn.close();
    assert.ok(await page.waitFor(`!${row}`), "the stream's row disappears");

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
    echo.close();
    await b.close();
  }
});

/** Pump bytes through `conn` and sample the series until `cond` holds in the page. */
async function pumpUntil(
  t: T,
  page: Page,
  conn: Parameters<typeof echoBytes>[0],
  cond: string,
): Promise<boolean> {
  for (let i = 0; i < 80; i++) {
    await echoBytes(conn, 32 * 1024);
    t.server.sampleSeries();
    if (await page.waitFor(cond, 400)) return true;
  }
  return false;
}

test(`${rt}: dashboard fits 1280×800 and a phone; its graphs move while bytes flow`, async () => {
  const b = await board();
  const { t, base, browser } = b;
  const echo = await echoTarget(t.net);
  try {
    const page = await browser.open(`${base}/#token=${ADMIN_TOKEN}`);
    assert.ok(await page.waitFor(`document.querySelector('#agents [data-agent="office"]')`));
    assert.ok(await page.eval<boolean>(NO_SIDEWAYS), "no sideways scrolling at 1280×800");
    assert.equal(await page.eval<boolean>(`!!${lineOf("traffic", "office")}`), false);

    // A refusal (bob's grant stops at port 1024), then a stream with bytes flowing.
    const refused = await socksTo(t, 4000, "bob@office", BOB_TOKEN);
    refused.conn.close();
    assert.equal(refused.reply, Status.not_allowed);
    const s = await socksTo(t, echo.addr.port);
    assert.equal(s.reply, Status.succeeded);
    assert.ok(
      await pumpUntil(t, page, s.conn, `Number(${lineOf("traffic", "office")}?.dataset.last) > 0`),
      "the agent's throughput line rises above 0",
    );
    const d1 = await page.eval<string>(`${lineOf("traffic", "office")}.getAttribute("d")`);
    assert.ok(
      await pumpUntil(
        t,
        page,
        s.conn,
        `${lineOf("traffic", "office")}.getAttribute("d") !== ${JSON.stringify(d1)}`,
      ),
      "the line moves with the next samples",
    );
    assert.ok(
      await page.waitFor(`Number(${lineOf("load", "office")}?.dataset.last) === 1`),
      "the open-streams graph shows the one stream",
    );
    // By client: alice's line.
    await page.eval(`document.querySelector('#p-traffic button[data-by="clients"]').click()`);
    assert.ok(await page.waitFor(`Number(${lineOf("traffic", "alice")}?.dataset.last) > 0`));
    // The clients list shows alice's current rate (the server's smoothed one).
    assert.ok(
      await pumpUntil(
        t,
        page,
        s.conn,
        `/↓ [1-9][0-9.]* (B|KiB|MiB)\\/s/.test(document.querySelector('#clients [data-key="alice"]')?.innerText ?? "")`,
      ),
      "the clients list shows alice's current rate",
    );
    // Pointing at the graph's last sample shows each line's value there.
    const svg = `document.querySelector('#p-traffic svg')`;
    await page.eval(
      `${svg}.dispatchEvent(new MouseEvent("mousemove", { clientX: ${svg}.getBoundingClientRect().right - 8 }))`,
    );
    assert.match(
      await page.eval<string>(`document.querySelector('#p-traffic .tip:not(.hidden)')?.innerText`),
      /alice\s+[1-9][0-9.]* (KiB|MiB)\/s/,
    );
    await page.eval(`${svg}.dispatchEvent(new MouseEvent("mouseleave"))`);
    // Refusals by reason, and the latest one with its reason.
    assert.ok(
      await page.waitFor(
        `document.querySelector('#p-refusals [data-reason="connect:not_allowed"]')`,
      ),
      "the refusal shows by reason",
    );
    assert.match(
      await page.eval<string>(`document.querySelector('#p-refusals .latest').innerText`),
      /bob → 127\.0\.0\.1:4000[^]*target outside the grant/,
    );
    assert.ok(await page.eval<boolean>(NO_SIDEWAYS), "still no sideways scrolling");
    shot("1280x800", await page.screenshot());
    await page.view({ width: 1280, height: 800, dark: true });
    shot("1280x800-dark", await page.screenshot());

    await page.view({ width: 390, height: 844, mobile: true });
    assert.ok(await page.waitFor(`document.documentElement.clientWidth === 390`));
    assert.ok(await page.waitFor(NO_SIDEWAYS), "no sideways scrolling at 390×844");
    // The charts are drawn again for the narrow width.
    assert.ok(
      await page.waitFor(`document.querySelector('#p-traffic svg').viewBox.baseVal.width < 390`),
    );
    assert.ok(
      await page.eval<boolean>(
        `${lineOf("traffic", "alice")}.getBoundingClientRect().right <= 390`,
      ),
    );
    shot("390x844", await page.screenshot());
    s.conn.close();
  } finally {
    echo.close();
    await b.close();
  }
});

test(`${rt}: dashboard: two replicas of one agent are rows of their own, disconnected one by one`, async () => {
  const b = await board({ startAgent: false });
  const { t, base, browser } = b;
  const echo = await echoTarget(t.net);
  const replicas = await startReplicas(t, "office");
  try {
    const group = () => t.server.agents.group("office");
    const page = await browser.open(`${base}/#token=${ADMIN_TOKEN}`);
    const rows = `document.querySelectorAll('#agents [data-replica][data-agent="office"]')`;
    assert.ok(await page.waitFor(`${rows}.length === 2`), "one row per replica");

    const s = await socksTo(t, echo.addr.port);
    assert.equal(s.reply, Status.succeeded);
    await echoBytes(s.conn, 5000);
    const [live] = [...t.server.router.streams.values()];
    const busy = toHex(live!.session.instance!);
    const idle = group().map((x) => toHex(x.instance!)).find((x) => x !== busy)!;
    const row = (i: string) => `document.querySelector('#agents [data-replica="${i}"]')`;
    // Each row has its own streams and bytes: the stream's replica 1 and 4.9 KiB, the other 0.
    assert.ok(await page.waitFor(`${row(busy)}.children[3].textContent === "1"`));
    assert.match(await page.eval<string>(`${row(busy)}.children[4].innerText`), /4\.9 KiB/);
    assert.equal(await page.eval<string>(`${row(idle)}.children[3].textContent`), "0");
    assert.match(await page.eval<string>(`${row(idle)}.children[4].innerText`), /↑ 0 B/);
    assert.match(await page.eval<string>(`${row(busy)}.innerText`), new RegExp(busy.slice(0, 8)));
    assert.ok(await page.eval<boolean>(NO_SIDEWAYS));
    // Every disconnect button is whole on screen (they were cut off at 1280 px).
    assert.ok(
      await page.eval<boolean>(
        `[...document.querySelectorAll("#agents button")].every((b) => ` +
          `b.getBoundingClientRect().right <= document.documentElement.clientWidth)`,
      ),
    );
    assert.equal(await page.eval<number>(`document.querySelectorAll("#agents button").length`), 3);
    shot("replicas", await page.screenshot());

    // Disconnect the idle replica from its row (a click, then Confirm): only its session ends.
    const keep = group().find((x) => toHex(x.instance!) === busy)!.key;
    const gone = group().find((x) => toHex(x.instance!) === idle)!.key;
    await page.eval(`${row(idle)}.querySelector("button").click()`);
    assert.ok(await page.waitFor(`${row(idle)}.querySelector("button").textContent === "Confirm"`));
    assert.equal(group().length, 2, "one click only arms the button");
    await page.eval(`${row(idle)}.querySelector("button").click()`);
    assert.ok(
      await until(() => !group().some((x) => x.key === gone)),
      "the idle replica's session ended",
    );
    assert.ok(group().some((x) => x.key === keep), "the other replica's session goes on");
    assert.ok(t.logs.some((l) => l.includes("agent replica disconnected by admin")));
    await echoBytes(s.conn, 100); // the stream on the other replica still flows
    s.conn.close();

    // The API answers 400 for a malformed instance id and 404 for an unknown one.
    const del = (path: string) =>
      fetch(`${base}/api/v1/agents/office/instances/${path}`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      }).then(async (r) => [r.status, (await r.json() as { error: string }).error]);
    assert.deepEqual(await del("zz"), [400, "bad_request"]);
    assert.deepEqual(await del("0".repeat(32)), [404, "not_found"]);
  } finally {
    for (const r of replicas) await r.agent.stop();
    echo.close();
    await b.close();
  }
});
