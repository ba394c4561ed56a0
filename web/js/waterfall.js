// The waterfall: a timeline in the style of the DevTools Network panel. One virtual row
// per visible step (name indented by depth, a bar placed by its offset and sized by its
// duration on a shared time axis, duration, tokens and cost), collapsible subtrees, a
// filter that keeps ancestors, running bars that grow, and keyboard navigation.

import { el } from "./dom.js";
import * as fmt from "./format.js";
import * as M from "./model.js";
import { VirtualList } from "./vlist.js";
import { handleKey, hover } from "./waterfall-input.js";

export const ROW_HEIGHT = 24;
const INDENT = 14;
const MAX_INDENT_LEVELS = 40;
const LIVE_REDRAW_MS = 250;  // running bars grow at 4 frames a second: smooth, and cheap
const REFLATTEN_MS = 200;    // new steps re-shape the tree at most 5 times a second
const REDRAW_MS = 100;       // ended steps redraw the rows in view at most 10 times a second

export class Waterfall {
  constructor(root, { onSelect, onFilter }) {
    this.onSelect = onSelect;
    this.onFilter = onFilter;
    this.model = null;
    this.rows = new Int32Array(0);
    this.keep = null;
    this.hit = null;
    this.matchCount = 0;
    this.cursor = 0;      // the row with keyboard focus
    this.selected = -1;   // the step whose detail is open
    this.total = 1;
    this.now = 0;
    this.build(root);
    this.list = new VirtualList(this.body, {
      rowHeight: ROW_HEIGHT,
      create: () => this.createRow(),
      render: (node, row) => this.renderRow(node, row),
    });
    this.width = 0;  // the axis's width, read only when it changes (no forced layouts)
    new ResizeObserver((entries) => {
      this.width = entries[entries.length - 1].contentRect.width;
      const axisBox = this.axis.getBoundingClientRect();
      const wrapBox = this.grid.parentNode.getBoundingClientRect();
      this.grid.style.left = `${axisBox.left - wrapBox.left}px`;
      this.grid.style.width = `${axisBox.width}px`;
      this.drawAxis(true);
    }).observe(this.axis);
    this.timer = setInterval(() => this.tick(), LIVE_REDRAW_MS);
  }

  build(root) {
    this.filter = el("input", { type: "search", class: "wf-filter", "aria-label": "Filter steps",
      placeholder: "Filter: name, status:error, model:haiku, dur>1s, tok>500",
      oninput: () => this.filterSoon(), onkeydown: (e) => this.filterKey(e) });
    this.count = el("span", { class: "wf-count muted", "aria-live": "polite" });
    this.level = el("select", { class: "wf-level", "aria-label": "Show levels",
      onchange: () => this.openToLevel(Number(this.level.value) || Infinity) },
      el("option", { value: "" }, "all levels"),
      [1, 2, 3, 4, 5, 6].map((n) => el("option", { value: n }, `${n} level${n > 1 ? "s" : ""}`)));
    const button = (label, title, action) => el("button", { type: "button", title, onclick: action }, label);
    this.toolbar = el("div", { class: "wf-toolbar" },
      this.filter, this.count,
      button("‹", "previous match (N)", () => this.nextMatch(-1)),
      button("›", "next match (n)", () => this.nextMatch(1)),
      el("span", { class: "grow" }),
      button("Expand all", "expand every subtree (])", () => this.openToLevel(Infinity)),
      button("Collapse all", "collapse every subtree ([)", () => this.openToLevel(1)),
      this.level,
      button("Next error", "next failed step (e)", () => this.nextError(1)));
    this.axis = el("div", { class: "wf-axis", "aria-hidden": "true" });
    this.head = el("div", { class: "wf-head" },
      el("div", { class: "wf-name" }, "Step"), this.axis,
      el("div", { class: "wf-dur num" }, "Duration"), el("div", { class: "wf-tok num" }, "Tokens"),
      el("div", { class: "wf-cost num" }, "Cost"));
    this.grid = el("div", { class: "wf-grid", "aria-hidden": "true" });
    this.body = el("div", { class: "wf-body", role: "treegrid", tabindex: "0",
      "aria-label": "Steps of the run: arrows move, Enter opens, left and right fold" });
    this.tooltip = el("div", { class: "tooltip", role: "tooltip", hidden: true });
    this.empty = el("p", { class: "wf-empty muted", hidden: true });
    root.append(this.toolbar, this.head, el("div", { class: "wf-wrap" }, this.grid, this.body,
      this.empty), this.tooltip);
    this.body.addEventListener("click", (e) => this.click(e));
    this.body.addEventListener("keydown", (e) => handleKey(this, e));
    this.body.addEventListener("pointermove", (e) => hover(this, e));
    this.body.addEventListener("pointerleave", () => { this.tooltip.hidden = true; });
    this.body.addEventListener("scroll", () => { this.tooltip.hidden = true; }, { passive: true });
  }

