// The step detail panel, beside (or under) the waterfall and always in view. Its payloads
// (input, output, metadata, traceback) are fetched when the step is opened, never with
// the run, so a run of any size opens fast.

import * as api from "./api.js";
import { copyText, el, fill } from "./dom.js";
import * as fmt from "./format.js";
import { jsonView, setAllOpen } from "./jsonview.js";
import { href } from "./router.js";

export class Detail {
  constructor(root) {
    this.root = root;
    this.stepId = null;
    this.controller = null;
    this.clear();
  }

  clear(message = "Select a step to see its input, output, tokens, cost and error.") {
    this.stepId = null;
    this.controller?.abort();
    this.root.classList.add("empty");
    fill(this.root, el("p", { class: "muted detail-empty" }, message));
  }

  /** Open a step: summary (from the run's columns) drawn at once, payloads when fetched. */
  async show(summary, run) {
    this.controller?.abort();
    this.controller = new AbortController();
    this.stepId = summary.id;
    this.root.classList.remove("empty");
    const body = el("div", { class: "detail-body" }, el("p", { class: "muted" }, "loading…"));
    fill(this.root, header(summary, run), body);
    let step;
    try {
      step = await api.get(`/api/steps/${summary.id}`, null, { signal: this.controller.signal });
    } catch (error) {
      if (error.name === "AbortError") return;
      fill(body, el("p", { class: "err" }, `Could not load the step: ${error.message}`));
      return;
    }
    if (this.stepId !== summary.id) return;
    fill(this.root, header(step, run), content(step, run));
  }

  /** Refetch the open step if it is this one (say it just ended). */
  refresh(summary, run) {
    if (this.stepId === summary.id) this.show(summary, run);
  }
}

function header(step, run) {
  const name = step.step_name ?? step.name;
  const status = step.status;
  const id = step.step_id ?? step.id;
  return el("div", { class: "detail-head" },
    el("h2", { id: "detail-title", tabindex: "-1" }, name),
    el("span", { class: `badge st-${status}` }, status === "error" ? "✕ error" : status),
    el("div", { class: "detail-actions" },
      el("button", { type: "button", title: "copy the step id", onclick: () => copyText(id) }, "Copy id"),
      el("a", { class: "btn", href: href("replay", id), title: "replay this step with an edited input" }, "Replay…")),
    run && el("div", { class: "muted small" }, "in run ", el("a", { href: href("run", run.run_id) }, run.run_name)));
}

function content(step, run) {
  const meta = step.metadata && typeof step.metadata === "object" ? step.metadata : {};
  const input = step.input_data && typeof step.input_data === "object" ? step.input_data : {};
  const requested = meta.model_requested ?? (typeof input.model === "string" ? input.model : null);
  const served = meta.model_served ?? null;
  const tokens = step.tokens_input + step.tokens_output + step.tokens_cache_read + step.tokens_cache_write;
  const facts = [
    ["Start", fmt.datetime(step.started_at, true)],
    ["End", step.ended_at == null ? (step.status === "running" ? "running" : "–") : fmt.datetime(step.ended_at, true)],
    ["Duration", step.latency_ms == null ? "running" : fmt.duration(step.latency_ms)],
  ];
  if (run) facts.push(["Offset", `+${fmt.duration((step.started_at - run.started_at) * 1000)} after the run started`]);
  if (step.model) facts.push(["Model", step.model]);
  if (requested || served) facts.push(["Requested · served", `${requested ?? "–"} · ${served ?? "–"}`]);
  if (tokens || step.model) {
    facts.push(["Tokens in · out", `${fmt.int(step.tokens_input)} · ${fmt.int(step.tokens_output)}`]);
    facts.push(["Cache read · write", `${fmt.int(step.tokens_cache_read)} · ${fmt.int(step.tokens_cache_write)}`]);
    facts.push(["Cost", step.cost_usd == null
      ? el("span", { class: "unpriced", title: meta.unpriced_reason || "no known price for this model" }, "unpriced")
      : fmt.cost(step.cost_usd)]);
  }
  facts.push(["Process", step.pid == null ? "–" : `pid ${step.pid}${step.host ? ` on ${step.host}` : ""}`]);
  facts.push(["Step id", el("code", {}, step.step_id)]);
  if (step.parent_step_id) {
    facts.push(["Parent", el("a", { href: href("run", step.run_id, { step: step.parent_step_id }) }, step.parent_step_id)]);
  }
  if (step.children?.length) facts.push(["Children", fmt.int(step.children.length)]);
  if (step.replay_run_ids?.length) {
    facts.push(["Replayed in", el("span", {}, step.replay_run_ids.map((id, k) => [k ? ", " : "",
      el("a", { href: href("run", id) }, `run ${id.slice(0, 8)}`), " (",
      el("a", { href: href("compare", null, { a: step.run_id, b: id }) }, "compare"), ")"]))]);
  }
  const sections = [el("dl", { class: "facts" }, facts.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]))];
  if (step.status === "error" || step.error || step.traceback) sections.push(errorSection(step));
  sections.push(payload("Input", step.input_data), payload("Output", step.output_data));
  if (step.metadata != null && !(typeof step.metadata === "object" && !Object.keys(step.metadata).length)) {
    sections.push(payload("Metadata", step.metadata, false));
  }
  return el("div", { class: "detail-body" }, sections);
}

function errorSection(step) {
  const lines = (step.traceback || "").replace(/\n+$/, "").split("\n");
  return el("section", { class: "detail-error" },
    el("h3", {}, "Error"),
    el("p", { class: "err" }, el("strong", {}, step.error_type || "error"),
      step.error ? ` ${step.error.replace(new RegExp(`^${escapeRe(step.error_type || "")}:\\s*`), "")}` : ""),
    step.traceback && el("details", { open: true }, el("summary", {}, `Traceback (${lines.length} lines)`),
      el("pre", { class: "traceback" }, lines.map((line) => el("div", {
        class: /^\s*File "/.test(line) ? "tb-frame" : /^\S/.test(line) ? "tb-head" : "tb-code",
      }, line)))));
}

function escapeRe(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function payload(title, value, open = true) {
  const view = el("div", { class: "payload-view" }, value === undefined || value === null
    ? el("p", { class: "muted" }, value === null ? "none recorded" : "–") : jsonView(value));
  const raw = () => (typeof value === "string" ? value : JSON.stringify(value, null, 2));
  return el("section", { class: "payload" },
    el("details", { open },
      el("summary", {}, el("h3", {}, title)),
      el("div", { class: "payload-actions" },
        el("button", { type: "button", class: "small", onclick: () => setAllOpen(view, true) }, "Expand all"),
        el("button", { type: "button", class: "small", onclick: () => setAllOpen(view, false) }, "Collapse all"),
        el("button", { type: "button", class: "small", onclick: () => copyText(raw()) }, "Copy JSON")),
      view));
}
