// A run as the dashboard holds it, and the layout math of the waterfall. Pure functions
// with no DOM, so the browser tests can call them directly (page.evaluate + import()).
//
// A step is a plain object: {i, id, parent (index or -1), parentId, name, model, status,
// start (ms after the run's start), dur (ms, null while running), tin, tout, tcr, tcw,
// cost (null: unpriced), errorType, error, children (indexes, in start order, or null),
// depth, closed (subtree collapsed), orphan}. Steps are kept in arrival order; the tree
// (roots and children) gives the start order.

/** The model of a run from GET /api/runs/{id}/steps (compact columns). */
export function buildRun(answer) {
  const c = answer.steps;
  const n = answer.count;
  const errors = new Map(answer.errors.map((e) => [e.index, e]));
  const orphans = new Set(answer.orphans);
  const steps = new Array(n);
  for (let i = 0; i < n; i++) {
    const parent = c.parent[i];
    const error = errors.get(i);
    steps[i] = {
      i, id: c.step_id[i], parent, parentId: parent >= 0 ? c.step_id[parent] : null,
      name: answer.names[c.name[i]], model: c.model[i] >= 0 ? answer.models[c.model[i]] : null,
      status: answer.statuses[c.status[i]], start: c.offset_ms[i], dur: c.latency_ms[i],
      tin: c.tokens_input[i], tout: c.tokens_output[i], tcr: c.tokens_cache_read[i],
      tcw: c.tokens_cache_write[i], cost: c.cost_usd[i],
      errorType: error ? error.error_type : null, error: error ? error.error : null,
      children: null, depth: 0, closed: false, orphan: orphans.has(i),
    };
  }
  const roots = [];
  for (let i = 0; i < n; i++) {
    const p = steps[i].parent;
    if (p < 0) roots.push(i);
    else (steps[p].children ||= []).push(i);
  }
  const model = {
    run: answer.run, start: answer.timeline.start, endMs: answer.timeline.duration_ms,
    steps, roots, byId: new Map(), waiting: new Map(), totals: null, version: 0,
  };
  for (const step of steps) model.byId.set(step.id, step.i);
  setDepths(model, roots, 0);
  model.totals = totalsOf(steps);
  return model;
}

function setDepths(model, from, depth) {
  const stack = from.map((i) => [i, depth]);
  while (stack.length) {
    const [i, d] = stack.pop();
    const step = model.steps[i];
    step.depth = d;
    if (step.children) for (const child of step.children) stack.push([child, d + 1]);
  }
}

/** Sums over steps, in the run summary's terms (cost null when nothing is priced). */
export function totalsOf(steps) {
  const totals = { steps: 0, running: 0, errors: 0, tin: 0, tout: 0, tcr: 0, tcw: 0,
    cost: 0, priced: 0, unpriced: 0 };
  for (const step of steps) count(totals, step, 1);
  return totals;
}

function count(totals, step, sign) {
  totals.steps += sign;
  if (step.status === "running") totals.running += sign;
  if (step.status === "error") totals.errors += sign;
  totals.tin += sign * step.tin;
  totals.tout += sign * step.tout;
  totals.tcr += sign * step.tcr;
  totals.tcw += sign * step.tcw;
  if (step.status === "running") return;  // not priced yet, either way
  if (step.cost == null) totals.unpriced += sign;
  else {
    totals.priced += sign;
    totals.cost += sign * step.cost;
  }
}

export function totalCost(totals) {
  return totals.unpriced && !totals.priced ? null : totals.cost;
}

/** Apply a live step summary (/api/events step_start or step_end) in place.
 *  Returns {index, added}: added is true when the tree changed shape. */
