/**
 * /metrics read by a real Prometheus text-format parser
 * (parse-prometheus-text-format, a port of the Prometheus Python client's
 * parser): families, types, labels and values, histograms included.
 *
 * One limitation of that parser: it folds all series of a histogram family
 * into one object keyed by `le` alone (its `flattenMetrics`), losing the
 * other labels and the labelled `_sum`/`_count`. So a histogram's type is
 * checked on the normal parse, and its series are read by parsing the same
 * text again without that family's `# TYPE` line: then `_bucket`, `_sum` and
 * `_count` come back as plain samples with all their labels.
 */
import { VERSION_MAX } from "../src/messages.ts";
import assert from "node:assert/strict";
import { test } from "node:test";
import parsePrometheusTextFormat, {
  type MetricFamily,
  type Sample,
} from "parse-prometheus-text-format";
import { tokenCredential, transcript } from "../src/auth.ts";
import { httpApp } from "../src/http/mod.ts";
import { targetOf } from "../src/ip.ts";
import { Metrics } from "../src/metrics.ts";
import { parseRule } from "../src/policy.ts";
import { VERSION } from "../src/version.ts";
import { Wire } from "../src/wire.ts";
import {
  AGENT_TOKEN,
  BOB_TOKEN,
  echoTarget,
  runtime,
  socks,
  socksTo,
  tunnel,
  until,
} from "./helpers.ts";

const rt = runtime;

function family(all: MetricFamily[], name: string, type: MetricFamily["type"]): MetricFamily {
  const f = all.find((x) => x.name === name);
  assert.ok(f, `family ${name} is exposed`);
  assert.equal(f.type, type, `${name} is a ${type}`);
  assert.ok(f.help.length > 0, `${name} has help`);
  return f;
}

function sample(f: MetricFamily, labels: Record<string, string>): Sample {
  const s = f.metrics.find((m) =>
    "value" in m && Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)
  );
  assert.ok(s && "value" in s, `${f.name}${JSON.stringify(labels)} is exposed`);
  return s;
}

interface Histogram {
  /** Cumulative count by `le`, in exposition order. */
  buckets: Array<[string, number]>;
  sum: number;
  count: number;
}

/** One series of histogram `name` in `text`: its type from the parse, its samples (see above). */
function histogram(text: string, name: string, labels: Record<string, string>): Histogram {
  family(parsePrometheusTextFormat(text), name, "HISTOGRAM");
  const untyped = parsePrometheusTextFormat(
    text.split("\n").filter((l) => l !== `# TYPE ${name} histogram`).join("\n"),
  );
  const series = (suffix: string) => {
    // Series of one family alternate _bucket, _sum, _count: each run is a family of its own.
    const runs = untyped.filter((x) => x.name === `${name}${suffix}`);
    assert.ok(runs.length > 0, `${name}${suffix} is exposed`);
    return runs.flatMap((f) => f.metrics as Sample[]).filter((m) =>
      Object.keys(m.labels ?? {}).filter((k) => k !== "le").length ===
        Object.keys(labels).length &&
      Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)
    );
  };
  const buckets = series("_bucket").map((m): [string, number] => [
    m.labels?.le ?? "?",
    Number(m.value),
  ]);
  const [sum] = series("_sum");
  const [count] = series("_count");
  assert.ok(buckets.length > 0 && sum && count, `${name}${JSON.stringify(labels)} is exposed`);
  return { buckets, sum: Number(sum.value), count: Number(count.value) };
}

/** Buckets ascend, are cumulative, end in +Inf = count; the sum is plausible. */
function checkHistogram(h: Histogram, count: number, maxSum: number): void {
  assert.equal(h.count, count);
  assert.ok(h.buckets.length >= 5, "several buckets");
  const last = h.buckets[h.buckets.length - 1]!;
  assert.deepEqual(last, ["+Inf", count]);
  let prevLe = -Infinity;
  let prev = 0;
  for (const [le, n] of h.buckets) {
    const bound = le === "+Inf" ? Infinity : Number(le);
    assert.ok(bound > prevLe, `le=${le} ascends`);
    assert.ok(n >= prev, `bucket le=${le} is cumulative`);
    prevLe = bound;
    prev = n;
  }
  assert.ok(h.sum >= 0 && h.sum <= maxSum, `sum ${h.sum} within 0..${maxSum}`);
}

