// TraceForge for Node.js: trace the runs and steps of a pipeline into a local TraceForge
// daemon over its socket protocol (protocol.md at the top of the repository).
//
//   import { traceRun, traceStep } from "traceforge-client";
//   await traceRun("summarize", async () => {
//     await traceStep("call_llm", async (step) => { step.tokensInput = 12; return reply; },
//                     { model: "claude-haiku-4-5", input: { prompt } });
//   });
//
// Every function here returns at once and never throws because of TraceForge: with no
// daemon running, traced code runs unchanged and what could not be delivered is counted.

import { loadConfig } from "./config.js";
import { Sender } from "./sender.js";
import { Tracer } from "./tracer.js";

export { Step } from "./tracer.js";

let active = null; // {sender, tracer}, made on first use or by init()
let exitHookInstalled = false;

class DisabledSender {
  emit() {}
  flush() { return Promise.resolve(true); }
  shutdown() { return Promise.resolve(true); }
  stats() { return { disabled: true }; }
}

/** Points this process at a daemon. Options (each beats its environment variable):
 * `address` (TRACEFORGE_ADDRESS: unix:///path.sock or tcp://host:port), `token`
 * (TRACEFORGE_TOKEN), `disabled` (TRACEFORGE_DISABLED), `maxQueueEvents` (100,000),
 * `shutdownTimeoutMs` (2,000: the flush at exit), `flushIntervalMs` (50), and `clock`
 * (for tests: a function returning epoch nanoseconds as a BigInt). */
export function init(options = {}) {
  const old = active;
  const config = loadConfig(options);
  const sender = config.disabled ? new DisabledSender() : new Sender(config);
  active = { sender, tracer: new Tracer(sender, config.clock) };
  installExitHook();
  if (old) old.sender.shutdown().catch(() => {});
  return active.sender.stats();
}

function get() {
  if (active === null) init();
  return active;
}

function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // The event loop has run dry: the program is done. Flush for at most shutdownTimeoutMs
  // (not at all with no daemon), then let it exit. beforeExit fires again once the flush
  // ends; by then the sender is closed and this does nothing.
  process.on("beforeExit", () => {
    const { sender } = get();
    if (!sender.closed && typeof sender.shutdown === "function" && !(sender instanceof DisabledSender)) {
      sender.shutdown().catch(() => {});
    }
  });
}

/** Runs `fn(runId)` as a run named `name`; returns what it returns (a promise for an async
 * `fn`). Options: `metadata` (any JSON value, normally an object). */
export function traceRun(name, fn, options) {
  return get().tracer.run(name, fn, options);
}

/** Runs `fn(step)` as a step named `name` under the current step (or run); returns what it
 * returns. Set `step.output`, `step.tokensInput`, `step.tokensOutput`, `step.tokensCacheRead`,
 * `step.tokensCacheWrite`, `step.model`, `step.costUsd` or `step.metadata` inside `fn` to
 * record them; the output defaults to what `fn` returns. An error is recorded and rethrown.
 * Options: `input`, `model`, `metadata`. */
export function traceStep(name, fn, options) {
  return get().tracer.step(name, fn, options);
}

/** The innermost step's Step object, or null outside any step. */
export function currentStep() {
  return get().tracer.current()?.step ?? null;
}

/** The environment to give a child process so that its own tracing joins the current step
 * (TRACEFORGE_TRACEPARENT). */
export function childEnv(env = process.env) {
  return get().tracer.childEnv(env);
}

/** Resolves true once everything traced so far is stored, false after `timeoutMs`. */
export function flush(timeoutMs = 5000) {
  return get().sender.flush(timeoutMs);
}

/** Flushes (for at most `timeoutMs`, default 2 s) and stops; later events are dropped. */
export function shutdown(timeoutMs) {
  return get().sender.shutdown(timeoutMs);
}

/** This process's delivery counters: queued, in flight, acked, dropped by reason. */
export function stats() {
  return get().sender.stats();
}
