/**
 * The dashboard's series (src/server/series.ts): rates from counters, a
 * bounded ring, a cap on the number of series, idle series dropped; and the
 * server's `GET /api/v1/series` from its own counters while a real stream
 * runs and a CONNECT is refused.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { httpApp } from "../src/http/mod.ts";
import { Status } from "../src/messages.ts";
import { Metrics } from "../src/metrics.ts";
import {
  MAX_SERIES,
  type Reading,
  Series,
  SERIES_POINTS,
  type SeriesView,
} from "../src/server/series.ts";
import { ADMIN_TOKEN, BOB_TOKEN, echoTarget, runtime, socksTo, tunnel } from "./helpers.ts";

const rt = runtime;
const none = new Map<string, Reading>();
const at = (streams: number, up: number, down: number): Reading => ({ streams, up, down });

test(`${rt}: series: bytes per second between samples, streams as read, refusals per interval`, () => {
  const s = new Series();
  const t0 = 1_700_000_000_000;
  // The first sample sets the baseline: no rate yet, even with bytes from before.
  s.sample({
    agents: new Map([["office", at(1, 500, 500)]]),
    clients: none,
    refusals: new Map([["connect:not_allowed", 2]]),
  }, t0);
  s.sample({
    agents: new Map([["office", at(2, 10_500, 20_500)]]),
    clients: none,
    refusals: new Map([["connect:not_allowed", 5]]),
  }, t0 + 5000);
  const v = s.view();
  assert.deepEqual(v.t, [t0, t0 + 5000]);
  assert.deepEqual(v.agents.office, { streams: [1, 2], up: [0, 2000], down: [0, 4000] });
  assert.deepEqual(v.refusals["connect:not_allowed"], { count: [0, 3] });
  assert.equal(v.interval_ms, 5000);
  assert.equal(v.points, SERIES_POINTS);
});

test(`${rt}: series: the ring keeps ${SERIES_POINTS} points; idle series go after a window`, () => {
  const s = new Series();
  let up = 0;
  for (let i = 0; i < SERIES_POINTS + 20; i++) {
    up += i < 10 ? 1000 : 0; // busy for 10 samples, then idle
    s.sample({ agents: none, clients: new Map([["alice", at(0, up, 0)]]), refusals: new Map() }, i);
    const v = s.view();
    assert.equal(v.t.length, Math.min(i + 1, SERIES_POINTS));
    if (v.clients.alice) assert.equal(v.clients.alice.up.length, v.t.length);
  }
  assert.equal(s.view().t[0], 20, "the oldest points were overwritten");
  assert.equal(s.size, 0, "a series idle for a whole window is dropped");
  assert.equal(s.view().clients.alice, undefined);
});

test(`${rt}: series: at most ${MAX_SERIES} series; the rest are counted, not kept`, () => {
  const left: number[] = [];
  const s = new Series((n) => left.push(n));
  const many = (n: number) => new Map(Array.from({ length: n }, (_, i) => [`c${i}`, at(1, 0, 0)]));
  s.sample({ agents: none, clients: many(MAX_SERIES + 40), refusals: new Map() }, 0);
  s.sample({ agents: none, clients: many(MAX_SERIES + 40), refusals: new Map() }, 5000);
  assert.equal(s.size, MAX_SERIES);
  assert.deepEqual(left, [40, 40]);
  assert.equal(s.view().dropped, 80);
  // Clients without activity take no series at all.
  const quiet = new Series();
  quiet.sample({
    agents: none,
    clients: new Map([["idle", at(0, 0, 0)]]),
    refusals: new Map([["auth:socks", 0]]),
  }, 0);
  assert.equal(quiet.size, 0);
});

test(`${rt}: metrics: sumBy adds a counter's values by one label`, () => {
  const m = new Metrics();
  m.inc("x_total", "x", { port: "socks", status: "2" });
  m.inc("x_total", "x", { port: "clients", status: "2" }, 3);
  m.inc("x_total", "x", { port: "socks", status: "4" });
  m.inc("x_total", "x", { reason: 'a "quoted" \\ one' });
  assert.deepEqual(
    [...m.sumBy("x_total", "status")],
    [["2", 4], ["4", 1], ["", 1]],
  );
  assert.deepEqual([...m.sumBy("x_total", "reason")].find(([k]) => k !== ""), [
    'a "quoted" \\ one',
    1,
  ]);
  assert.deepEqual([...m.sumBy("nothing_total", "status")], []);
});

test(`${rt}: GET /api/v1/series: the server's own counters, sampled while a stream runs`, async () => {
  const t = await tunnel({ config: { admin: { token: ADMIN_TOKEN } } });
  const echo = await echoTarget(t.net);
  const app = httpApp(t.server);
  const get = async (token = ADMIN_TOKEN) => {
    const r = await app.fetch(
      new Request("http://burrow/api/v1/series", { headers: { authorization: `Bearer ${token}` } }),
    );
    return { status: r.status, body: await r.json() as SeriesView };
  };
  try {
    assert.equal((await get("wrong-token-0123456789")).status, 401);
    const refused = await socksTo(t, 4000, "bob@office", BOB_TOKEN);
    refused.conn.close();
    assert.equal(refused.reply, Status.not_allowed);
    const s = await socksTo(t, echo.addr.port);
    assert.equal(s.reply, Status.succeeded);
    await s.conn.write(new Uint8Array(3000));
    let got = 0;
    for (let i = 0; i < 100 && got < 3000; i++) got += (await s.conn.read())?.length ?? 3000;
    t.server.sampleSeries(Date.now() + 1000);
    const { status, body } = await get();
    assert.equal(status, 200);
    const office = body.agents.office!;
    assert.equal(office.streams.at(-1), 1);
    assert.ok(office.up.at(-1)! > 0 && office.down.at(-1)! > 0, JSON.stringify(office));
    assert.ok(body.clients.alice!.up.at(-1)! > 0);
    assert.equal(body.refusals["connect:not_allowed"]!.count.at(-1), 1);
    assert.equal(body.t.length, 2, "the sample at start and this one");
    s.conn.close();
  } finally {
    echo.close();
    await t.close();
  }
});
