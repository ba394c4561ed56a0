// Tokens and cost of one run: totals, totals per model, and a per-step chart of input and
// output tokens with each step's cost and its share of the run's cost. The chart is a
// virtual list, so a run with 45,000 LLM calls scrolls like one with 45.

import { el, fill } from "./dom.js";
import * as fmt from "./format.js";
import * as M from "./model.js";
import { VirtualList } from "./vlist.js";

const ROW = 26;

export class Tokens {
  constructor(root, { onSelect }) {
    this.onSelect = onSelect;
    this.model = null;
    this.rows = [];
    this.selected = -1;
    this.summary = el("div", { class: "tk-summary" });
    this.models = el("div", { class: "tk-models" });
    this.sort = el("select", { "aria-label": "Order steps by", onchange: () => this.refresh() },
      el("option", { value: "start" }, "in start order"),
      el("option", { value: "cost" }, "most expensive first"),
      el("option", { value: "tokens" }, "most tokens first"));
    this.caption = el("span", { class: "muted" });
    this.body = el("div", { class: "tk-body", role: "list", tabindex: "0", "aria-label": "Tokens per step" });
    const legend = el("span", { class: "tk-legend" },
      el("i", { class: "sw in" }), " input ", el("i", { class: "sw out" }), " output");
    root.append(this.summary, this.models,
      el("div", { class: "tk-toolbar" }, el("h3", {}, "Per step"), this.sort, legend, this.caption),
      el("div", { class: "tk-head" }, el("span", {}, "Step"), el("span", {}, "Input · output tokens"),
        el("span", { class: "num" }, "In"), el("span", { class: "num" }, "Out"),
        el("span", { class: "num" }, "Cost"), el("span", { class: "num" }, "Share")),
      this.body);
    this.list = new VirtualList(this.body, { rowHeight: ROW, create: () => this.createRow(),
      render: (node, row) => this.renderRow(node, row) });
    this.body.addEventListener("click", (event) => {
      const node = event.target.closest(".tk-row");
      if (node) this.onSelect(Number(node.dataset.index));
    });
  }

  setModel(model) {
    this.model = model;
    if (model) this.refresh();
    else {
      for (const part of [this.summary, this.models]) part.replaceChildren();
      this.rows = [];
      this.list.setCount(0);
    }
  }

  /** Recompute from the model (it changed, or the order did). */
  refresh() {
    const model = this.model;
    if (!model) return;
    const t = model.totals;
    const total = M.totalCost(t);
    this.totalCost = total;
    fill(this.summary,
      figure("Input tokens", fmt.int(t.tin), "tk-total-in"),
      figure("Output tokens", fmt.int(t.tout), "tk-total-out"),
      figure("Cache read · write", `${fmt.int(t.tcr)} · ${fmt.int(t.tcw)}`, "tk-total-cache"),
      figure("Cost", fmt.runCost(total, t.unpriced), "tk-total-cost"),
      figure("LLM steps", fmt.int(model.steps.filter((s) => s.model).length), "tk-llm-steps"));
    const groups = M.byModel(model);
    fill(this.models, el("table", { class: "grid-table" },
      el("thead", {}, el("tr", {}, ["Model", "Steps", "Input", "Output", "Cache read", "Cache write", "Cost", "Share of cost"]
        .map((h, k) => el("th", { class: k ? "num" : "" }, h)))),
      el("tbody", {}, groups.length ? groups.map((g) => el("tr", {},
        el("td", {}, g.model), el("td", { class: "num" }, fmt.int(g.steps)),
        el("td", { class: "num" }, fmt.int(g.tin)), el("td", { class: "num" }, fmt.int(g.tout)),
        el("td", { class: "num" }, fmt.int(g.tcr)), el("td", { class: "num" }, fmt.int(g.tcw)),
        el("td", { class: "num" }, fmt.runCost(M.totalCost(g), g.unpriced)),
        el("td", { class: "num" }, fmt.percent(g.cost, total)))) : el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No step of this run used a model.")))));
    this.rows = model.steps.filter((s) => s.tin + s.tout + s.tcr + s.tcw > 0 || s.cost);
    const order = this.sort.value;
    if (order === "cost") this.rows.sort((a, b) => (b.cost ?? -1) - (a.cost ?? -1));
    else if (order === "tokens") this.rows.sort((a, b) => b.tin + b.tout - (a.tin + a.tout));
    else this.rows.sort((a, b) => a.start - b.start);
    this.max = this.rows.reduce((m, s) => Math.max(m, s.tin + s.tout), 1);
    this.caption.textContent = `${fmt.int(this.rows.length)} steps with tokens or cost`;
    this.list.setCount(this.rows.length);
  }

  select(stepIndex) {
    this.selected = stepIndex;
    const row = this.rows.findIndex((s) => s.i === stepIndex);
    if (row >= 0) this.list.scrollTo(row);
    this.list.render(true);
  }

  createRow() {
    return el("div", { class: "tk-row", role: "listitem" },
      el("span", { class: "tk-name" }, el("span", { class: "tk-label" }), el("span", { class: "wf-model" })),
      el("span", { class: "tk-bars" }, el("i", { class: "tk-in" }), el("i", { class: "tk-out" })),
      el("span", { class: "num tk-in-n" }), el("span", { class: "num tk-out-n" }),
      el("span", { class: "num tk-cost" }), el("span", { class: "num tk-share" }));
  }

  renderRow(node, row) {
    const step = this.rows[row];
    const [name, bars, tin, tout, costCell, share] = node.children;
    node.dataset.index = step.i;
    node.classList.toggle("selected", step.i === this.selected);
    node.classList.toggle("st-error", step.status === "error");
    name.firstChild.textContent = step.name;
    name.lastChild.textContent = step.model || "";
    name.title = `${step.name}${step.model ? ` (${step.model})` : ""}`;
    bars.firstChild.style.width = `${(step.tin / this.max) * 100}%`;
    bars.lastChild.style.width = `${(step.tout / this.max) * 100}%`;
    bars.title = `${fmt.int(step.tin)} in · ${fmt.int(step.tout)} out` +
      (step.tcr || step.tcw ? ` · cache ${fmt.int(step.tcr)} read, ${fmt.int(step.tcw)} write` : "");
    tin.textContent = fmt.tokens(step.tin);
    tout.textContent = fmt.tokens(step.tout);
    costCell.textContent = fmt.cost(step.cost);
    costCell.classList.toggle("unpriced", step.cost == null);
    share.textContent = step.cost == null ? "–" : fmt.percent(step.cost, this.totalCost);
  }
}

function figure(label, value, id) {
  return el("div", { class: "figure" }, el("div", { class: "muted small" }, label),
    el("div", { class: "figure-value", "data-figure": id }, value));
}