test("metrics: the renderer's histogram and escaping survive a real parser", () => {
  const m = new Metrics();
  m.observe("x_seconds", "X", 0.003, { port: 'a"b\\c\nd' }, [0.001, 0.01, 1]);
  m.observe("x_seconds", "X", 5, { port: 'a"b\\c\nd' });
  m.inc("y_total", "Y", {}, 2);
  m.counter("z_total", "Z", () => [[{ k: "v" }, 7]]);
  m.observe("x_seconds", "X", 0.5, { port: "other" });
  const text = m.render();
  const parsed = parsePrometheusTextFormat(text);
  const h = histogram(text, "x_seconds", { port: 'a"b\\c\nd' });
  assert.deepEqual(h.buckets, [["0.001", 0], ["0.01", 1], ["1", 1], ["+Inf", 2]]);
  assert.equal(h.sum, 5.003);
  assert.equal(h.count, 2);
  assert.deepEqual(histogram(text, "x_seconds", { port: "other" }).buckets, [
    ["0.001", 0],
    ["0.01", 0],
    ["1", 1],
    ["+Inf", 1],
  ]);
  assert.equal(sample(family(parsed, "y_total", "COUNTER"), {}).value, "2");
  assert.equal(sample(family(parsed, "z_total", "COUNTER"), { k: "v" }).value, "7");
});

