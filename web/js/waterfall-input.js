// The waterfall's input: its keys (the ? overlay lists them: arrows move and fold, Enter
// opens) and the tooltip that follows the pointer over the bars.

import { el, fill } from "./dom.js";
import * as fmt from "./format.js";

export const KEYS = [
  ["↑ ↓  or  k j", "previous / next step"],
  ["Home  End  PgUp  PgDn", "first / last / a page up or down"],
  ["→  or  l", "open a subtree, then go to its first step"],
  ["←  or  h", "close a subtree, or go to the parent"],
  ["Enter  Space", "open the step's detail"],
  ["]  [", "expand all / collapse all"],
  ["1 … 9", "show that many levels"],
  ["e  E", "next / previous failed step"],
  ["n  N", "next / previous filter match"],
  ["/", "filter the steps"],
  ["t", "tokens and cost view; w: waterfall"],
];

export function handleKey(wf, event) {
  if (event.altKey || event.ctrlKey || event.metaKey || !wf.model || !wf.rows.length) return;
  const step = wf.model.steps[wf.rows[wf.cursor]];
  const page = Math.max(1, Math.floor(wf.body.clientHeight / 24) - 1);
  const open = step && step.children && !step.closed;
  let handled = true;
  switch (event.key) {
    case "ArrowDown": case "j": wf.focusRow(wf.cursor + 1); break;
    case "ArrowUp": case "k": wf.focusRow(wf.cursor - 1); break;
    case "Home": wf.focusRow(0); break;
    case "End": wf.focusRow(wf.rows.length - 1); break;
    case "PageDown": wf.focusRow(wf.cursor + page); break;
    case "PageUp": wf.focusRow(wf.cursor - page); break;
    case "ArrowRight": case "l":
      if (step.children && step.closed && !wf.keep) {
        wf.toggle(step.i, true);
        wf.focusRow(wf.cursor);
      } else if (step.children) wf.focusRow(wf.cursor + 1);
      break;
    case "ArrowLeft": case "h":
      if (open && !wf.keep) {
        wf.toggle(step.i, false);
        wf.focusRow(wf.cursor);
      } else if (step.parent >= 0) {
        const row = wf.rows.indexOf(step.parent);
        if (row >= 0) wf.focusRow(row);
      }
      break;
    case "Enter": case " ":
      wf.select(step.i, { scroll: "nearest" });
      wf.focusRow(wf.cursor);
      break;
    case "]": wf.openToLevel(Infinity); wf.focusRow(wf.cursor); break;
    case "[": wf.openToLevel(1); wf.focusRow(wf.cursor); break;
    case "e": wf.nextError(1); break;
    case "E": wf.nextError(-1); break;
    case "n": wf.nextMatch(1); break;
    case "N": wf.nextMatch(-1); break;
    default:
      if (/^[1-9]$/.test(event.key)) {
        wf.openToLevel(Number(event.key));
        wf.focusRow(wf.cursor);
      } else handled = false;
  }
  if (handled) {
    event.preventDefault();
    event.stopPropagation();
  }
}

/** Show the hovered bar's name, duration, model, tokens and error beside the pointer. */
export function hover(wf, event) {
  const tip = wf.tooltip;
  const track = event.target.closest(".wf-track");
  if (!track) {
    tip.hidden = true;
    return;
  }
  const step = wf.model.steps[Number(track.parentNode.dataset.index)];
  if (wf.tooltipStep !== step || tip.hidden) {
    wf.tooltipStep = step;
    const tokens = step.tin + step.tout;
    fill(tip,
      el("strong", {}, step.name),
      el("div", {}, step.dur == null ? `running for ${fmt.duration(wf.now - step.start)}` : fmt.duration(step.dur),
        el("span", { class: "muted" }, ` · starts at +${fmt.duration(step.start)}`)),
      step.model && el("div", {}, step.model),
      tokens ? el("div", {}, `${fmt.int(step.tin)} in · ${fmt.int(step.tout)} out` +
        (step.tcr || step.tcw ? ` · cache ${fmt.int(step.tcr)} read, ${fmt.int(step.tcw)} write` : "")) : null,
      step.status === "error" && el("div", { class: "err" }, step.error || step.errorType || "error"));
    tip.hidden = false;
  }
  const x = Math.min(event.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
  const y = event.clientY + 18 + tip.offsetHeight > window.innerHeight
    ? event.clientY - tip.offsetHeight - 10 : event.clientY + 18;
  tip.style.transform = `translate(${Math.max(4, x)}px, ${y}px)`;
}
