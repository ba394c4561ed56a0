// Runs and steps. The current step lives in an AsyncLocalStorage, so a step started inside
// another one, after any number of awaits, timers or promise chains, finds its parent
// without being passed a context. Every step sends a step_start when it begins and a
// step_end when it ends; a run sends run_start and run_end. A step's function may be plain
// or async: its result is returned (or its promise resolved) unchanged, and an error it
// throws is recorded on the step and thrown again, unchanged.

import { AsyncLocalStorage } from "node:async_hooks";
import { MAX_FIELD_BYTES, MAX_NAME_CHARS, INT64_MAX, wellFormed } from "./protocol.js";
import { formatTraceparent, newRunId, parseTraceparent, stepIdSource } from "./ids.js";

const storage = new AsyncLocalStorage();
const nextStepId = stepIdSource();
const MAX_ERROR_CHARS = 64 * 1024; // error text is clipped so one event always fits a frame
const PREVIEW_BYTES = MAX_FIELD_BYTES / 4;

// Epoch nanoseconds with the resolution of the monotonic clock: Date.now() once, then
// process.hrtime.bigint() for everything after.
const epochBase = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
export function nowNs() {
  return epochBase + process.hrtime.bigint();
}

/** What a step's function gets: set its fields to record them when the step ends. */
export class Step {
  constructor(runId, stepId, name, model) {
    this.runId = runId;
    this.stepId = stepId;
    this.name = name;
    this.model = model ?? null;
    this.output = undefined; // default: what the function returns
    this.tokensInput = 0;
    this.tokensOutput = 0;
    this.tokensCacheRead = 0;
    this.tokensCacheWrite = 0;
    this.costUsd = null; // null: no known price (unpriced if tokens were used)
    this.metadata = undefined;
  }
}

class Run {
  constructor(runId) {
    this.runId = runId;
    this.errored = false;
  }
}

export class Tracer {
  constructor(sender, clock) {
    this.sender = sender;
    this.clock = clock ?? nowNs;
    const inherited = parseTraceparent(process.env.TRACEFORGE_TRACEPARENT);
    // A child process started by a traced one joins the parent's run (protocol.md section 14).
    this.processParent = inherited ? { run: null, runId: inherited[0], stepId: inherited[1] } : null;
  }

  current() {
    return storage.getStore() ?? this.processParent;
  }

  run(name, fn, options = {}) {
    const run = new Run(newRunId());
    const runName = cleanName(name);
    const start = this.now();
    const metadata = toJson(options.metadata ?? {});
    this.sender.emit("run_start", { run_id: run.runId, name: runName, start_ns: start,
      metadata_json: metadata });
    const finish = (error) => {
      const failed = error !== undefined || run.errored;
      this.sender.emit("run_end", {
        run_id: run.runId, name: runName, start_ns: start, end_ns: this.now(),
        status: failed ? "error" : "success",
        error: error !== undefined ? clip(`${errorType(error)}: ${errorMessage(error)}`) : null,
        metadata_json: metadata,
      });
    };
    return settle(() => storage.run({ run, runId: run.runId, stepId: null, step: null },
      () => fn(run.runId)), () => finish(undefined), (error) => finish(error));
  }

  step(name, fn, options = {}) {
    const parent = this.current();
    if (!parent) return this.run(name, () => this.step(name, fn, options)); // a run of its own
    const step = new Step(parent.runId, nextStepId(), cleanName(name), cleanText(options.model));
    const start = this.now();
    this.sender.emit("step_start", {
      run_id: step.runId, step_id: step.stepId, name: step.name, start_ns: start,
      parent_step_id: parent.stepId, model: step.model,
      input_json: options.input === undefined ? null : toJson(options.input),
      metadata_json: options.metadata === undefined ? null : toJson(options.metadata),
    });
    const finish = (result, error) => {
      const tokens = [step.tokensInput, step.tokensOutput, step.tokensCacheRead,
        step.tokensCacheWrite].map(count);
      const output = step.output !== undefined ? step.output : result;
      const metadata = step.metadata !== undefined ? step.metadata : undefined;
      if (error !== undefined && parent.run) parent.run.errored = true;
      this.sender.emit("step_end", {
        run_id: step.runId, step_id: step.stepId, name: step.name, start_ns: start,
        end_ns: this.now(), parent_step_id: parent.stepId,
        status: error === undefined ? "ok" : "error",
        model: cleanText(step.model) ?? null,
        output_json: output === undefined || output === null ? null : toJson(output),
        tokens_input: tokens[0], tokens_output: tokens[1], tokens_cache_read: tokens[2],
        tokens_cache_write: tokens[3], cost_usd: price(step.costUsd),
        error_type: error === undefined ? null : clip(errorType(error)),
        error_message: error === undefined ? null : clip(errorMessage(error)),
        traceback: error === undefined ? null : clip(String(error?.stack ?? "")) || null,
        metadata_json: metadata === undefined ? null : toJson(metadata),
      });
    };
    return settle(
      () => storage.run({ run: parent.run, runId: step.runId, stepId: step.stepId, step },
        () => fn(step)),
      (result) => finish(result, undefined), (error) => finish(undefined, error));
  }

