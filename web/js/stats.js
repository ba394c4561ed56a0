// Per step name: count, failures, latency percentiles, tokens and cost (GET /api/stats),
// and what was lost on the way (client drops, live-stream drops, query timeouts), so a
// gap in a trace is never silent.

import * as api from "./api.js";
import { el, fill } from "./dom.js";
import * as fmt from "./format.js";
import * as daemonHealth from "./health.js";
import { go, href } from "./router.js";

const RANGES = [["", "all time"], ["3600", "last hour"], ["86400", "last 24 hours"], ["604800", "last 7 days"]];

export class StatsView {
  constructor(root) {
    this.root = root;
    this.range = el("select", { "aria-label": "Time range", onchange: () => this.submit() },
      RANGES.map(([v, label]) => el("option", { value: v }, label)));
    this.name = el("input", { type: "search", placeholder: "step name (exact)", "aria-label": "Step name",
      onchange: () => this.submit() });
    this.table = el("div", { class: "table-wrap" });
    this.losses = el("section", { class: "losses", "aria-label": "What was lost" });
    this.health = el("section", { class: "health" });
    root.append(el("div", { class: "toolbar" }, el("h1", {}, "Stats"), this.range, this.name,
      el("button", { type: "button", onclick: () => this.load() }, "Refresh")),
      this.losses, this.table, this.health);
  }

  submit() {
    go(href("stats", null, { last: this.range.value, name: this.name.value.trim() }), { replace: true });
  }

  show(route) {
    this.range.value = RANGES.some(([v]) => v === route.params.get("last")) ? route.params.get("last") : "";
    this.name.value = route.params.get("name") || "";
    this.load();
  }

  hide() {}

  async load() {
    const last = Number(this.range.value);
    const params = { step_name: this.name.value.trim(), start_time: last ? (Date.now() / 1000 - last).toFixed(0) : null, limit: 1000 };
    let stats;
    let health = null;
    try {
      [stats, health] = await Promise.all([api.get("/api/stats", params), api.get("/api/health").catch(() => null)]);
    } catch (error) {
      fill(this.table, el("p", { class: "err" }, error.message));
      return;
    }
    const p = (ms) => (ms == null ? "–" : fmt.duration(ms));
    fill(this.table, el("table", { class: "grid-table", id: "stats-table" },
      el("thead", {}, el("tr", {}, ["Step", "Count", "Running", "Failed", "Error rate", "p50", "p95", "p99", "Tokens in", "Tokens out", "Cost"]
        .map((h, k) => el("th", { class: k ? "num" : "" }, h)))),
      el("tbody", {}, stats.steps.length ? stats.steps.map((s) => el("tr", {},
        el("td", {}, el("a", { href: href("search", null, { name: s.step_name }) }, s.step_name)),
        el("td", { class: "num" }, fmt.int(s.count)), el("td", { class: "num" }, fmt.int(s.running)),
        el("td", { class: `num${s.errors ? " err" : ""}` }, fmt.int(s.errors)),
        el("td", { class: "num" }, s.error_rate == null ? "–" : `${(s.error_rate * 100).toFixed(1)} %`),
        el("td", { class: "num" }, p(s.latency_ms.p50)), el("td", { class: "num" }, p(s.latency_ms.p95)),
        el("td", { class: "num" }, p(s.latency_ms.p99)),
        el("td", { class: "num" }, fmt.int(s.tokens_input)), el("td", { class: "num" }, fmt.int(s.tokens_output)),
        el("td", { class: "num" }, fmt.runCost(s.cost_usd, s.unpriced_steps)))) :
        el("tr", {}, el("td", { colspan: 11, class: "muted" }, "No steps in this range.")))));
    const drops = Object.entries(stats.client_drops);
    const lost = drops.reduce((n, [, v]) => n + v, 0);
    fill(this.losses, el("h2", {}, "Lost on the way"),
      el("dl", { class: "facts inline" },
        el("dt", {}, "Events clients dropped"),
        el("dd", { class: lost ? "err" : "", id: "client-drops" }, lost
          ? drops.map(([reason, n]) => `${fmt.int(n)} ${reason.replaceAll("_", " ")}`).join(" · ")
          : "none"),
        el("dt", {}, "Live pages cut off for reading too slowly"),
        el("dd", { class: stats.events.disconnected_slow ? "err" : "" },
          fmt.int(stats.events.disconnected_slow ?? 0)),
        el("dt", {}, "Queries past their deadline"),
        el("dd", { class: stats.reader.timeouts ? "err" : "" }, fmt.int(stats.reader.timeouts))));
    if (health) {
      daemonHealth.show(health); // the banner tells the same as this page
      fill(this.health, el("h2", {}, "Daemon"), el("dl", { class: "facts inline" },
        el("dt", {}, "Status"), el("dd", { class: health.status === "ok" ? "" : "err" },
          [health.status, ...(health.reasons || []).map((r) => ` · ${r.message}`)].join("")),
        el("dt", {}, "Version"), el("dd", {}, health.version),
        el("dt", {}, "Up for"), el("dd", {}, fmt.duration(health.uptime_s * 1000)),
        el("dt", {}, "Events received · stored · pending"),
        el("dd", {}, `${fmt.int(health.events_received)} · ${fmt.int(health.events_committed)} · ${fmt.int(health.events_pending)}`),
        el("dt", {}, "Connections now · in all"), el("dd", {}, `${fmt.int(health.connections)} · ${fmt.int(health.connections_total)}`),
        el("dt", {}, "Database"), el("dd", {}, health.database ? databaseSize(health.database) : "–"),
        el("dt", {}, "Live pages"), el("dd", {}, fmt.int(stats.events.subscribers))));
    }
  }
}

/** "33.8 MB on disk (17.3 MB of it WAL) · 15.2 MB of data, 1.3 MB free pages · 41 GB free on
 *  its disk · path". */
function databaseSize(db) {
  const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
  const parts = [`${mb(db.size_bytes)} on disk (${mb(db.wal_bytes)} of it WAL)`];
  if (db.used_bytes != null) parts.push(`${mb(db.used_bytes)} of data, ${mb(db.free_page_bytes)} free pages`);
  if (db.disk_free_bytes != null) parts.push(`${(db.disk_free_bytes / 1e9).toFixed(1)} GB free on its disk`);
  return [...parts, db.path].join(" · ");
}
