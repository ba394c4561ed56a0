// "Compare with…": a dialog that picks a run, runs of the same name first.

import * as api from "./api.js";
import { debounce, el, fill } from "./dom.js";
import * as fmt from "./format.js";

export function pickRun({ exclude = null, name = null, title = "Pick a run" } = {}) {
  return new Promise((resolve) => {
    const list = el("ul", { class: "picker-list", role: "listbox", "aria-label": "runs" });
    const search = el("input", { type: "search", placeholder: "Filter runs by name", "aria-label": "Filter runs by name" });
    const dialog = el("dialog", { class: "picker" },
      el("form", { method: "dialog", class: "picker-head" },
        el("h2", {}, title), el("button", { value: "cancel", "aria-label": "close" }, "×")),
      search, list);
    let chosen = null;
    const choose = (runId) => {
      chosen = runId;
      dialog.close();
    };
    const item = (run) => el("li", {},
      el("button", { type: "button", class: "picker-run", onclick: () => choose(run.run_id), dataset: { runId: run.run_id } },
        el("span", { class: "picker-name" }, run.run_name),
        el("span", { class: `badge st-${run.status}` }, run.status),
        el("span", { class: "muted" }, `${fmt.datetime(run.started_at)} · ${fmt.int(run.step_count)} steps · ${fmt.runCost(run.cost_usd, run.unpriced_steps)}`)));
    const load = async () => {
      const q = search.value.trim();
      try {
        const [same, recent] = await Promise.all([
          name && !q ? api.get("/api/runs", { name, limit: 20 }) : { runs: [] },
          api.get("/api/runs", { q, limit: 50 }),
        ]);
        const seen = new Set([exclude]);
        const runs = [...same.runs, ...recent.runs].filter((r) => !seen.has(r.run_id) && seen.add(r.run_id));
        fill(list, runs.length ? runs.map(item) : el("li", { class: "muted" }, "No other run matches."));
      } catch (error) {
        fill(list, el("li", { class: "err" }, error.message));
      }
    };
    search.addEventListener("input", debounce(load, 150));
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(chosen);
    });
    document.body.append(dialog);
    dialog.showModal();
    search.focus();
    load();
  });
}