  /** Show a new run (or none). Keeps nothing of the previous one. */
  setModel(model, { filter = "", message = "" } = {}) {
    this.model = model;
    this.selected = -1;
    this.cursor = 0;
    this.filter.value = filter;
    this.level.value = "";
    this.body.scrollTop = 0;
    if (!model) {
      this.rows = new Int32Array(0);
      this.keep = this.hit = null;
      this.list.setCount(0);
      this.axis.replaceChildren();
      this.grid.replaceChildren();
      this.count.textContent = "";
      this.empty.textContent = message;
      this.empty.hidden = !message;
      return;
    }
    this.total = 0;
    this.total = this.measure();
    this.applyFilter(false);
    this.drawAxis(true);
  }

  // ---- rows ----

  createRow() {
    const name = el("div", { class: "wf-name", role: "gridcell" },
      el("span", { class: "wf-toggle", "aria-hidden": "true" }),
      el("span", { class: "wf-icon", "aria-hidden": "true" }),
      el("span", { class: "wf-label" }), el("span", { class: "wf-model" }));
    const barNode = el("div", { class: "wf-bar" });
    return el("div", { class: "wf-row", role: "row", tabindex: "-1" },
      name, el("div", { class: "wf-track", role: "gridcell" }, barNode),
      el("div", { class: "wf-dur num", role: "gridcell" }),
      el("div", { class: "wf-tok num", role: "gridcell" }),
      el("div", { class: "wf-cost num", role: "gridcell" }));
  }

  renderRow(node, row) {
    const step = this.model.steps[this.rows[row]];
    const [name, track, dur, tok, costCell] = node.children;
    const [toggle, icon, label, modelName] = name.children;
    const open = step.children && (this.keep || !step.closed);
    node.dataset.index = step.i;
    node.dataset.stepId = step.id;
    node.className = `wf-row st-${step.status}${step.i === this.selected ? " selected" : ""}` +
      (this.hit ? (this.hit[step.i] ? " match" : " context") : "") + (step.model ? " llm" : "");
    node.setAttribute("aria-rowindex", row + 1);
    node.setAttribute("aria-level", step.depth + 1);
    node.setAttribute("aria-selected", step.i === this.selected ? "true" : "false");
    if (step.children) node.setAttribute("aria-expanded", open ? "true" : "false");
    else node.removeAttribute("aria-expanded");
    node.tabIndex = row === this.cursor ? 0 : -1;
    if (document.activeElement === node && row !== this.cursor) this.body.focus({ preventScroll: true });
    name.style.paddingLeft = `${4 + Math.min(step.depth, MAX_INDENT_LEVELS) * INDENT}px`;
    toggle.textContent = step.children ? (open ? "▾" : "▸") : "";
    icon.textContent = step.status === "error" ? "✕" : step.status === "running" ? "…" : "";
    label.textContent = step.name;
    name.title = step.orphan ? `${step.name} (its parent is not in this run)` : step.name;
    modelName.textContent = step.model || "";
    const geometry = M.bar(step, this.total, this.now);
    const barNode = track.firstChild;
    barNode.style.left = `${geometry.left}%`;
    barNode.style.width = `${geometry.width}%`;
    dur.textContent = step.dur == null ? (step.status === "running" ? "running" : "–")
      : fmt.duration(step.dur);
    const tokens = step.tin + step.tout;
    tok.textContent = tokens ? fmt.tokens(tokens) : "";
    tok.title = tokens ? `${fmt.int(step.tin)} in · ${fmt.int(step.tout)} out` : "";
    costCell.textContent = step.cost == null ? (tokens ? "unpriced" : "") : step.cost ? fmt.cost(step.cost) : "";
  }