export function applyStep(model, summary) {
  const offset = (summary.started_at - model.start) * 1000;
  const known = model.byId.get(summary.step_id);
  if (known !== undefined) {
    const step = model.steps[known];
    if (summary.status === "running" && step.status !== "running") return { index: known, added: false };
    count(model.totals, step, -1);
    Object.assign(step, fields(summary, offset));
    count(model.totals, step, 1);
    extend(model, step);
    model.version++;
    return { index: known, added: false };
  }
  const i = model.steps.length;
  const step = { i, id: summary.step_id, parent: -1, parentId: summary.parent_step_id,
    ...fields(summary, offset), children: null, depth: 0, closed: false, orphan: false };
  model.steps.push(step);
  model.byId.set(step.id, i);
  count(model.totals, step, 1);
  const parent = step.parentId == null ? undefined : model.byId.get(step.parentId);
  if (parent === undefined) {
    step.orphan = step.parentId != null;
    insertByStart(model, model.roots, i);
    if (step.orphan) {
      if (!model.waiting.has(step.parentId)) model.waiting.set(step.parentId, []);
      model.waiting.get(step.parentId).push(i);
    }
  } else {
    link(model, parent, i);
  }
  const early = model.waiting.get(step.id);  // children that arrived before their parent
  if (early) {
    model.waiting.delete(step.id);
    for (const child of early) {
      model.roots.splice(model.roots.indexOf(child), 1);
      model.steps[child].orphan = false;
      link(model, i, child);
    }
  }
  extend(model, step);
  model.version++;
  return { index: i, added: true };
}

function fields(s, offset) {
  return {
    name: s.step_name, model: s.model ?? null, status: s.status, start: offset, dur: s.latency_ms ?? null,
    tin: s.tokens_input || 0, tout: s.tokens_output || 0, tcr: s.tokens_cache_read || 0,
    tcw: s.tokens_cache_write || 0, cost: s.cost_usd ?? null,
    errorType: s.error_type ?? null, error: s.error ?? null,
  };
}

function link(model, parent, child) {
  const p = model.steps[parent];
  model.steps[child].parent = parent;
  insertByStart(model, (p.children ||= []), child);
  setDepths(model, [child], p.depth + 1);
}

function insertByStart(model, list, i) {
  const start = model.steps[i].start;
  let at = list.length;
  while (at > 0 && model.steps[list[at - 1]].start > start) at--;
  list.splice(at, 0, i);
}

function extend(model, step) {
  const end = step.start + (step.dur || 0);
  if (end > model.endMs) model.endMs = end;
}

/** A status the daemon set itself ({step_id, status}, e.g. incomplete): in place. */
export function applyStatus(model, change) {
  const i = model.byId.get(change.step_id);
  if (i === undefined) return -1;
  const step = model.steps[i];
  count(model.totals, step, -1);
  step.status = change.status;
  count(model.totals, step, 1);
  model.version++;
  return i;
}

/** A run summary from the live stream (run_end, run_start) merged into the model's run. */
export function applyRun(model, summary) {
  Object.assign(model.run, summary);
  if (summary.ended_at != null) {
    model.endMs = Math.max(model.endMs, (summary.ended_at - model.start) * 1000);
  }
  model.version++;
}

/** The axis length: the run's extent, and while it runs, up to now. */
export function timelineMs(model, nowSeconds) {
  const live = model.run.status === "running" ? (nowSeconds - model.start) * 1000 : 0;
  return Math.max(model.endMs, live, 1e-3);
}

/** Where a step's bar sits, in % of the axis: {left, width}; running bars reach now. */
export function bar(step, totalMs, nowMs) {
  const running = step.dur == null;
  const end = running ? Math.max(step.start, nowMs) : step.start + step.dur;
  return {
    left: (step.start / totalMs) * 100,
    width: (Math.max(0, end - step.start) / totalMs) * 100,
  };
}

/** Pre-order rows of the tree: the step indexes shown, in order. Collapsed subtrees are
 *  skipped; with keep (a Uint8Array from matches()), only kept steps, all open. */
export function flatten(model, keep = null) {
  const out = new Int32Array(model.steps.length);
  let k = 0;
  const stack = [];
  for (let r = model.roots.length - 1; r >= 0; r--) stack.push(model.roots[r]);
  while (stack.length) {
    const i = stack.pop();
    if (keep && !keep[i]) continue;
    out[k++] = i;
    const step = model.steps[i];
    if (step.children && (keep || !step.closed)) {
      for (let c = step.children.length - 1; c >= 0; c--) stack.push(step.children[c]);
    }
  }
  return out.subarray(0, k);
}

/** Mark the steps matching predicate and their ancestors: {keep, matches (in tree order
 *  after flattening by the caller), count}. */
export function matches(model, predicate) {
  const keep = new Uint8Array(model.steps.length);
  const hit = new Uint8Array(model.steps.length);
  let count = 0;
  for (const step of model.steps) {
    if (!predicate(step)) continue;
    count++;
    hit[step.i] = 1;
    for (let j = step.i; j >= 0 && !keep[j]; j = model.steps[j].parent) keep[j] = 1;
  }
  return { keep, hit, count };
}

