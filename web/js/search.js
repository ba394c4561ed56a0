// Steps across runs: by name, failed or not, minimum tokens and time range (GET
// /api/search, newest first, paged). Every result links to its step in its run.

import * as api from "./api.js";
import { el, fill } from "./dom.js";
import * as fmt from "./format.js";
import { go, href } from "./router.js";

export class SearchView {
  constructor(root) {
    this.root = root;
    this.name = el("input", { type: "search", name: "name", list: "step-names", placeholder: "step name (exact)", "aria-label": "Step name" });
    this.names = el("datalist", { id: "step-names" });
    this.error = el("select", { name: "error", "aria-label": "Status" },
      el("option", { value: "" }, "any status"), el("option", { value: "true" }, "failed"),
      el("option", { value: "false" }, "not failed"));
    this.minTokens = el("input", { type: "number", name: "min_tokens", min: "0", step: "1", placeholder: "min tokens", "aria-label": "Minimum tokens" });
    this.from = el("input", { type: "datetime-local", name: "from", "aria-label": "Started after" });
    this.to = el("input", { type: "datetime-local", name: "to", "aria-label": "Started before" });
    this.body = el("tbody");
    this.status = el("p", { class: "muted" });
    this.more = el("button", { type: "button", class: "load-more", hidden: true, onclick: () => this.load(false) }, "Load more");
    const form = el("form", { class: "toolbar", onsubmit: (e) => { e.preventDefault(); this.submit(); } },
      el("h1", {}, "Search steps"), this.name, this.names, this.error, this.minTokens,
      el("label", {}, "from ", this.from), el("label", {}, "to ", this.to),
      el("button", { type: "submit", class: "primary" }, "Search"),
      el("button", { type: "button", onclick: () => go(href("search")) }, "Clear"));
    root.append(form, el("div", { class: "table-wrap" }, el("table", { class: "grid-table", id: "search-results" },
      el("thead", {}, el("tr", {}, ["Started", "Step", "Run", "Status", "Duration", "Tokens", "Cost", "Error"]
        .map((h, k) => el("th", { class: k >= 4 && k <= 6 ? "num" : "" }, h)))), this.body), this.status, this.more));
  }

  submit() {
    go(href("search", null, {
      name: this.name.value.trim(), error: this.error.value, min_tokens: this.minTokens.value,
      from: fmt.fromLocalInput(this.from.value)?.toFixed(0), to: fmt.fromLocalInput(this.to.value)?.toFixed(0),
    }));
  }

  show(route) {
    const p = route.params;
    this.name.value = p.get("name") || "";
    this.error.value = ["true", "false"].includes(p.get("error")) ? p.get("error") : "";
    this.minTokens.value = p.get("min_tokens") || "";
    this.from.value = fmt.toLocalInput(p.get("from"));
    this.to.value = fmt.toLocalInput(p.get("to"));
    this.query = { step_name: this.name.value, has_error: this.error.value, min_tokens: this.minTokens.value,
      start_time: p.get("from"), end_time: p.get("to"), payloads: "false", limit: 100 };
    const key = JSON.stringify(this.query);
    if (key !== this.key) {
      this.key = key;
      this.load(true);
    }
    this.loadNames();
  }

  hide() {}

  async loadNames() {
    if (this.namesLoaded) return;
    this.namesLoaded = true;
    try {
      const stats = await api.get("/api/stats", { limit: 500 });
      fill(this.names, stats.steps.map((s) => el("option", { value: s.step_name })));
    } catch { /* suggestions are optional */ }
  }

  async load(fresh) {
    const key = this.key;
    this.status.textContent = "searching…";
    if (fresh) {
      this.body.replaceChildren();  // no result of the last search is left in view
      this.more.hidden = true;
    }
    let page;
    try {
      page = await api.get("/api/search", { ...this.query, cursor: fresh ? null : this.cursor });
    } catch (error) {
      this.status.textContent = `Search failed: ${error.message}`;
      return;
    }
    if (key !== this.key) return;
    for (const step of page.steps) this.body.append(row(step));
    this.cursor = page.next_cursor;
    this.more.hidden = !this.cursor;
    const n = this.body.children.length;
    this.status.textContent = n ? `${fmt.int(n)} step${n > 1 ? "s" : ""}${this.cursor ? " so far, newest first" : ", newest first"}` : "No step matches.";
  }
}

function row(step) {
  const tokens = step.tokens_input + step.tokens_output;
  return el("tr", { dataset: { stepId: step.step_id } },
    el("td", {}, fmt.datetime(step.started_at)),
    el("td", {}, el("a", { href: href("run", step.run_id, { step: step.step_id }), class: "step-link" }, step.step_name),
      step.model && el("span", { class: "wf-model" }, ` ${step.model}`)),
    el("td", {}, el("a", { href: href("run", step.run_id), class: "mono" }, `${step.run_id.slice(0, 12)}…`)),
    el("td", {}, el("span", { class: `badge st-${step.status}` }, step.status === "error" ? "✕ error" : step.status)),
    el("td", { class: "num" }, step.latency_ms == null ? "running" : fmt.duration(step.latency_ms)),
    el("td", { class: "num" }, tokens ? fmt.int(tokens) : ""),
    el("td", { class: "num" }, tokens || step.cost_usd ? fmt.cost(step.cost_usd) : ""),
    el("td", { class: "err ellipsis", title: step.error || "" }, step.error || ""));
}