  /** Re-flatten the tree (after folding, filtering or new steps) and redraw. */
  reflow({ follow = false } = {}) {
    if (!this.model) return;
    const cursorStep = this.rows.length ? this.rows[this.cursor] : -1;
    const atBottom = this.body.scrollTop + this.body.clientHeight >= this.body.scrollHeight - ROW_HEIGHT;
    this.rows = M.flatten(this.model, this.keep);
    this.updateAxis(false);
    const found = cursorStep >= 0 ? this.rows.indexOf(cursorStep) : -1;
    this.cursor = found >= 0 ? found : Math.min(this.cursor, Math.max(0, this.rows.length - 1));
    this.body.setAttribute("aria-rowcount", this.rows.length);
    this.list.setCount(this.rows.length);
    if (follow && atBottom && this.rows.length) this.list.scrollTo(this.rows.length - 1);
    this.showCount();
    this.empty.hidden = this.rows.length > 0;
    this.empty.textContent = this.model.steps.length ? "No step matches the filter." : "No steps yet.";
    this.reflowTimer = null;
  }

  /** The model changed: structural (new steps) re-flattens soon, the rest redraws. */
  changed(structural) {
    if (structural) {
      if (!this.reflowTimer) this.reflowTimer = setTimeout(() => {
        if (this.keep) this.applyFilter(false); else this.reflow({ follow: true });
      }, REFLATTEN_MS);
    } else if (!this.redrawTimer && !this.reflowTimer) {
      this.redrawTimer = setTimeout(() => {
        this.redrawTimer = null;
        this.drawAxis(false);
      }, REDRAW_MS);
    }
  }

  /** Time passed: while the run runs, grow the running bars (only those, unless the axis
   *  rescaled, when every bar moves). */
  tick() {
    if (!this.model || document.hidden) return;
    if (this.model.run.status !== "running" && this.model.totals.running === 0) return;
    if (this.measure() !== this.total || this.width !== this.drawnWidth) {
      this.drawAxis(false);
      return;
    }
    for (const node of this.list.pool) {
      if (node._index < 0 || !node.classList.contains("st-running")) continue;
      const step = this.model.steps[this.rows[node._index]];
      if (step.dur == null) node.children[1].firstChild.style.width = `${M.bar(step, this.total, this.now).width}%`;
    }
  }

  // ---- the time axis ----

  /** Now and the axis length, in ms from the run's start. While the run runs the axis
   *  keeps a third more than it needs, so running bars visibly grow along a steady axis
   *  that rescales now and then, rather than all bars shrinking on every frame. */
  measure() {
    const seconds = Date.now() / 1000;
    this.now = (seconds - this.model.start) * 1000;
    const exact = M.timelineMs(this.model, seconds);
    if (this.model.run.status !== "running") return exact;
    return this.total >= exact && this.total <= exact * 2 ? this.total : exact * 1.33;
  }

  /** Redraw the axis if its length or width changed (force: anyway), then the rows. */
  drawAxis(force = false) {
    if (!this.model) return;
    this.updateAxis(force);
    this.list.render(true);
  }

  /** Ticks and grid lines for the current axis length; true when they were redrawn. */
  updateAxis(force) {
    const total = this.measure();
    const width = this.width;
    if (!force && total === this.total && width === this.drawnWidth) return false;
    this.total = total;
    this.drawnWidth = width;
    this.body.dataset.totalMs = total;
    const { step, ticks } = M.ticks(total, width);
    const labels = [];
    const lines = [];
    for (const t of ticks) {
      const left = (t / total) * 100;
      lines.push(el("div", { class: "wf-line", style: { left: `${left}%` } }));
      if ((t / total) * width + 52 <= width) {
        labels.push(el("span", { class: "wf-tick", style: { left: `${left}%` } }, M.tickLabel(t, step)));
      }
    }
    this.axis.replaceChildren(...labels);
    this.grid.replaceChildren(...lines);
    return true;
  }