const lowered = new Map();
const lower = (text) => {
  let value = lowered.get(text);
  if (value === undefined) {
    value = text.toLowerCase();
    if (lowered.size < 100_000) lowered.set(text, value);
  }
  return value;
};

const UNITS = { ms: 1, s: 1000, m: 60_000, min: 60_000, k: 1000, M: 1_000_000 };

/** A predicate from the filter box, or null when it is empty. Terms combine with AND:
 *  words match the name (or a step id prefix); status:error, model:haiku, dur>1s,
 *  tok>500, cost>0.01 (with <, <=, >=). */
export function parseFilter(text) {
  const terms = (text || "").trim().split(/\s+/).filter(Boolean);
  if (!terms.length) return null;
  const tests = terms.map((term) => {
    let m = /^(?:status|is):(\w+)$/i.exec(term);
    if (m) {
      const want = m[1].toLowerCase();
      return (s) => s.status === want;
    }
    m = /^model:(.+)$/i.exec(term);
    if (m) {
      const want = m[1].toLowerCase();
      return (s) => s.model != null && lower(s.model).includes(want);
    }
    m = /^(dur|duration|tok|tokens|cost)(<=|>=|<|>)(\d*\.?\d+)(ms|s|min|m|k|M)?$/.exec(term);
    if (m) {
      const limit = Number(m[3]) * (m[4] ? UNITS[m[4]] : 1);
      const value = m[1].startsWith("dur") ? (s) => s.dur
        : m[1].startsWith("tok") ? (s) => s.tin + s.tout : (s) => s.cost;
      const op = m[2];
      return (s) => {
        const v = value(s);
        if (v == null) return false;
        return op === ">" ? v > limit : op === "<" ? v < limit : op === ">=" ? v >= limit : v <= limit;
      };
    }
    const word = term.toLowerCase();
    return (s) => lower(s.name).includes(word) || s.id.startsWith(word);
  });
  return (step) => tests.every((test) => test(step));
}

/** Open every ancestor of step i, so it is in the flattened rows. */
export function reveal(model, i) {
  for (let p = model.steps[i].parent; p >= 0; p = model.steps[p].parent) {
    model.steps[p].closed = false;
  }
}

/** Show the tree down to level (1: roots only); Infinity opens everything. */
export function openToLevel(model, level) {
  for (const step of model.steps) {
    if (step.children) step.closed = step.depth >= level - 1;
  }
}

/** Ticks for an axis of totalMs drawn over widthPx: a 1-2-5 step at least minGapPx apart. */
export function ticks(totalMs, widthPx, minGapPx = 90) {
  if (!(totalMs > 0) || !(widthPx > 0)) return { step: 0, ticks: [0] };
  const rough = (totalMs * minGapPx) / widthPx;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough * (1 - 1e-9));
  const list = [];
  for (let k = 0; k * step <= totalMs * (1 + 1e-9); k++) list.push(k * step);
  return { step, ticks: list };
}

/** A tick's label, with as many decimals as the step needs: "0", "250 ms", "1.5 s". */
export function tickLabel(ms, step) {
  if (ms === 0) return "0";
  if (step >= 60_000) {
    const minutes = ms / 60_000;
    return `${Number.isInteger(minutes) ? minutes : minutes.toFixed(1)} min`;
  }
  if (ms >= 1000) {
    const decimals = step >= 1000 ? (step % 1000 ? 1 : 0) : step >= 100 ? 1 : step >= 10 ? 2 : 3;
    return `${(ms / 1000).toFixed(decimals)} s`;
  }
  const decimals = step >= 1 ? 0 : Math.ceil(-Math.log10(step) - 1e-9);
  return `${ms.toFixed(decimals)} ms`;
}

/** Tokens and cost per model: [{model, steps, tin, tout, tcr, tcw, cost, priced, unpriced}],
 *  most expensive first. Steps with no tokens and no model are left out. */
export function byModel(model) {
  const groups = new Map();
  for (const step of model.steps) {
    if (!step.model && !(step.tin + step.tout + step.tcr + step.tcw) && !step.cost) continue;
    const key = step.model || "(no model)";
    if (!groups.has(key)) groups.set(key, { model: key, ...totalsOf([]) });
    count(groups.get(key), step, 1);
  }
  return [...groups.values()].sort((a, b) => (b.cost - a.cost) || (b.tin + b.tout - a.tin - a.tout));
}
