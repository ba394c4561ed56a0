// Two runs side by side: totals and each pair of steps as /api/compare aligns them, with
// B-minus-A deltas green where B does better (less time, fewer tokens, lower cost) and
// red where it does worse; steps on one side only are marked.

import * as api from "./api.js";
import { el, fill } from "./dom.js";
import * as fmt from "./format.js";
import { go, href } from "./router.js";
import { pickRun } from "./picker.js";
import { VirtualList } from "./vlist.js";

const ROW = 26;

export class CompareView {
  constructor(root) {
    this.root = root;
    this.head = el("div", { class: "cmp-head" });
    this.totals = el("div", { class: "cmp-totals" });
    this.caption = el("div", { class: "cmp-caption muted" });
    this.body = el("div", { class: "cmp-body", role: "table", "aria-label": "Steps compared" });
    root.append(this.head, this.totals, this.caption,
      el("div", { class: "cmp-row cmp-header", role: "row" },
        ["Step", "Paired by", "A time", "B time", "Δ time", "A tokens", "B tokens", "Δ tokens", "A cost", "B cost", "Δ cost"]
          .map((h, k) => el("span", { class: k > 1 ? "num" : "", role: "columnheader" }, h))),
      this.body);
    this.list = new VirtualList(this.body, { rowHeight: ROW, create: () => this.createRow(),
      render: (node, row) => this.renderRow(node, row) });
  }

  async show(route) {
    const a = route.params.get("a");
    const b = route.params.get("b");
    if (!a || !b) {
      this.data = null;
      this.key = null;
      fill(this.head, el("h1", {}, "Compare two runs"),
        el("p", {}, "Tick two runs in the ", el("a", { href: href("runs") }, "run list"),
          ", or open a run and choose ", el("em", {}, "Compare with…"), "."),
        a && el("button", { type: "button", class: "primary", onclick: () => this.change(a, "b") }, "Pick run B…"));
      this.totals.replaceChildren();
      this.caption.textContent = "";
      this.list.setCount(0);
      return;
    }
    if (this.key === `${a}|${b}`) return;
    this.key = `${a}|${b}`;
    this.data = null;
    fill(this.head, el("h1", {}, "Comparing…"));
    this.totals.replaceChildren();  // nothing of the last pair stays in view
    this.caption.textContent = "";
    this.list.setCount(0);
    let data;
    try {
      data = await api.get("/api/compare", { run_id_a: a, run_id_b: b });
    } catch (error) {
      if (this.key !== `${a}|${b}`) return;
      this.key = null;  // visiting again tries again
      fill(this.head, el("h1", {}, "Cannot compare"), el("p", { class: "err" }, error.message));
      this.list.setCount(0);
      return;
    }
    if (this.key !== `${a}|${b}`) return;
    this.data = data;
    this.draw();
  }

  hide() {}

  async change(keep, which) {
    const other = await pickRun({ exclude: keep, title: `Pick run ${which.toUpperCase()}` });
    if (!other) return;
    go(href("compare", null, which === "b" ? { a: keep, b: other } : { a: other, b: keep }));
  }

  draw() {
    const { run_a: a, run_b: b, totals, steps } = this.data;
    const card = (run, label) => el("div", { class: `cmp-card cmp-${label.toLowerCase()}` },
      el("div", { class: "cmp-label" }, label),
      el("a", { href: href("run", run.run_id), class: "cmp-name" }, run.run_name),
      el("span", { class: `badge st-${run.status}` }, run.status),
      el("div", { class: "muted small" }, `${fmt.datetime(run.started_at)} · ${run.run_id.slice(0, 12)}…`),
      run.replay_of_run_id === (label === "A" ? b : a).run_id && el("div", { class: "small" }, "a replay of the other run"));
    fill(this.head,
      el("h1", {}, "Compare"),
      el("div", { class: "cmp-cards" }, card(a, "A"), card(b, "B"),
        el("div", { class: "cmp-actions" },
          el("button", { type: "button", onclick: () => go(href("compare", null, { a: b.run_id, b: a.run_id })) }, "Swap A and B"),
          el("button", { type: "button", onclick: () => this.change(a.run_id, "b") }, "Change B…"))));
    const figures = [
      ["Duration", "duration_ms", fmt.duration], ["Steps", "step_count", fmt.int],
      ["Failed steps", "error_count", fmt.int], ["Input tokens", "tokens_input", fmt.int],
      ["Output tokens", "tokens_output", fmt.int], ["Total tokens", "total_tokens", fmt.int],
      ["Cost", "cost_usd", fmt.cost], ["Unpriced steps", "unpriced_steps", fmt.int],
    ];
    fill(this.totals, el("table", { class: "grid-table cmp-totals-table" },
      el("thead", {}, el("tr", {}, el("th", {}, ""), el("th", { class: "num" }, "A"),
        el("th", { class: "num" }, "B"), el("th", { class: "num" }, "B − A"))),
      el("tbody", {}, figures.map(([label, key, f]) => el("tr", { dataset: { figure: key } },
        el("th", { scope: "row" }, label), el("td", { class: "num" }, f(totals.a[key])),
        el("td", { class: "num" }, f(totals.b[key])),
        deltaCell("td", totals.delta[key], f, key === "duration_ms" ? noise(totals.a[key], totals.b[key]) : 0))))));
    this.rows = steps;
    const onlyA = this.data.only_in_a.length;
    const onlyB = this.data.only_in_b.length;
    this.caption.textContent = `${fmt.int(this.data.matched)} steps paired · ${fmt.int(onlyA)} only in A · ${fmt.int(onlyB)} only in B`;
    this.list.setCount(steps.length);
  }

