// TraceForge dashboard: run list and a waterfall per run, kept live by /api/events.
// Plain JS, no build step. Data comes only from the daemon's JSON API.
"use strict";

const state = { selectedRun: null, refreshTimer: null };
const MAX_ROWS = 2000; // a plain DOM list stays responsive up to about this many rows

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function formatCost(usd, unpriced) {
  const text = usd == null ? "" : `$${usd.toFixed(usd < 0.01 ? 6 : 4)}`;
  if (!unpriced) return text || "$0";
  return `${text}${text ? " + " : ""}${unpriced} unpriced`;
}

function formatDuration(ms) {
  if (ms == null) return "running";
  return ms < 1000 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

async function getJSON(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

async function loadRuns() {
  const { runs } = await getJSON("/api/runs?limit=100");
  const body = document.querySelector("#runs tbody");
  body.replaceChildren(...runs.map(runRow));
  document.getElementById("runs-empty").hidden = runs.length > 0;
  if (!state.selectedRun && runs.length) await selectRun(runs[0].run_id);
}

function runRow(run) {
  const row = el("tr", { onclick: () => selectRun(run.run_id), "data-run-id": run.run_id },
    el("td", {}, run.run_name),
    el("td", { class: `status-${run.status}` }, run.status + (run.error_count ? ` (${run.error_count} failed)` : "")),
    el("td", {}, String(run.step_count)),
    el("td", {}, `${run.tokens_input} / ${run.tokens_output}`),
    el("td", { class: run.unpriced_steps ? "unpriced" : "" }, formatCost(run.cost_usd, run.unpriced_steps)),
    el("td", {}, formatDuration(run.duration_ms)),
    el("td", { class: "muted" }, new Date(run.started_at * 1000).toLocaleTimeString()));
  if (run.run_id === state.selectedRun) row.classList.add("selected");
  return row;
}

async function selectRun(runId) {
  state.selectedRun = runId;
  for (const row of document.querySelectorAll("#runs tbody tr")) {
    row.classList.toggle("selected", row.dataset.runId === runId);
  }
  await loadRun(runId);
}

async function loadRun(runId) {
  const detail = await getJSON(`/api/runs/${runId}`);
  const { run, steps } = detail;
  document.getElementById("run-panel").hidden = false;
  document.getElementById("run-title").textContent = run.run_name;
  document.getElementById("run-summary").textContent =
    `${run.status} · ${steps.length} steps · ${formatDuration(run.duration_ms)} · ` +
    `${formatCost(run.cost_usd, run.unpriced_steps)} · run ${run.run_id}`;
  const now = Date.now() / 1000;
  const span = steps.reduce((longest, s) => Math.max(longest, (s.ended_at ?? now) - run.started_at), 1e-6);
  const shown = steps.slice(0, MAX_ROWS);
  const rows = shown.map((step) => {
    const left = (step.offset_ms / 1000 / span) * 100;
    const width = (((step.ended_at ?? now) - step.started_at) / span) * 100;
    const bar = el("div", { class: `bar ${step.status}`, style: `left:${left}%;width:${width}%` });
    const label = step.model ? `${step.step_name}  ${step.model}` : step.step_name;
    return el("div", { class: "row", role: "row", onclick: () => showStep(step.step_id) },
      el("div", { class: `name status-${step.status}`, style: `padding-left:${step.depth * 1.2}em` }, label),
      el("div", { class: "track" }, bar),
      el("div", { class: "meta" }, stepMeta(step)));
  });
  if (steps.length > shown.length) {
    rows.push(el("p", { class: "muted" }, `showing the first ${shown.length} of ${steps.length} steps`));
  }
  document.getElementById("waterfall").replaceChildren(...rows);
}

function stepMeta(step) {
  const tokens = step.tokens_input + step.tokens_output;
  if (!tokens) return formatDuration(step.latency_ms);
  const cost = step.cost_usd == null ? "unpriced" : formatCost(step.cost_usd, 0);
  return `${formatDuration(step.latency_ms)} · ${tokens} tok · ${cost}`;
}

async function showStep(stepId) {
  const step = await getJSON(`/api/steps/${stepId}`);
  const detail = document.getElementById("step-detail");
  detail.hidden = false;
  detail.textContent = JSON.stringify(step, null, 2);
}

function scheduleRefresh() {
  if (state.refreshTimer) return;
  state.refreshTimer = setTimeout(async () => {
    state.refreshTimer = null;
    await loadRuns();
    if (state.selectedRun) await loadRun(state.selectedRun);
  }, 250);
}

function listen() {
  const live = document.getElementById("live");
  const events = new EventSource("/api/events");
  events.onopen = () => { live.textContent = "live"; };
  events.onerror = () => { live.textContent = "reconnecting…"; };
  for (const kind of ["run_start", "run_end", "step_start", "step_end"]) {
    events.addEventListener(kind, scheduleRefresh);
  }
}

loadRuns().catch((error) => { document.getElementById("live").textContent = String(error); });
listen();
