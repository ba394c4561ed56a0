// The run list: newest first, paged by cursor as you scroll, filtered by name, status and
// time (all kept in the URL), kept live by the event stream. Tick two runs to compare them.

import * as api from "./api.js";
import { debounce, el, fill, notify } from "./dom.js";
import * as fmt from "./format.js";
import * as live from "./live.js";
import { go, href, update } from "./router.js";

const PAGE = 100;
const STATUSES = ["running", "success", "error", "incomplete"];

export class RunsView {
  constructor(root) {
    this.root = root;
    this.runs = new Map();   // run id -> run summary, for the rows shown
    this.rowOf = new Map();  // run id -> <tr>
    this.picked = [];
    this.cursor = null;
    this.key = null;
    this.seenSteps = new Map(); // run id -> step ids seen starting live
    this.q = el("input", { type: "search", name: "q", placeholder: "Filter by name", "aria-label": "Filter runs by name" });
    this.status = el("select", { name: "status", "aria-label": "Status" },
      el("option", { value: "" }, "any status"), STATUSES.map((s) => el("option", { value: s }, s)));
    this.from = el("input", { type: "datetime-local", name: "from", "aria-label": "Started after" });
    this.to = el("input", { type: "datetime-local", name: "to", "aria-label": "Started before" });
    this.compare = el("button", { type: "button", class: "primary", disabled: true, onclick: () => this.compareSelected() }, "Compare 2 runs");
    const changed = () => update({ q: this.q.value.trim(), status: this.status.value,
      from: fmt.fromLocalInput(this.from.value)?.toFixed(0), to: fmt.fromLocalInput(this.to.value)?.toFixed(0) });
    this.q.addEventListener("input", debounce(changed, 250));
    for (const input of [this.status, this.from, this.to]) input.addEventListener("change", changed);
    this.body = el("tbody");
    this.more = el("button", { type: "button", class: "load-more", onclick: () => this.loadMore() }, "Load more runs");
    this.empty = el("p", { class: "muted empty", hidden: true });
    root.append(
      el("div", { class: "toolbar" }, el("h1", {}, "Runs"), this.q, this.status,
        el("label", {}, "from ", this.from), el("label", {}, "to ", this.to),
        el("button", { type: "button", onclick: () => go(href("runs")) }, "Clear"),
        el("span", { class: "grow" }), el("span", { class: "muted small compare-hint" }, "tick two runs, then"), this.compare),
      el("div", { class: "table-wrap" },
        el("table", { id: "runs", class: "grid-table runs-table" },
          el("thead", {}, el("tr", {}, el("th", { class: "pick" }, el("span", { class: "sr-only" }, "compare")),
            ["Run", "Status", "Started", "Duration", "Steps", "Tokens in · out", "Cost"].map((h, k) =>
              el("th", { class: k >= 3 ? "num" : "" }, h)))),
          this.body),
        this.empty, this.more));
    new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && this.cursor && !this.loading && this.active) this.loadMore();
    }).observe(this.more);
    live.on("run_start", (r) => this.onRunStart(r));
    live.on("run_end", (r) => this.onRunEnd(r));
    live.on("run_incomplete", (r) => this.onRunEnd(r));
    live.on("step_start", (s) => this.onStep(s, true));
    live.on("step_end", (s) => this.onStep(s, false));
    live.on("resync", () => { if (this.key) this.reload(); });
    setInterval(() => this.tickDurations(), 1000);
  }

  filters(params) {
    return { q: params.get("q") || "", status: STATUSES.includes(params.get("status")) ? params.get("status") : "",
      start_time: params.get("from") || "", end_time: params.get("to") || "" };
  }

  show(route) {
    this.active = true;
    const f = this.filters(route.params);
    this.q.value !== f.q && document.activeElement !== this.q && (this.q.value = f.q);
    this.status.value = f.status;
    this.from.value = fmt.toLocalInput(f.start_time);
    this.to.value = fmt.toLocalInput(f.end_time);
    const key = JSON.stringify(f);
    if (key !== this.key) {
      this.key = key;
      this.current = f;
      this.reload();
    }
  }

  hide() {
    this.active = false;
  }

  async reload() {
    this.cursor = null;
    this.loadedOnce = false;
    await this.loadMore(true);
  }

  async loadMore(fresh = false) {
    this.loading = true;
    const key = this.key;
    try {
      const page = await api.get("/api/runs", { ...this.current, limit: PAGE, cursor: fresh ? null : this.cursor });
      if (key !== this.key) return;
      if (fresh) {
        this.runs.clear();
        this.rowOf.clear();
        this.body.replaceChildren();
      }
      for (const run of page.runs) this.put(run, false);
      this.cursor = page.next_cursor;
      this.more.hidden = !this.cursor;
      this.empty.hidden = this.runs.size > 0;
      this.empty.textContent = this.key === JSON.stringify({ q: "", status: "", start_time: "", end_time: "" })
        ? "No runs yet. Trace something, or run python demo.py." : "No run matches these filters.";
    } catch (error) {
      notify(`Could not list the runs: ${error.message}`);
    } finally {
      this.loading = false;
    }
  }

  /** Add or redraw a run's row; atTop puts a new one first. */
  put(run, atTop) {
    this.runs.set(run.run_id, run);
    const row = this.row(run);
    const old = this.rowOf.get(run.run_id);
    if (old) old.replaceWith(row);
    else if (atTop) this.body.prepend(row);
    else this.body.append(row);
    this.rowOf.set(run.run_id, row);
  }

  row(run) {
    const running = run.status === "running";
    const picked = this.picked.includes(run.run_id);
    const tr = el("tr", { dataset: { runId: run.run_id }, class: picked ? "picked" : "",
      onclick: (e) => { if (!e.target.closest("a, input, label")) location.hash = href("run", run.run_id); } },
      el("td", { class: "pick" }, el("input", { type: "checkbox", checked: picked, "aria-label": `compare ${run.run_name}`,
        onchange: (e) => this.pick(run.run_id, e.target.checked) })),
      el("td", { class: "name" }, el("a", { href: href("run", run.run_id) }, run.run_name),
        run.replay_of_run_id && el("span", { class: "badge", title: "a replay of a step of another run" }, "replay")),
      el("td", {}, el("span", { class: `badge st-${run.status}` }, run.status === "error" ? "✕ error" : run.status)),
      el("td", { class: "started" }, fmt.datetime(run.started_at)),
      el("td", { class: "num duration" }, running ? fmt.duration(Date.now() - run.started_at * 1000) : fmt.duration(run.duration_ms)),
      el("td", { class: "num" }, fmt.int(run.step_count ?? 0),
        run.error_count ? el("span", { class: "err" }, ` (${fmt.int(run.error_count)} ✕)`) : null),
      el("td", { class: "num" }, `${fmt.tokens(run.tokens_input ?? 0)} · ${fmt.tokens(run.tokens_output ?? 0)}`),
      el("td", { class: `num cost${run.unpriced_steps ? " unpriced" : ""}` }, fmt.runCost(run.cost_usd, run.unpriced_steps ?? 0)));
    if (running) tr.classList.add("running");
    return tr;
  }

  pick(runId, on) {
    this.picked = this.picked.filter((id) => id !== runId);
    if (on) this.picked.push(runId);
    while (this.picked.length > 2) {
      const dropped = this.picked.shift();
      const row = this.rowOf.get(dropped);
      if (row) {
        row.querySelector("input[type=checkbox]").checked = false;
        row.classList.remove("picked");
      }
    }
    this.rowOf.get(runId)?.classList.toggle("picked", on);
    this.compare.disabled = this.picked.length !== 2;
  }

  compareSelected() {
    const [x, y] = this.picked.map((id) => this.runs.get(id));
    const [a, b] = x.started_at <= y.started_at ? [x, y] : [y, x];  // A: the earlier run
    location.hash = href("compare", null, { a: a.run_id, b: b.run_id });
  }

  // ---- live ----

  matches(run) {
    const f = this.current;
    if (!f) return false;
    if (f.status && f.status !== run.status) return false;
    if (f.q && !run.run_name.toLowerCase().includes(f.q.toLowerCase())) return false;
    if (f.start_time && run.started_at < Number(f.start_time)) return false;
    if (f.end_time && run.started_at > Number(f.end_time)) return false;
    return true;
  }

  onRunStart(summary) {
    if (this.runs.has(summary.run_id) || !this.matches(summary)) return;
    this.put({ step_count: 0, running_steps: 0, error_count: 0, tokens_input: 0, tokens_output: 0,
      cost_usd: null, unpriced_steps: 0, duration_ms: null, replay_of_run_id: null, ...summary }, true);
    this.empty.hidden = true;
  }

  onRunEnd(summary) {
    const run = this.runs.get(summary.run_id);
    if (!run) return;
    Object.assign(run, summary);
    this.put(run, false);
    this.seenSteps.delete(summary.run_id);
    this.refreshSoon(summary.run_id);
  }

  onStep(step, started) {
    const run = this.runs.get(step.run_id);
    if (!run) return;
    let seen = this.seenSteps.get(step.run_id);
    if (!seen) this.seenSteps.set(step.run_id, (seen = new Set()));
    if (started) {
      if (seen.has(step.step_id)) return;
      seen.add(step.step_id);
      run.step_count = (run.step_count ?? 0) + 1;
      run.running_steps = (run.running_steps ?? 0) + 1;
    } else {
      if (!seen.has(step.step_id) && !(run.running_steps > 0)) return;  // counted already
      seen.delete(step.step_id);
      run.running_steps = Math.max(0, (run.running_steps ?? 1) - 1);
      run.tokens_input = (run.tokens_input ?? 0) + step.tokens_input;
      run.tokens_output = (run.tokens_output ?? 0) + step.tokens_output;
      if (step.status === "error") run.error_count = (run.error_count ?? 0) + 1;
      if (step.cost_usd == null) run.unpriced_steps = (run.unpriced_steps ?? 0) + 1;
      else run.cost_usd = (run.cost_usd ?? 0) + step.cost_usd;
    }
    if (this.active) this.soonRedraw(step.run_id);
  }

  soonRedraw(runId) {
    this.dirty ||= new Set();
    this.dirty.add(runId);
    if (this.redrawTimer) return;
    this.redrawTimer = setTimeout(() => {
      this.redrawTimer = null;
      for (const id of this.dirty) if (this.runs.has(id)) this.put(this.runs.get(id), false);
      this.dirty.clear();
    }, 300);
  }

  /** After a run ends, its exact totals: the live counts can miss steps that were stored
   *  while the first page was being read. One small read per run that ended (by its name
   *  and start time), a second after it ended, never the whole page. */
  refreshSoon(runId) {
    (this.ended ||= new Set()).add(runId);
    if (this.refreshTimer) return;
    this.refreshTimer = setTimeout(async () => {
      this.refreshTimer = null;
      const ids = [...this.ended];
      this.ended.clear();
      for (const id of ids) {
        const run = this.runs.get(id);
        if (!run) continue;
        try {
          const { runs } = await api.get("/api/runs", { name: run.run_name, start_time: run.started_at,
            end_time: run.started_at, limit: 10 });
          const fresh = runs.find((r) => r.run_id === id);
          if (fresh && this.runs.has(id)) this.put(fresh, false);
        } catch { /* the live figures stay */ }
      }
    }, 1000);
  }

  tickDurations() {
    if (!this.active || document.hidden) return;
    for (const [id, run] of this.runs) {
      if (run.status !== "running") continue;
      const cell = this.rowOf.get(id)?.querySelector(".duration");
      if (cell) cell.textContent = fmt.duration(Date.now() - run.started_at * 1000);
    }
  }
}
