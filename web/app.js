// TraceForge dashboard: plain HTML, CSS and JavaScript modules, no build step, nothing
// from another host. Each view lives in js/<view>.js; this file routes between them.
// Data comes only from the daemon's API (/api/runs, /api/runs/{id}/steps, /api/steps/,
// /api/compare, /api/replay, /api/search, /api/stats) and its live stream (/api/events).

import * as health from "./js/health.js";
import * as keys from "./js/keys.js";
import * as live from "./js/live.js";
import * as router from "./js/router.js";
import * as theme from "./js/theme.js";
import { CompareView } from "./js/compare.js";
import { ReplayView } from "./js/replay.js";
import { RunView } from "./js/run.js";
import { RunsView } from "./js/runs.js";
import { SearchView } from "./js/search.js";
import { StatsView } from "./js/stats.js";

const section = (name) => document.getElementById(`view-${name}`);
const views = {
  runs: new RunsView(section("runs")),
  run: new RunView(section("run")),
  compare: new CompareView(section("compare")),
  replay: new ReplayView(section("replay")),
  search: new SearchView(section("search")),
  stats: new StatsView(section("stats")),
};
const TITLES = { runs: "Runs", run: "Run", compare: "Compare", replay: "Replay", search: "Search", stats: "Stats" };
let shown = null;

router.onRoute((route) => {
  const name = views[route.view] ? route.view : "runs";
  for (const [key, view] of Object.entries(views)) {
    section(key).hidden = key !== name;
    if (key !== name && key === shown) view.hide();
  }
  shown = name;
  for (const a of document.querySelectorAll("header nav a")) {
    if (a.dataset.view === (name === "run" || name === "replay" ? "runs" : name)) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `${TITLES[name]} · TraceForge`;
  views[name].show(route);
});

theme.install();
keys.install({
  filterBox: (view) => ({ run: views.run.waterfall.filter, runs: views.runs.q, search: views.search.name })[view],
  tab: (tab) => router.update({ tab: tab === "waterfall" ? null : tab }, { push: true }),
});
document.getElementById("help-button").addEventListener("click", keys.showHelp);
live.connect();
live.on("resync", () => health.check());
health.watch();
router.start();
