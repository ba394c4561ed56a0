// Replay a step: its recorded input as editable JSON; submitting asks POST /api/replay for
// the inputs to re-run it with, and shows them with a Python snippet that calls
// replay_step (the daemon runs nothing: your code does). Replays of the step are listed,
// each one click from a comparison with the original.

import * as api from "./api.js";
import { copyText, el, fill } from "./dom.js";
import * as fmt from "./format.js";
import { jsonView } from "./jsonview.js";
import * as live from "./live.js";
import { href } from "./router.js";

export class ReplayView {
  constructor(root) {
    this.root = root;
    this.stepId = null;
    live.on("run_start", (run) => {
      if (this.inputs && run.run_name === `replay: ${this.inputs.step_name}`) this.loadReplays();
    });
    live.on("run_end", (run) => {
      if (this.inputs && run.run_name === `replay: ${this.inputs.step_name}`) this.loadReplays();
    });
  }

  async show(route) {
    if (route.id === this.stepId && this.inputs) return;
    this.stepId = route.id;
    this.inputs = null;
    fill(this.root, el("h1", {}, "Replay"), el("p", { class: "muted" }, "loading…"));
    try {
      this.inputs = await api.get(`/api/steps/${route.id}/inputs`);
    } catch (error) {
      fill(this.root, el("h1", {}, "Replay"), el("p", { class: "err" }, error.message));
      return;
    }
    if (this.stepId !== route.id) return;
    this.draw();
    this.loadReplays();
  }

  hide() {}

  draw() {
    const inputs = this.inputs;
    const recorded = JSON.stringify(inputs.input_data, null, 2) ?? "null";
    this.editor = el("textarea", { class: "replay-input", spellcheck: "false",
      "aria-label": "Input to replay with (JSON)", oninput: () => this.validate() });
    this.editor.value = recorded;
    this.editor.rows = Math.max(6, Math.min(24, recorded.split("\n").length + 2));
    this.problem = el("p", { class: "err small", role: "status" });
    this.submit = el("button", { type: "submit", class: "primary" }, "Get replay inputs");
    this.result = el("div", { class: "replay-result" });
    this.replays = el("div", { class: "replay-list" });
    const form = el("form", { class: "replay-form", onsubmit: (e) => { e.preventDefault(); this.send(); } },
      el("label", { for: "replay-input" }, el("h3", {}, "Input (JSON, editable)")), this.editor, this.problem,
      el("div", { class: "row-actions" }, this.submit,
        el("button", { type: "button", onclick: () => { this.editor.value = recorded; this.validate(); } }, "Reset to the recorded input")));
    this.editor.id = "replay-input";
    fill(this.root,
      el("div", { class: "replay-head" }, el("h1", {}, `Replay ${inputs.step_name}`),
        el("span", { class: `badge st-${inputs.original_status}` }, inputs.original_status),
        el("p", { class: "muted" }, "step ", el("a", { href: href("run", inputs.run_id, { step: inputs.step_id }), class: "replay-step-link" }, inputs.step_id),
          " of ", el("a", { href: href("run", inputs.run_id) }, `run ${inputs.run_id.slice(0, 12)}…`),
          inputs.model ? ` · model ${inputs.model}` : "")),
      el("div", { class: "replay-grid" },
        el("div", {}, form,
          el("h3", {}, "Parameters"), jsonView(inputs.parameters),
          el("h3", {}, "Recorded output"), inputs.original_error ? el("p", { class: "err" }, inputs.original_error) : null,
          jsonView(inputs.original_output)),
        el("div", {}, this.result, el("h3", {}, "Replays of this step"), this.replays)));
  }

  validate() {
    try {
      JSON.parse(this.editor.value);
      this.problem.textContent = "";
      this.submit.disabled = false;
      return true;
    } catch (error) {
      this.problem.textContent = `Not valid JSON: ${error.message}`;
      this.submit.disabled = true;
      return false;
    }
  }

  async send() {
    if (!this.validate()) return;
    const edited = JSON.parse(this.editor.value);
    const same = JSON.stringify(edited) === JSON.stringify(this.inputs.input_data);
    let answer;
    try {
      answer = await api.post("/api/replay", { step_id: this.inputs.step_id, ...(same ? {} : { override_input: edited }) });
    } catch (error) {
      fill(this.result, el("p", { class: "err" }, error.message));
      return;
    }
    const code = snippet(answer);
    fill(this.result,
      el("h3", {}, "Inputs to replay with"),
      el("p", { class: "muted small" }, answer.overridden ? "your edited input, in place of the recorded one" : "the recorded input, unchanged"),
      el("div", { class: "replay-inputs" }, jsonView(answer.input_data)),
      el("h3", {}, "Run it from Python"),
      el("p", { class: "muted small" }, "replay_step calls your function with this input inside a new run linked to the original; it appears here and in the run list as it runs."),
      el("pre", { class: "snippet" }, el("code", {}, code)),
      el("button", { type: "button", onclick: () => copyText(code) }, "Copy the snippet"));
  }

  async loadReplays() {
    let step;
    try {
      step = await api.get(`/api/steps/${this.inputs.step_id}`);
    } catch {
      return;
    }
    const ids = step.replay_run_ids;
    fill(this.replays, ids.length ? el("ul", {}, ids.map((id) => el("li", {},
      el("a", { href: href("run", id), class: "replay-run" }, `run ${id.slice(0, 12)}…`), " · ",
      el("a", { href: href("compare", null, { a: step.run_id, b: id }), class: "replay-compare" }, "compare with the original"))))
      : el("p", { class: "muted" }, "None yet."));
  }
}

/** Python that replays the step with these inputs. */
export function snippet(answer) {
  const lines = [
    "import traceforge_client as traceforge",
    "from traceforge_client.replay import replay_step",
    "",
    "",
    "def run_step(input_data):",
    `    # Call what ${answer.step_name} called (your LLM call, tool or function) and return its output.`,
    "    raise NotImplementedError",
    "",
    "",
    "result = replay_step(",
    "    traceforge.get_storage(),",
    `    ${JSON.stringify(answer.step_id)},`,
    "    executor=run_step,",
  ];
  if (answer.overridden) lines.push(`    override_input=${fmt.python(answer.input_data, 4)},`);
  lines.push(")", 'print("replay run:", result.run_id)', "");
  return lines.join("\n");
}