  // ---- folding, filtering, moving ----

  toggle(stepIndex, open = null) {
    const step = this.model.steps[stepIndex];
    if (!step.children || this.keep) return;
    step.closed = open == null ? !step.closed : !open;
    this.reflow();
  }

  openToLevel(level) {
    if (!this.model) return;
    M.openToLevel(this.model, level);
    this.level.value = Number.isFinite(level) && level <= 6 ? String(level) : "";
    this.reflow();
    this.list.scrollTo(this.cursor);
  }

  filterSoon() {
    clearTimeout(this.filterTimer);
    this.filterTimer = setTimeout(() => this.applyFilter(true), 120);
  }

  applyFilter(report) {
    if (!this.model) return;
    const predicate = M.parseFilter(this.filter.value);
    if (predicate) {
      const found = M.matches(this.model, predicate);
      this.keep = found.keep;
      this.hit = found.hit;
      this.matchCount = found.count;
    } else {
      this.keep = this.hit = null;
    }
    this.reflow();
    if (report) this.onFilter(this.filter.value.trim());
  }

  filterKey(event) {
    if (event.key === "Enter") {
      event.preventDefault();
      this.nextMatch(event.shiftKey ? -1 : 1, true);
    } else if (event.key === "Escape") {
      this.filter.value = "";
      this.applyFilter(true);
      this.body.focus();
    } else if (event.key === "ArrowDown") {
      event.preventDefault();
      this.focusRow(this.cursor);
    }
  }

  showCount() {
    const total = this.model.steps.length;
    this.count.textContent = this.keep
      ? `${fmt.int(this.matchCount)} of ${fmt.int(total)} steps match`
      : `${fmt.int(total)} steps`;
  }

  /** Move the keyboard cursor to row and focus it. */
  focusRow(row) {
    if (!this.rows.length) return;
    this.cursor = Math.max(0, Math.min(row, this.rows.length - 1));
    this.list.scrollTo(this.cursor);
    this.list.render(true);
    const node = this.list.nodeFor(this.cursor);
    if (node) node.focus({ preventScroll: true });
  }

  /** Select a step (open its detail) and bring it into view. */
  select(stepIndex, { scroll = "nearest", notify = true, focus = false } = {}) {
    if (!this.model || stepIndex < 0) return;
    let row = this.rows.indexOf(stepIndex);
    if (row < 0) {
      if (this.keep && !this.keep[stepIndex]) {  // hidden by the filter: drop the filter
        this.filter.value = "";
        this.keep = this.hit = null;
        this.onFilter("");
      }
      M.reveal(this.model, stepIndex);
      this.reflow();
      row = this.rows.indexOf(stepIndex);
    }
    this.selected = stepIndex;
    this.cursor = Math.max(0, row);
    this.list.scrollTo(this.cursor, scroll);
    this.list.render(true);
    if (focus) this.focusRow(this.cursor);
    if (notify) this.onSelect(stepIndex);
  }

  nextMatch(direction, fromFilter = false) {
    if (!this.hit) return;
    const row = this.findRow((i) => this.hit[i], direction);
    if (row >= 0) this.select(this.rows[row], { scroll: "center", focus: !fromFilter });
  }

  nextError(direction) {
    const row = this.findRow((i) => this.model.steps[i].status === "error", direction);
    if (row >= 0) this.select(this.rows[row], { scroll: "center", focus: true });
  }

  findRow(test, direction) {
    const n = this.rows.length;
    for (let k = 1; k <= n; k++) {
      const row = (((this.cursor + direction * k) % n) + n) % n;
      if (test(this.rows[row])) return row;
    }
    return -1;
  }

  click(event) {
    const node = event.target.closest(".wf-row");
    if (!node) return;
    const stepIndex = Number(node.dataset.index);
    if (event.target.closest(".wf-toggle")) {
      this.cursor = node._index;
      this.toggle(stepIndex);
      return;
    }
    this.cursor = node._index;
    this.select(stepIndex, { scroll: "nearest" });
    node.focus({ preventScroll: true });
  }
}