  createRow() {
    const cells = [];
    for (let k = 0; k < 11; k++) cells.push(el("span", { class: k > 1 ? "num" : "", role: "cell" }));
    return el("div", { class: "cmp-row", role: "row" }, cells);
  }

  renderRow(node, row) {
    const pair = this.rows[row];
    const { a, b, delta } = pair;
    const cells = node.children;
    node.className = `cmp-row${!a ? " only-b" : !b ? " only-a" : ""}`;
    node.dataset.step = pair.step_name;
    const depth = (a || b).depth;
    const name = cells[0];
    name.style.paddingLeft = `${6 + Math.min(depth, 30) * 14}px`;
    fill(name, el("span", { class: "cmp-step", title: pair.step_name }, pair.step_name), " ",
      a && el("a", { href: href("run", this.data.run_a.run_id, { step: a.step_id }), class: "small", title: "open in run A" }, "A"),
      a && b && " ",
      b && el("a", { href: href("run", this.data.run_b.run_id, { step: b.step_id }), class: "small", title: "open in run B" }, "B"));
    const side = pair.match ? null : !a ? "only in B" : "only in A";
    cells[1].textContent = side || pair.match;
    cells[1].className = `cmp-match ${side ? "only" : "muted"}`;
    if (side) name.append(" ", el("span", { class: "only only-tag" }, side));
    const put = (k, side, key, f) => { cells[k].textContent = side ? f(side[key]) : ""; };
    put(2, a, "latency_ms", fmt.duration);
    put(3, b, "latency_ms", fmt.duration);
    setDelta(cells[4], delta && delta.latency_ms, fmt.duration,
      noise(a && a.latency_ms, b && b.latency_ms));
    const total = (s) => s.tokens_input + s.tokens_output;
    cells[5].textContent = a ? fmt.int(total(a)) : "";
    cells[6].textContent = b ? fmt.int(total(b)) : "";
    setDelta(cells[7], delta && delta.total_tokens, fmt.int);
    put(8, a, "cost_usd", fmt.cost);
    put(9, b, "cost_usd", fmt.cost);
    setDelta(cells[10], delta && delta.cost_usd, fmt.cost);
  }
}

function deltaCell(tag, value, f, tolerance) {
  const cell = el(tag, {});
  setDelta(cell, value, f, tolerance);
  return cell;
}

/** Timings differing by less than this are the same run to run: 2 %, at least 0.1 ms. */
function noise(a, b) {
  return a == null || b == null ? 0 : Math.max(0.1, 0.02 * Math.max(a, b));
}

/** A delta as "▼ −12 ms" (green: B is better) or "▲ +12 ms" (red: B is worse); within
 *  tolerance it is shown grey, as neither. */
function setDelta(cell, value, f, tolerance = 0) {
  const verdict = value != null && Math.abs(value) < tolerance ? 0 : fmt.verdict(value);
  cell.className = `num delta ${verdict > 0 ? "better" : verdict < 0 ? "worse" : "same"}`;
  cell.textContent = value == null ? "" : value === 0 ? "=" : `${value < 0 ? "▼" : "▲"} ${fmt.signed(value, f)}`;
  cell.title = value == null ? "" : verdict > 0 ? "B is better" : verdict < 0 ? "B is worse" : "the same";
}