  now() {
    try {
      const value = this.clock();
      return typeof value === "bigint" && value >= 0n && value <= INT64_MAX ? value : nowNs();
    } catch {
      return nowNs();
    }
  }

  /** The environment for a child process whose own tracing should join the current step. */
  childEnv(env = process.env) {
    const current = this.current();
    if (!current) return { ...env };
    return { ...env, TRACEFORGE_TRACEPARENT: formatTraceparent(current.runId, current.stepId) };
  }
}

/** Runs `body`; calls `ok(result)` or `failed(error)` when it is done, at once for a plain
 * function and when its promise settles for an async one; hands back what `body` gave. */
function settle(body, ok, failed) {
  let result;
  try {
    result = body();
  } catch (error) {
    guard(() => failed(error));
    throw error;
  }
  if (result !== null && typeof result === "object" && typeof result.then === "function") {
    return result.then(
      (value) => { guard(() => ok(value)); return value; },
      (error) => { guard(() => failed(error)); throw error; },
    );
  }
  guard(() => ok(result));
  return result;
}

function guard(fn) {
  try {
    fn();
  } catch {
    // TraceForge's own failure: never the host program's problem
  }
}

// ---- values made safe for the wire ----

export function cleanText(value) {
  if (value === null || value === undefined) return null;
  return wellFormed(String(value));
}

export function cleanName(value) {
  const text = cleanText(value) ?? "";
  const chars = [...text];
  return chars.length === 0 ? "unnamed" : chars.slice(0, MAX_NAME_CHARS).join("");
}

function clip(text) {
  const clean = wellFormed(String(text));
  if (clean.length <= MAX_ERROR_CHARS) return clean;
  const half = MAX_ERROR_CHARS / 2;
  return `${wellFormed(clean.slice(0, half))}\n... [${clean.length - MAX_ERROR_CHARS} characters cut] ...\n${wellFormed(clean.slice(-half))}`;
}

/** A token count the user set, made safe: an integer from 0 to 2^63-1 (a number or a
 * BigInt), anything else 0, a larger one the largest. */
export function count(value) {
  if (typeof value === "bigint") return value < 0n ? 0 : value > INT64_MAX ? INT64_MAX : value;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) return 0;
  const whole = Math.trunc(value);
  return Number.isSafeInteger(whole) ? whole : BigInt(whole) > INT64_MAX ? INT64_MAX : BigInt(whole);
}

/** A cost the user set, made safe: not a finite number becomes unpriced (null), a negative
 * one 0. */
export function price(value) {
  if (value === null || value === undefined) return null;
  const cost = typeof value === "bigint" ? Number(value) : Number(value);
  if (!Number.isFinite(cost)) return null;
  return cost < 0 ? 0 : cost;
}

function errorType(error) {
  if (error instanceof Error) return error.name || error.constructor?.name || "Error";
  return error === null ? "null" : typeof error;
}

function errorMessage(error) {
  try {
    return error instanceof Error ? String(error.message) : String(error);
  } catch {
    return "<an error whose message cannot be read>";
  }
}

const encoder = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { fatal: false });

/** `value` as JSON text for the wire, never throwing: a BigInt becomes the string of its
 * digits, a value JSON cannot hold (a cycle) the string String() gives; text over
 * MAX_FIELD_BYTES becomes the truncation marker (protocol.md section 5.3). */
export function toJson(value) {
  let text;
  try {
    text = JSON.stringify(value, (key, item) => (typeof item === "bigint" ? item.toString() : item));
    if (text === undefined) text = JSON.stringify(String(value));
  } catch {
    try {
      text = JSON.stringify(String(value));
    } catch {
      text = '"<unserialisable>"';
    }
  }
  text = wellFormed(text);
  const bytes = encoder.encode(text);
  if (bytes.length <= MAX_FIELD_BYTES) return text;
  let end = PREVIEW_BYTES;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end -= 1; // back to a character's start
  return JSON.stringify({ _traceforge_truncated: true, original_bytes: bytes.length,
    preview: utf8.decode(bytes.subarray(0, end)) });
}
