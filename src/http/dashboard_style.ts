/**
 * The dashboard's CSS (dashboard.ts inlines it): a 12-column grid of
 * panels that becomes one column on a phone, light and dark by
 * `prefers-color-scheme`, lists that fit their panel (long text is cut
 * with an ellipsis, never scrolled sideways) and turn into two-column cards
 * below 760 px.
 *
 * @module
 */

/** The page's style sheet. */
export const STYLE = `
:root { color-scheme: light dark;
  --bg: #f6f7f9; --panel: #ffffff; --fg: #1b1f24; --mute: #687281; --faint: #98a1ad;
  --line: #e4e7eb; --soft: #f0f2f5; --ok: #16803c; --warn: #b45309; --bad: #c0262d;
  --accent: #2563eb; --grid: #eceef1;
  --c0: #2563eb; --c1: #0d9488; --c2: #d97706; --c3: #7c3aed; --c4: #db2777; --c5: #8a94a3;
  --shadow: 0 1px 2px rgba(16, 24, 40, .04), 0 1px 3px rgba(16, 24, 40, .06); }
@media (prefers-color-scheme: dark) { :root {
  --bg: #0f1115; --panel: #171a20; --fg: #e6e8eb; --mute: #98a1ad; --faint: #6b7380;
  --line: #262a32; --soft: #1e2229; --ok: #4ade80; --warn: #fbbf24; --bad: #f87171;
  --accent: #60a5fa; --grid: #22262d;
  --c0: #60a5fa; --c1: #2dd4bf; --c2: #fbbf24; --c3: #a78bfa; --c4: #f472b6; --c5: #8b94a3;
  --shadow: none; } }
* { box-sizing: border-box; }
html, body { margin: 0; }
body { font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  background: var(--bg); color: var(--fg); font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, "SF Mono", Menlo, Consolas, monospace; font-size: 12px; }
button { font: inherit; font-size: 12px; padding: 3px 10px; border: 1px solid var(--line);
  border-radius: 6px; background: var(--panel); color: var(--fg); cursor: pointer;
  white-space: nowrap; }
button:hover { border-color: var(--faint); }
button.danger:hover, button.armed { border-color: var(--bad); color: var(--bad); }
button.armed { background: color-mix(in srgb, var(--bad) 10%, var(--panel)); }
.hidden { display: none !important; }

header.top { position: sticky; top: 0; z-index: 2; display: flex; align-items: center;
  gap: 12px; padding: 10px 20px; background: var(--panel); border-bottom: 1px solid var(--line); }
.brand { font-weight: 650; font-size: 15px; letter-spacing: .01em; }
.pill { display: inline-flex; align-items: center; gap: 6px; padding: 2px 9px;
  border-radius: 999px; font-size: 12px; background: var(--soft); color: var(--mute); }
.pill::before { content: ""; width: 7px; height: 7px; border-radius: 50%; background: var(--faint); }
.pill.ok { color: var(--ok); } .pill.ok::before { background: var(--ok); }
.pill.bad { color: var(--bad); } .pill.bad::before { background: var(--bad); }
#meta { color: var(--mute); min-width: 0; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; }
.spacer { flex: 1; }
#updated { color: var(--faint); white-space: nowrap; }

main { padding: 16px 20px 32px; }
.grid { display: grid; grid-template-columns: repeat(12, minmax(0, 1fr)); gap: 16px; }
.panel { grid-column: span 12; min-width: 0; background: var(--panel);
  border: 1px solid var(--line); border-radius: 10px; box-shadow: var(--shadow); }
.panel.span-8 { grid-column: span 8; } .panel.span-6 { grid-column: span 6; }
.panel.span-4 { grid-column: span 4; }
.panel > h2 { display: flex; align-items: center; gap: 8px; margin: 0; padding: 10px 14px;
  font-size: 13px; font-weight: 600; border-bottom: 1px solid var(--line); }
.panel > h2 .n { color: var(--faint); font-weight: 500; }
.panel > h2 .tools { margin-left: auto; display: flex; gap: 8px; align-items: center;
  font-weight: 400; }
.panel .body { padding: 10px 14px 12px; min-width: 0; }
.panel.bare { background: transparent; border: 0; box-shadow: none; }
.panel.bare .body { padding: 0; }

.seg { display: inline-flex; border: 1px solid var(--line); border-radius: 6px; overflow: hidden; }
.seg button { border: 0; border-radius: 0; padding: 2px 9px; color: var(--mute);
  background: transparent; }
.seg button[aria-pressed="true"] { background: var(--soft); color: var(--fg); }

.kpis { display: grid; grid-template-columns: repeat(5, minmax(0, 1fr)); gap: 16px; }
.kpi { background: var(--panel); border: 1px solid var(--line); border-radius: 10px;
  padding: 10px 14px; box-shadow: var(--shadow); min-width: 0; }
.kpi .label { color: var(--mute); font-size: 12px; }
.kpi .value { font-size: 22px; font-weight: 600; line-height: 1.3; white-space: nowrap;
  overflow: hidden; text-overflow: ellipsis; }
.kpi .sub { color: var(--faint); font-size: 12px; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
.kpi.alert .value { color: var(--bad); }

.chart { position: relative; height: 190px; }
.chart svg { display: block; width: 100%; height: 100%; overflow: visible; }
.chart .axis { fill: var(--faint); font-size: 10px; }
.chart .gridline { stroke: var(--grid); stroke-width: 1; }
.chart .line { fill: none; stroke-width: 1.6; stroke-linejoin: round; }
.chart .area { stroke: none; opacity: .08; }
.chart .empty { fill: var(--faint); font-size: 12px; }
.chart .cross { stroke: var(--faint); stroke-width: 1; stroke-dasharray: 3 3; }
.chart .tip { position: absolute; top: 4px; pointer-events: none; min-width: 140px;
  background: var(--panel); border: 1px solid var(--line); border-radius: 8px;
  padding: 6px 9px; font-size: 12px; box-shadow: 0 4px 12px rgba(16, 24, 40, .12); }
.chart .tip .when { color: var(--mute); margin-bottom: 3px; }
.chart .tip div { display: flex; align-items: center; gap: 6px; white-space: nowrap; }
.chart .tip b { margin-left: auto; padding-left: 12px; font-weight: 600; }
.chart .tip i { width: 8px; height: 8px; border-radius: 2px; display: inline-block; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin-top: 6px; color: var(--mute);
  font-size: 12px; }
.legend span { display: inline-flex; align-items: center; gap: 6px; min-width: 0; }
.legend i { width: 10px; height: 3px; border-radius: 2px; display: inline-block; }
.legend b { color: var(--fg); font-weight: 500; }
.k0 { stroke: var(--c0); fill: var(--c0); background: var(--c0); }
.k1 { stroke: var(--c1); fill: var(--c1); background: var(--c1); }
.k2 { stroke: var(--c2); fill: var(--c2); background: var(--c2); }
.k3 { stroke: var(--c3); fill: var(--c3); background: var(--c3); }
.k4 { stroke: var(--c4); fill: var(--c4); background: var(--c4); }
.k5 { stroke: var(--c5); fill: var(--c5); background: var(--c5); }
svg.spark { display: block; width: 100%; height: 22px; }
svg.spark path { fill: none; stroke: var(--accent); stroke-width: 1.3; }
svg.spark path.fill { fill: var(--accent); stroke: none; opacity: .12; }

.list { display: grid; min-width: 0; }
.list .head, .list .row { display: grid; grid-template-columns: var(--cols); gap: 10px;
  align-items: center; padding: 6px 2px; border-bottom: 1px solid var(--line); min-width: 0; }
.list .head { color: var(--mute); font-size: 12px; font-weight: 500; padding-top: 0; }
.list .row:last-child { border-bottom: 0; }
.list .cell { min-width: 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.list .num { text-align: right; }
.list .act { text-align: right; overflow: visible; }
.list .sub { color: var(--faint); font-size: 12px; overflow: hidden; text-overflow: ellipsis; }
.list .group { background: var(--soft); border-radius: 6px; border-bottom: 0; margin-top: 6px;
  padding: 7px 8px; }
.list .group:first-of-type { margin-top: 0; }
.list .group .cell.name { font-weight: 600; }
.list .replica .cell.name { padding-left: 14px; }
.badge { display: inline-block; padding: 0 7px; border-radius: 999px; font-size: 11px;
  background: var(--panel); color: var(--mute); border: 1px solid var(--line);
  font-weight: 500; margin-left: 6px; }
.list .unreachable { color: var(--mute); }
.list .unreachable .cell.name .sub { color: var(--bad); }
.rules { color: var(--mute); }
.empty { color: var(--faint); padding: 14px 2px; }
.up { color: var(--c0); } .down { color: var(--c1); }

.reasons { display: grid; gap: 2px; }
.reason { display: grid; grid-template-columns: minmax(0, 1fr) 120px 40px; gap: 10px;
  align-items: center; padding: 4px 0; }
.reason .cell { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.reason .count { text-align: right; font-weight: 600; }
.reasons .kind, .latest .kind { color: var(--faint); font-size: 11px; text-transform: uppercase;
  letter-spacing: .04em; margin: 8px 0 2px; }
.reasons .kind:first-child, .latest .kind:first-child { margin-top: 0; }
svg.bars rect { fill: var(--bad); opacity: .75; }
svg.bars line.base { stroke: var(--line); }
.latest { margin-top: 10px; border-top: 1px solid var(--line); padding-top: 8px; }
.latest .item { padding: 4px 0; min-width: 0; }
.latest .item .what { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.latest .item .why { color: var(--mute); font-size: 12px; overflow: hidden;
  text-overflow: ellipsis; white-space: nowrap; }

form#login { max-width: 26rem; margin: 12vh auto; display: flex; flex-direction: column;
  gap: 10px; padding: 24px; background: var(--panel); border: 1px solid var(--line);
  border-radius: 12px; box-shadow: var(--shadow); }
form#login h2 { margin: 0; font-size: 16px; }
form#login p { margin: 0; color: var(--mute); }
form#login input { font: inherit; padding: 8px 10px; border: 1px solid var(--line);
  border-radius: 6px; background: var(--bg); color: var(--fg); }
form#login button[type=submit] { align-self: flex-start; background: var(--accent);
  border-color: var(--accent); color: #fff; padding: 6px 14px; }
#error { color: var(--bad); min-height: 1.2em; }

@media (max-width: 1100px) {
  .panel.span-4, .panel.span-6, .panel.span-8 { grid-column: span 12; }
}
@media (max-width: 760px) {
  header.top { padding: 10px 12px; flex-wrap: wrap; row-gap: 4px; }
  #meta { order: 5; flex-basis: 100%; }
  main { padding: 12px 10px 24px; }
  .grid { gap: 12px; }
  .kpis { grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 10px; }
  .kpi .value { font-size: 18px; }
  .kpi:last-child { grid-column: 1 / -1; }
  #updated { display: none; }
  .chart { height: 160px; }
  .list .head { display: none; }
  .list .row { grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 2px 12px; }
  .list .row .cell { white-space: normal; overflow-wrap: anywhere; }
  .list .row .cell[data-label]:not(.name)::before { content: attr(data-label) " ";
    color: var(--faint); }
  .list .row .cell.name, .list .row .cell.wide { grid-column: 1 / -1; }
  .list .num { text-align: left; }
  .list .act { grid-column: 1 / -1; text-align: left; }
  .list .replica .cell.name { padding-left: 0; }
}
`;