test("metrics: labels are one series whatever their order, rendered sorted", () => {
  const m = new Metrics();
  m.inc("w_total", "W", { b: "2", a: "1", c: 'q"' });
  m.inc("w_total", "W", { c: 'q"', a: "1", b: "2" }, 4);
  assert.equal(m.get("w_total", { a: "1", c: 'q"', b: "2" }), 5);
  assert.match(m.render(), /^w_total\{a="1",b="2",c="q\\""\} 5$/m);
});

test("metrics: counterOf and histogramOf render exactly as inc and observe do", () => {
  const a = new Metrics();
  const b = new Metrics();
  const values = [0.0005, 0.003, 0.5, 7, 0.01, 0.01, 100];
  for (const v of values) a.observe("s_seconds", "S", v, { port: "socks", result: "ok" });
  const h = b.histogramOf("s_seconds", "S", { result: "ok", port: "socks" });
  for (const v of values) h(v);
  a.inc("c_total", "C", { agent: "x" });
  a.inc("c_total", "C", { agent: "x" }, 41);
  const c = b.counterOf("c_total", "C", { agent: "x" });
  c();
  c(41);
  assert.equal(b.render(), a.render());
  assert.equal(b.get("c_total", { agent: "x" }), 42);
  // A handle and inc() of the same label set share one series.
  c();
  b.inc("c_total", "C", { agent: "x" });
  assert.equal(b.get("c_total", { agent: "x" }), 44);
  assert.deepEqual(histogram(b.render(), "s_seconds", { port: "socks", result: "ok" }).count, 7);
});

test(`${rt}: /metrics parses; setup and duration histograms, bytes per agent and client, pool waits and timeouts, build info`, async () => {
  const t = await tunnel({ config: { pool: { min: 2, max: 32, wait: "300ms", idle: "600ms" } } });
  const echo = await echoTarget(t.net);
  // A fake agent "lab" that logs in and announces, but never opens a pool connection.
  const lab = new Wire(await t.net.dial(t.server.addrs.agents!));
  try {
    await lab.send({
      type: "AGENT_HELLO",
      minVersion: 1,
      maxVersion: 1,
      authMethod: 1,
      name: "lab",
      software: "fake-lab/1",
    });
    const ch = await lab.expect("CHALLENGE");
    await lab.send({
      type: "AUTH",
      proof: await tokenCredential(AGENT_TOKEN).prove(
        transcript("agent", ch.version, ch.nonce, "lab"),
      ),
    });
    await lab.expect("WELCOME");
    await lab.send({ type: "ANNOUNCE", rules: parseRule("127.0.0.1:*") });
    assert.ok(await until(() => (t.server.agents.sessions.get("lab")?.rules.length ?? 0) > 0));

    // One stream through office: 500 bytes up, 500 down.
    const s = await socksTo(t, echo.addr.port);
    assert.equal(s.reply, 0);
    await s.conn.write(new Uint8Array(500));
    let got = 0;
    while (got < 500) got += (await s.conn.read())?.length ?? 500;
    // While it is live, its bytes already count.
    const live = parsePrometheusTextFormat(t.server.metrics.render());
    const liveUp = sample(family(live, "burrow_client_bytes_total", "COUNTER"), {
      client: "alice",
      direction: "up",
    });
    assert.equal(liveUp.value, "500");
    s.conn.close();
    assert.ok(await until(() => t.server.router.active === 0));

    // A CONNECT through lab waits for a pool connection that never comes.
    const w = await socks(t.net, t.socks, "bob@lab", BOB_TOKEN, targetOf("127.0.0.1", 80));
    assert.equal(w.reply, 4);
    w.conn.close();

    const res = await httpApp(t.server).fetch(new Request("http://127.0.0.1/metrics"));
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const all = parsePrometheusTextFormat(text);

    const build = sample(family(all, "burrow_build_info", "GAUGE"), {});
    assert.equal(build.value, "1");
    assert.deepEqual(
      { ...build.labels, runtime_version: "-" },
      {
        version: VERSION,
        runtime: rt,
        runtime_version: "-",
        protocol_min: "1",
        protocol_max: String(VERSION_MAX),
      },
    );

    const setup = "burrow_stream_setup_seconds";
    checkHistogram(histogram(text, setup, { port: "socks", result: "ok" }), 1, 5);
    const refused = histogram(text, setup, { port: "socks", result: "refused" });
    checkHistogram(refused, 1, 5);
    assert.ok(refused.sum >= 0.25, "the refused CONNECT waited pool.wait");
    checkHistogram(histogram(text, "burrow_stream_duration_seconds", {}), 1, 60);
    checkHistogram(histogram(text, "burrow_pool_wait_seconds", {}), 1, 5);

    const agentBytes = family(all, "burrow_agent_bytes_total", "COUNTER");
    assert.equal(sample(agentBytes, { agent: "office", direction: "up" }).value, "500");
    assert.equal(sample(agentBytes, { agent: "office", direction: "down" }).value, "500");
    const clientBytes = family(all, "burrow_client_bytes_total", "COUNTER");
    assert.equal(sample(clientBytes, { client: "alice", direction: "up" }).value, "500");
    assert.equal(sample(clientBytes, { client: "alice", direction: "down" }).value, "500");
    const bytes = family(all, "burrow_bytes_total", "COUNTER");
    assert.equal(sample(bytes, { direction: "up" }).value, "500");

    const waits = family(all, "burrow_pool_waits_total", "COUNTER");
    assert.equal(sample(waits, { agent: "lab" }).value, "1");
    assert.equal(
      sample(family(all, "burrow_pool_timeouts_total", "COUNTER"), { agent: "lab" }).value,
      "1",
    );
    assert.equal(
      sample(family(all, "burrow_connects_refused_total", "COUNTER"), {
        port: "socks",
        status: "4",
      }).value,
      "1",
    );
    assert.equal(
      sample(family(all, "burrow_streams_total", "COUNTER"), { agent: "office" }).value,
      "1",
    );
    assert.equal(sample(family(all, "burrow_agents_connected", "GAUGE"), {}).value, "2");
    assert.equal(sample(family(all, "burrow_streams_active", "GAUGE"), {}).value, "0");
    family(all, "burrow_pool_idle", "GAUGE");
  } finally {
    lab.conn.close();
    echo.close();
    await t.close();
  }
});
