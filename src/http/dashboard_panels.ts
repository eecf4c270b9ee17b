/**
 * The dashboard's panels (part of its one inline script, dashboard.ts), in
 * the order they show: the key numbers; throughput and open streams over the
 * last 15 minutes, by agent or by client; agents grouped with their replicas
 * (each with its instance, streams, bytes, and a disconnect of its own; in a
 * fleet, a replica on a server that did not answer is marked unreachable,
 * from the store's presence, without counts);
 * refusals by reason; live streams; clients (each with its current rate
 * and bandwidth limit); UDP associations; issued tokens (each with a
 * revoke of its own). Each is one `register` call
 * (dashboard_script.ts says what a panel is).
 *
 * @module
 */

/** Script text: one `register({...})` per panel. */
export const PANELS_SCRIPT = `
function kpi(label) {
  const box = el("div", "kpi");
  const value = el("div", "value", "–");
  const sub = el("div", "sub", "");
  box.append(el("div", "label", label), value, sub);
  return { box, value, sub, set(v, s, alert) { value.textContent = v; sub.textContent = s; box.classList.toggle("alert", !!alert); } };
}

function refusedIn(series, prefix) {
  let n = 0;
  for (const [k, s] of Object.entries((series && series.refusals) || {})) {
    if (k.startsWith(prefix)) n += s.count.reduce((a, b) => a + b, 0);
  }
  return n;
}

register({
  id: "kpis",
  span: 12,
  mount(p) {
    const wrap = el("div", "kpis");
    this.k = { agents: kpi("Agents"), streams: kpi("Open streams"), clients: kpi("Clients"),
      rate: kpi("Throughput"), refused: kpi("Refused, 15 min") };
    for (const k of Object.values(this.k)) wrap.appendChild(k.box);
    p.body.appendChild(wrap);
  },
  update(c) {
    const s = c.snap;
    const names = new Set(s.agents.map((a) => a.name));
    this.k.agents.set(names.size, s.agents.length + " replica" + (s.agents.length === 1 ? "" : "s"));
    const all = Object.values((c.series && c.series.agents) || {}).map((a) => a.streams);
    const peak = Math.max(s.streams.length, ...(all.length ? all.reduce(sumFields) : []));
    this.k.streams.set(s.streams.length, "peak " + peak + " in 15 min");
    const active = s.clients.filter((x) => x.streams > 0).length;
    this.k.clients.set(active + " active", "of " + s.clients.length);
    this.k.rate.set(rate(c.rates.up + c.rates.down), "↑ " + rate(c.rates.up) + "  ↓ " + rate(c.rates.down));
    const refused = refusedIn(c.series, "connect:");
    const logins = refusedIn(c.series, "auth:");
    this.k.refused.set(refused, logins + " failed login" + (logins === 1 ? "" : "s"), refused + logins > 0);
  },
});

function chartPanel(id, title, pick, fmt, isBytes, empty) {
  register({
    id,
    title,
    span: 6,
    by: "agents",
    mount(p) {
      const seg = el("span", "seg");
      for (const [by, label] of [["agents", "By agent"], ["clients", "By client"]]) {
        const b = el("button", "", label);
        b.type = "button";
        b.dataset.by = by;
        b.addEventListener("click", () => { this.by = by; updatePanels(); });
        seg.appendChild(b);
      }
      p.tools.appendChild(seg);
      this.seg = seg;
      this.box = el("div", "chart");
      this.legend = el("div", "legend");
      p.body.append(this.box, this.legend);
    },
    update(c) {
      for (const b of this.seg.children) b.setAttribute("aria-pressed", String(b.dataset.by === this.by));
      const s = c.series || { t: [], agents: {}, clients: {} };
      const what = this.by === "agents" ? "agent" : "client";
      lineChart(this.box, this.legend, s.t, topSeries(s[this.by], pick), fmt, isBytes, empty + " " + what);
      this.box.dataset.by = this.by;
    },
  });
}

chartPanel("traffic", "Throughput", (f) => sumFields(f.up, f.down), rate, true, "No bytes in the last 15 minutes, by");
chartPanel("load", "Open streams", (f) => f.streams, count, false, "No streams in the last 15 minutes, by");

/**
 * A panel holding one list (fillList) with the element id of the panel's id:
 * def.cols, def.empty, and def.rows(ctx) -> { count, rows }.
 */
function listPanel(def) {
  register(Object.assign(def, {
    mount(p) {
      this.p = p;
      this.list = el("div");
      this.list.id = def.id;
      p.body.appendChild(this.list);
    },
    update(c) {
      const v = def.rows(c);
      this.p.count.textContent = v.count;
      fillList(this.list, def.cols, v.rows, def.empty);
    },
  }));
}

/** A replica on a fleet server that did not answer: what the store's presence knows, no counts. */
function presenceRow(name, r) {
  return { cls: "replica unreachable", data: { replica: r.session, agent: name, source: "presence" }, cells: [
    ["session " + r.session, "unreachable · " + r.server], ["its server did not answer", "from the store's presence · up " + age(r.connected_since)],
    "–", "–", "–", "–", "",
  ] };
}

listPanel({
  id: "agents",
  title: "Agents",
  span: 8,
  cols: [
    { label: "Agent / instance", w: "minmax(0, 1.3fr)", cls: "name" },
    { label: "Rules / software", w: "minmax(0, 1.6fr)", cls: "wide" },
    { label: "Pool", w: "64px", cls: "num" }, { label: "Streams", w: "58px", cls: "num" },
    { label: "Bytes", w: "86px", cls: "num" }, { label: "Now · 15 min", w: "minmax(84px, .8fr)", cls: "num" },
    { label: "", w: "104px", cls: "act" },
  ],
  empty: "No agent connected. Start one with: burrow agent --server … --name …",
  rows(c) {
    const groups = new Map();
    for (const a of c.snap.agents) {
      if (!groups.has(a.name)) groups.set(a.name, []);
      groups.get(a.name).push(a);
    }
    const count = groups.size + " · " + c.snap.agents.length + " replica" + (c.snap.agents.length === 1 ? "" : "s");
    const rows = [];
    for (const [name, all] of groups) {
      const rs = all.filter((r) => r.source !== "presence");
      const sum = (f) => rs.reduce((n, r) => n + f(r), 0);
      const series = c.series && c.series.agents[name];
      const label = el("span", "", name);
      label.appendChild(el("span", "badge", all.length + (all.length === 1 ? " replica" : " replicas")));
      const rules = [...new Set(rs.flatMap((r) => r.rules))].join("  ");
      rows.push({ cls: "group", data: { agent: name }, cells: [
        label, el("span", "rules mono", rules || "nothing announced yet"),
        sum((r) => r.pool.idle) + " / " + sum((r) => r.pool.target), sum((r) => r.streams),
        ["↑ " + bytes(sum((r) => r.bytes_up)), "↓ " + bytes(sum((r) => r.bytes_down))],
        series ? spark(sumFields(series.up, series.down)) : spark([]),
        rs.length === 0 ? "" : confirmButton("agent:" + name, rs.length > 1 ? "Disconnect all" : "Disconnect",
          "End every session of " + name + " (GOAWAY); it reconnects after its backoff",
          () => api("DELETE", "agents/" + encodeURIComponent(name))),
      ] });
      for (const r of rs) {
        const rt = c.rates.replicas.get(r.session) || { up: 0, down: 0 };
        const id = r.instance ? r.instance.slice(0, 8) : "session " + r.session;
        rows.push({ cls: "replica", data: { replica: r.instance || r.session, agent: name }, cells: [
          [id, (r.server ? r.server + " · " : "") + r.remote], [r.software, "protocol " + r.protocol + " · up " + age(r.connected_since)],
          r.pool.idle + " / " + r.pool.target, r.streams,
          ["↑ " + bytes(r.bytes_up), "↓ " + bytes(r.bytes_down)],
          ["↑ " + rate(rt.up), "↓ " + rate(rt.down)],
          r.instance && rs.length > 1
            ? confirmButton("replica:" + r.instance, "Disconnect", "End only this replica's session (" + r.instance + ")",
              () => api("DELETE", "agents/" + encodeURIComponent(name) + "/instances/" + r.instance))
            : "",
        ] });
      }
      for (const r of all) if (r.source === "presence") rows.push(presenceRow(name, r));
    }
    return { count, rows };
  },
});

const REASON_KINDS = [["connect:", "CONNECT refused"], ["auth:", "Login failed"], ["limit:", "Limit hit"]];

register({
  id: "refusals",
  title: "Refusals",
  span: 4,
  mount(p) {
    this.p = p;
    p.count.textContent = "last 15 min";
    this.reasons = el("div", "reasons");
    this.latest = el("div", "latest");
    p.body.append(this.reasons, this.latest);
  },
  update(c) {
    const all = Object.entries((c.series && c.series.refusals) || {})
      .map(([k, s]) => ({ k, values: s.count, n: s.count.reduce((a, b) => a + b, 0) })).filter((r) => r.n > 0);
    const out = [];
    for (const [prefix, title] of REASON_KINDS) {
      const mine = all.filter((r) => r.k.startsWith(prefix)).sort((a, b) => b.n - a.n);
      if (mine.length === 0) continue;
      out.push(el("div", "kind", title));
      for (const r of mine) {
        const row = el("div", "reason");
        row.dataset.reason = r.k;
        row.append(el("div", "cell", r.k.slice(prefix.length).replace(/_/g, " ")), bars(r.values), el("div", "count", r.n));
        out.push(row);
      }
    }
    if (out.length === 0) out.push(el("div", "empty", "Nothing refused in the last 15 minutes."));
    this.reasons.replaceChildren(...out);
    const latest = c.snap.refusals.slice(0, 5).map((r) => {
      const item = el("div", "item");
      const who = r.client || "(no client)";
      item.append(el("div", "what", who + " → " + (r.target || "–") + (r.agent ? " via " + r.agent : "") + " · " + age(r.at) + " ago"),
        el("div", "why", "0x0" + r.status.toString(16) + " " + r.reason));
      item.title = item.textContent;
      return item;
    });
    this.latest.classList.toggle("hidden", latest.length === 0);
    this.latest.replaceChildren(el("div", "kind", "Latest"), ...latest);
  },
});

listPanel({
  id: "streams",
  title: "Live streams",
  span: 8,
  cols: [
    { label: "Client → agent", w: "minmax(0, 1fr)", cls: "name" },
    { label: "Target", w: "minmax(0, 1.4fr)", cls: "wide" }, { label: "Age", w: "64px", cls: "num" },
    { label: "Bytes", w: "86px", cls: "num" }, { label: "", w: "64px", cls: "act" },
  ],
  empty: "No live stream.",
  rows(c) {
    const s = c.snap.streams;
    // In a fleet (README "A fleet of servers") ids are each server's own: \`server\` says whose.
    const on = (t) => t.server ? "?server=" + encodeURIComponent(t.server) : "";
    return { count: String(s.length), rows: s.map((t) => ({ data: { key: t.server ? t.server + "#" + t.id : String(t.id) }, cells: [
      [t.client + " → " + t.agent, "#" + t.id + " · " + t.port + (t.server ? " · " + t.server : "")], t.target, age(t.since),
      ["↑ " + bytes(t.bytes_up), "↓ " + bytes(t.bytes_down)],
      confirmButton("stream:" + t.id, "Close", "Close both ends of stream " + t.id, () => api("DELETE", "streams/" + t.id + on(t))),
    ] })) };
  },
});

/** A client's current rate one way, with its bandwidth limit if it has one. */
const nowRate = (arrow, r, limit) => arrow + rate(r) + (limit ? " / " + rate(limit) : "");

listPanel({
  id: "clients",
  title: "Clients",
  span: 4,
  cols: [
    { label: "Client", w: "minmax(0, 1fr)", cls: "name" }, { label: "Streams", w: "54px", cls: "num" },
    { label: "Now", w: "minmax(76px, .8fr)", cls: "num" }, { label: "15 min", w: "minmax(50px, .8fr)", cls: "" },
  ],
  empty: "No client configured.",
  rows(c) {
    const s = c.snap.clients;
    return { count: String(s.length), rows: s.map((x) => {
      const series = c.series && c.series.clients[x.name];
      return { data: { key: x.name }, cells: [
        [x.name + (x.configured ? "" : " (removed)"), "↑ " + bytes(x.bytes_up) + "  ↓ " + bytes(x.bytes_down)],
        x.streams, [nowRate("↑ ", x.rate_up, x.limit_up), nowRate("↓ ", x.rate_down, x.limit_down)],
        series ? spark(sumFields(series.up, series.down)) : spark([]),
      ] };
    }) };
  },
});

listPanel({
  id: "associations",
  title: "UDP associations",
  span: 12,
  cols: [
    { label: "Client → agent", w: "minmax(0, 1fr)", cls: "name" },
    { label: "Relay", w: "minmax(0, 1fr)", cls: "wide" }, { label: "Age", w: "64px", cls: "num" },
    { label: "Datagrams", w: "96px", cls: "num" }, { label: "Bytes", w: "86px", cls: "num" },
    { label: "Dropped", w: "64px", cls: "num" },
  ],
  empty: "No UDP association.",
  rows(c) {
    const a = c.snap.associations || [];
    return { count: String(a.length), rows: a.map((x) => ({ data: { key: String(x.stream) }, cells: [
      [x.client + " → " + x.agent, "#" + x.stream + " · " + x.port], x.relay || "client proxy", age(x.since),
      ["↑ " + x.datagrams_up, "↓ " + x.datagrams_down],
      ["↑ " + bytes(x.bytes_up), "↓ " + bytes(x.bytes_down)], x.dropped,
    ] })) };
  },
});

/** How long until \`iso\` (a time ahead): age() mirrored around now. */
const left = (iso) => age(new Date(2 * Date.now() - Date.parse(iso)).toISOString());

listPanel({
  id: "tokens",
  title: "Issued tokens",
  span: 12,
  cols: [
    { label: "Subject", w: "minmax(0, 1fr)", cls: "name" }, { label: "Id", w: "minmax(0, 1.2fr)", cls: "wide" },
    { label: "Expires in", w: "96px", cls: "num" }, { label: "Streams", w: "58px", cls: "num" },
    { label: "", w: "74px", cls: "act" },
  ],
  empty: "No active issued token (burrow tokens issue).",
  rows(c) {
    const t = c.snap.tokens || [];
    return { count: String(t.length), rows: t.map((x) => ({ data: { key: x.id, token: x.id }, cells: [
      [x.subject, x.kind], x.id, left(x.expires_at),
      c.snap.streams.filter((s) => s.token === x.id).length,
      confirmButton("token:" + x.id, "Revoke", "Revoke token " + x.id + " of " + x.subject + " (its streams close)",
        () => api("DELETE", "tokens/" + x.id)),
    ] })) };
  },
});`;
