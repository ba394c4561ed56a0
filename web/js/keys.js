// Keys that work on every page, and the "?" overlay that lists them all.

import { el } from "./dom.js";
import { current } from "./router.js";
import { KEYS as WATERFALL_KEYS } from "./waterfall-input.js";

const GLOBAL_KEYS = [
  ["?", "show this list"],
  ["/", "filter: the steps of a run, or the run list"],
  ["Esc", "close a dialog; in the filter box, clear it"],
];

function typing(target) {
  return target.closest("input, textarea, select, [contenteditable]") != null;
}

export function showHelp() {
  if (document.getElementById("help")) return;
  const table = (title, rows) => el("section", {}, el("h3", {}, title), el("table", { class: "keys" },
    el("tbody", {}, rows.map(([k, what]) => el("tr", {}, el("th", {}, el("kbd", {}, k)), el("td", {}, what))))));
  const dialog = el("dialog", { id: "help", class: "help", "aria-labelledby": "help-title" },
    el("form", { method: "dialog", class: "picker-head" },
      el("h2", { id: "help-title" }, "Keyboard"), el("button", { value: "close", "aria-label": "close" }, "×")),
    el("div", { class: "help-cols" }, table("Everywhere", GLOBAL_KEYS), table("Waterfall (when it has focus)", WATERFALL_KEYS)));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

export function install(handlers) {
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    if (typing(event.target) || document.querySelector("dialog[open]")) return;
    const view = current().view;
    if (event.key === "?") {
      event.preventDefault();
      showHelp();
    } else if (event.key === "/") {
      const box = handlers.filterBox(view);
      if (box) {
        event.preventDefault();
        box.focus();
        box.select();
      }
    } else if (view === "run" && (event.key === "t" || event.key === "w")) {
      handlers.tab(event.key === "t" ? "tokens" : "waterfall");
    }
  });
}
