// One run: its header (totals, export, compare, replay links), the waterfall or the tokens
// view, and the step detail. The steps come once, as compact columns; after that the live
// stream updates them in place, so watching a run costs the size of its new steps.

import * as api from "./api.js";
import { el, fill, notify } from "./dom.js";
import * as fmt from "./format.js";
import * as live from "./live.js";
import * as M from "./model.js";
import { href, update } from "./router.js";
import { Detail } from "./detail.js";
import { Tokens } from "./tokens.js";
import { Waterfall } from "./waterfall.js";
import { pickRun } from "./picker.js";

export class RunView {
  constructor(root) {
    this.root = root;
    this.runId = null;
    this.model = null;
    this.queued = [];
    this.tab = "waterfall";
    this.head = el("div", { class: "run-head" });
    this.links = el("div", { class: "run-links" });
    this.tabs = el("div", { class: "tabs", role: "tablist", "aria-label": "Run views" },
      this.tabButton("waterfall", "Waterfall"), this.tabButton("tokens", "Tokens & cost"));
    this.waterfallPane = el("div", { class: "pane pane-waterfall wf", role: "tabpanel" });
    this.tokensPane = el("div", { class: "pane pane-tokens", role: "tabpanel", hidden: true });
    this.detailPane = el("aside", { class: "detail", id: "detail", "aria-label": "Step detail" });
    root.append(this.head, this.links, this.tabs, el("div", { class: "run-body" },
      el("div", { class: "run-main" }, this.waterfallPane, this.tokensPane), this.detailPane));
    this.waterfall = new Waterfall(this.waterfallPane, {
      onSelect: (i) => this.selectStep(i),
      onFilter: (text) => update({ filter: text }),
    });
    this.tokens = new Tokens(this.tokensPane, { onSelect: (i) => this.waterfall.select(i, { scroll: "center" }) });
    this.detail = new Detail(this.detailPane);
    for (const kind of ["step_start", "step_end"]) live.on(kind, (s) => this.onStep(s));
    for (const kind of ["run_start", "run_end", "run_incomplete"]) live.on(kind, (r) => this.onRun(r));
    live.on("step_incomplete", (change) => this.onStatus(change));
    live.on("resync", () => { if (this.runId && this.active) this.load(this.runId, this.selectedId()); });
    setInterval(() => { if (this.active && this.model?.run.status === "running") this.drawHead(); }, 1000);
  }

  tabButton(name, label) {
    return el("button", { type: "button", role: "tab", class: "tab", dataset: { tab: name },
      onclick: () => update({ tab: name === "waterfall" ? null : name }, { push: true }) }, label);
  }

  /** Show the route #/run/<id>?step=&tab=&filter=. */
  show(route) {
    this.active = true;
    const step = route.params.get("step");
    this.setTab(route.params.get("tab") || "waterfall");
    if (route.id !== this.runId) {
      this.load(route.id, step, route.params.get("filter") || "");
    } else if (this.model) {
      // Back on a run already loaded: events kept it current while hidden; redraw.
      this.waterfall.reflow();
      this.waterfall.drawAxis(true);
      this.drawHead();
      if (step && step !== this.selectedId()) this.selectById(step);
    }
  }

  hide() {
    this.active = false;
  }

  selectedId() {
    const i = this.waterfall.selected;
    return this.model && i >= 0 ? this.model.steps[i].id : null;
  }

  async load(runId, stepId = null, filter = null) {
    performance.mark("tf:run-select");
    const keepFilter = filter ?? this.waterfall.filter.value;
    this.runId = runId;
    this.model = null;
    this.queued = [];
    this.controller?.abort();
    this.controller = new AbortController();
    this.detail.clear();
    this.waterfall.setModel(null, { message: "Loading the run's steps…" });
    this.tokens.setModel(null);
    fill(this.head, el("h1", {}, "Loading run…"));
    this.links.replaceChildren();
    let answer;
    try {
      answer = await api.get(`/api/runs/${runId}/steps`, null, { signal: this.controller.signal });
    } catch (error) {
      if (error.name === "AbortError" || runId !== this.runId) return;
      fill(this.head, el("h1", {}, "Run not found"), el("p", { class: "err" }, error.message),
        el("a", { href: href("runs") }, "← all runs"));
      this.waterfall.setModel(null, { message: "No steps to show." });
      return;
    }
    if (runId !== this.runId) return;
    const model = M.buildRun(answer);
    for (const summary of this.queued) M.applyStep(model, summary);
    this.queued = [];
    this.model = model;
    this.waterfall.setModel(model, { filter: keepFilter });
    if (this.tab === "tokens") this.tokens.setModel(model);
    this.drawHead();
    requestAnimationFrame(() => setTimeout(() => performance.mark("tf:run-painted")));
    this.drawLinks(model.run);
    if (stepId) this.selectById(stepId);
  }

  selectById(stepId) {
    const i = this.model.byId.get(stepId);
    if (i === undefined) {
      notify(`step ${stepId} is not in this run`);
      return;
    }
    this.waterfall.select(i, { scroll: "center" });
  }

  selectStep(i) {
    const step = this.model.steps[i];
    update({ step: step.id });
    this.tokens.select(i);
    this.detail.show(step, this.model.run);
  }

  setTab(tab) {
    this.tab = tab === "tokens" ? "tokens" : "waterfall";
    for (const button of this.tabs.children) {
      button.setAttribute("aria-selected", String(button.dataset.tab === this.tab));
    }
    this.waterfallPane.hidden = this.tab !== "waterfall";
    this.tokensPane.hidden = this.tab !== "tokens";
    if (this.tab === "tokens" && this.model) this.tokens.setModel(this.model);
    if (this.tab === "waterfall" && this.model) this.waterfall.drawAxis(true);
  }

  // ---- live ----

  onStep(summary) {
    if (summary.run_id !== this.runId) return;
    if (!this.model) {
      this.queued.push(summary);
      return;
    }
    const { index, added } = M.applyStep(this.model, summary);
    if (!this.active) return;
    this.waterfall.changed(added);
    this.soon("head", () => this.drawHead(), 500);
    if (this.tab === "tokens") this.soon("tokens", () => this.tokens.refresh(), 1000);
    if (index === this.waterfall.selected && summary.status !== "running") {
      this.detail.refresh(this.model.steps[index], this.model.run);
    }
  }

  onStatus(change) {
    if (change.run_id !== this.runId || !this.model) return;
    const i = M.applyStatus(this.model, change);
    if (i >= 0 && this.active) {
      this.waterfall.changed(false);
      this.soon("head", () => this.drawHead(), 500);
    }
  }

  onRun(summary) {
    if (summary.run_id !== this.runId || !this.model) return;
    M.applyRun(this.model, summary);
    if (this.active) {
      this.drawHead();
      this.waterfall.changed(false);
    }
  }

  /** Run fn at most once per ms under key. */
  soon(key, fn, ms) {
    this.timers ||= {};
    if (this.timers[key]) return;
    this.timers[key] = setTimeout(() => {
      this.timers[key] = null;
      fn();
    }, ms);
  }

  // ---- the header ----

  drawHead() {
    const { run, totals } = this.model;
    const running = run.status === "running";
    const durationMs = running ? Date.now() - run.started_at * 1000 : run.duration_ms;
    const fact = (label, value, cls = "") => el("span", { class: `fact ${cls}` },
      el("span", { class: "muted" }, label), " ", value);
    fill(this.head,
      el("div", { class: "run-title" },
        el("a", { href: href("runs"), class: "back", title: "all runs" }, "← Runs"),
        el("h1", { title: run.run_id }, run.run_name),
        el("span", { class: `badge st-${run.status}` }, run.status === "error" ? "✕ error" : run.status),
        run.partial && el("span", { class: "badge", title: "the run's start has not arrived" }, "partial")),
      el("div", { class: "run-facts" },
        fact("started", fmt.datetime(run.started_at)),
        fact(running ? "running for" : "took", fmt.duration(durationMs)),
        fact("steps", fmt.int(totals.steps) + (totals.errors ? ` (${fmt.int(totals.errors)} failed)` : "") +
          (totals.running ? ` · ${fmt.int(totals.running)} running` : "")),
        fact("tokens", `${fmt.tokens(totals.tin)} in · ${fmt.tokens(totals.tout)} out` +
          (totals.tcr || totals.tcw ? ` · cache ${fmt.tokens(totals.tcr)} read, ${fmt.tokens(totals.tcw)} write` : "")),
        fact("cost", fmt.runCost(M.totalCost(totals), totals.unpriced), totals.unpriced ? "unpriced" : "")),
      el("div", { class: "run-actions" },
        el("a", { class: "btn", href: `/api/runs/${run.run_id}/export?format=otlp`,
          download: `traceforge-${run.run_id}.otlp.jsonl`,
          title: "download the run as OTLP/JSON lines (TracesData), for Jaeger, an OpenTelemetry Collector or any OTLP tool" },
          "Export OTLP"),
        el("a", { class: "btn", href: `/api/runs/${run.run_id}/export?format=flat`,
          download: `traceforge-${run.run_id}.jsonl`,
          title: "download the run as TraceForge's flat JSONL, one span per line (not OTLP)" }, "Flat JSONL"),
        el("button", { type: "button", onclick: () => this.compareWith() }, "Compare with…")));
  }

  async compareWith() {
    const run = this.model.run;
    const other = await pickRun({ exclude: run.run_id, name: run.run_name,
      title: `Compare "${run.run_name}" with…` });
    if (other) location.hash = href("compare", null, { a: run.run_id, b: other });
  }

  /** Replay links both ways: what this run replays, and the runs that replay this one. */
  async drawLinks(run) {
    const parts = [];
    if (run.replay_of_run_id) {
      let original = null;
      try {
        original = await api.get(`/api/steps/${run.replay_of_step_id}`);
      } catch { /* the original may be gone */ }
      parts.push(el("div", { class: "banner" }, "↻ Replay of step ",
        el("a", { href: href("run", run.replay_of_run_id, { step: run.replay_of_step_id }) },
          original ? original.step_name : run.replay_of_step_id),
        " in run ", el("a", { href: href("run", run.replay_of_run_id), class: "replay-original" },
          original?.run_name || run.replay_of_run_id), " ",
        el("a", { class: "btn", href: href("compare", null, { a: run.replay_of_run_id, b: run.run_id }) },
          "Compare with the original")));
    }
    try {
      const { runs } = await api.get("/api/runs", { replay_of: run.run_id, limit: 20 });
      if (runs.length) {
        parts.push(el("div", { class: "banner" }, `Replayed ${runs.length}${runs.length === 20 ? "+" : ""}× in: `,
          runs.map((r, k) => [k ? ", " : "", el("a", { href: href("run", r.run_id), class: "replay-link" }, r.run_name),
            " (", el("a", { href: href("compare", null, { a: run.run_id, b: r.run_id }) }, "compare"), ")"])));
      }
    } catch { /* shown without the links */ }
    if (run.run_id === this.runId) fill(this.links, parts);
  }
}
